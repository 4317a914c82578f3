"""Decaying histograms with exponential buckets, as the Kubernetes VPA recommender keeps them.

A sample's weight doubles every `half_life` of sample time after a reference instant, which is the same as
halving the weight of everything older: recent usage counts more, and a histogram never has to be swept to
age it. When the exponent grows large the reference moves forward and every bucket is scaled down
(VPA's `maxDecayExponent`), so weights stay finite. Buckets grow by a constant ratio (5% by default), so the
relative error of a percentile is bounded at every scale, from 10 millicores to 1000 cores.

`percentile(p)` returns the upper end of the bucket holding the p-th weight (VPA's convention): a target
drawn from it covers the observed usage, never rounds below it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

MAX_DECAY_EXPONENT = 100.0
EPSILON = 1e-9


@dataclass(frozen=True)
class Buckets:
    """Exponential bucketing: bucket i covers [start(i), start(i+1)); start(i) = first * (ratio**i - 1)/(ratio - 1)."""

    first_size: float
    ratio: float = 1.05
    max_value: float = 1e12

    @property
    def count(self) -> int:
        return self.index(self.max_value) + 1

    def start(self, index: int) -> float:
        if index <= 0:
            return 0.0
        return self.first_size * (self.ratio**index - 1) / (self.ratio - 1)

    def index(self, value: float) -> int:
        if value < self.first_size:
            return 0
        i = math.floor(math.log(value * (self.ratio - 1) / self.first_size + 1, self.ratio))
        # float rounding at a bucket boundary: settle on the bucket whose range contains the value
        while i > 0 and self.start(i) > value:
            i -= 1
        while self.start(i + 1) <= value:
            i += 1
        return i


CPU_BUCKETS = Buckets(first_size=10.0, ratio=1.05, max_value=1_000_000.0)  # millicores: 10m .. 1000 cores
MEMORY_BUCKETS = Buckets(first_size=1e7, ratio=1.05, max_value=1e12)  # bytes: 10 MB .. 1 TB


@dataclass
class DecayingHistogram:
    buckets: Buckets
    half_life_seconds: float = 86_400.0
    reference: float = 0.0  # epoch seconds the weights are relative to
    weights: dict[int, float] = field(default_factory=dict)

    @property
    def total_weight(self) -> float:
        return sum(self.weights.values())

    def is_empty(self) -> bool:
        return self.total_weight < EPSILON

    def add(self, value: float, at: float, weight: float = 1.0) -> None:
        """Add a sample of `value` observed at `at` (epoch seconds)."""
        if weight <= 0 or math.isnan(value):
            return
        if not self.weights:
            self.reference = at
        exponent = (at - self.reference) / self.half_life_seconds
        if exponent > MAX_DECAY_EXPONENT:
            self._shift_reference(at)
            exponent = 0.0
        i = self.buckets.index(max(0.0, value))
        self.weights[i] = self.weights.get(i, 0.0) + weight * 2.0**exponent

    def _shift_reference(self, new_reference: float) -> None:
        factor = 2.0 ** (-(new_reference - self.reference) / self.half_life_seconds)
        self.weights = {i: w * factor for i, w in self.weights.items() if w * factor > EPSILON}
        self.reference = new_reference

    def percentile(self, p: float) -> float:
        """The smallest bucket end below which at least `p` of the weight lies (0 when empty)."""
        if self.is_empty():
            return 0.0
        threshold = p * self.total_weight
        seen = 0.0
        last = 0
        for i in sorted(self.weights):
            seen += self.weights[i]
            last = i
            if seen >= threshold - EPSILON:
                break
        return self.buckets.start(last + 1)

    def share_above(self, value: float) -> float:
        """Weighted share of samples above `value`: how often usage exceeded it (0..1)."""
        total = self.total_weight
        if total < EPSILON:
            return 0.0
        cut = self.buckets.index(value)
        return sum(w for i, w in self.weights.items() if i > cut) / total

    def merge(self, other: DecayingHistogram) -> None:
        if other.is_empty():
            return
        if self.is_empty():
            self.reference, self.weights = other.reference, dict(other.weights)
            return
        scale = 2.0 ** ((other.reference - self.reference) / self.half_life_seconds)
        for i, w in other.weights.items():
            self.weights[i] = self.weights.get(i, 0.0) + w * scale

    # --- checkpoints ------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "first_size": self.buckets.first_size,
            "ratio": self.buckets.ratio,
            "max_value": self.buckets.max_value,
            "half_life_seconds": self.half_life_seconds,
            "reference": self.reference,
            "weights": {str(i): w for i, w in sorted(self.weights.items())},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DecayingHistogram:
        return cls(
            buckets=Buckets(float(data["first_size"]), float(data["ratio"]), float(data["max_value"])),
            half_life_seconds=float(data["half_life_seconds"]),
            reference=float(data["reference"]),
            weights={int(i): float(w) for i, w in data["weights"].items()},
        )
