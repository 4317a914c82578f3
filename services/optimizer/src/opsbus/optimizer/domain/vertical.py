"""Vertical recommendations: the CPU and memory requests (and limits) one container should have.

The state per container is a `ContainerUsage`: a decaying histogram of CPU samples, a decaying histogram of
memory *peaks* (the largest working set in each window: memory is not compressible, so the peak, not the
average, decides whether the container survives), the recent window peaks, and the last OOM kill.

The defaults of `VerticalPolicy.vpa()` are the VPA recommender's: CPU p90, memory p90 of 24 h peaks, margin
0.15, half-life 24 h, OOM bump x1.2 or +100 Mi, minimums 25 m and 250 Mi. `VerticalPolicy()` (opsbus) keeps
them and adds what the VPA lacks:
* memory peaks per hour, target p95: a day with one spike is not averaged away;
* a floor at the largest peak of the last day plus a small margin: the request never sits below usage
  the container has just shown;
* a trend term: when recent peaks climb (a leak, growth), the target is extrapolated over the horizon
  the recommendation is expected to live;
* a margin that widens when confidence is low (little history).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from opsbus.optimizer.domain.histogram import CPU_BUCKETS, MEMORY_BUCKETS, DecayingHistogram

MI = 2**20
DAY = 86_400.0


@dataclass(frozen=True)
class VerticalPolicy:
    cpu_percentile: float = 0.6
    memory_percentile: float = 0.95
    safety_margin: float = 0.15
    half_life_seconds: float = DAY
    memory_window_seconds: float = 3_600.0
    recent_peak_seconds: float = DAY  # 0: no floor at recent peaks
    recent_peak_margin: float = 0.05
    trend_horizon_seconds: float = 6 * 3_600.0  # 0: no trend term
    low_confidence_margin: float = 0.3  # extra margin x (1 - confidence)
    cpu_safety_margin: float | None = 0.1  # None: `safety_margin`
    limits_from_usage: bool = True  # False: limits keep their ratio to requests (the VPA's RequestsAndLimits)
    cpu_limit_percentile: float = 0.99
    cpu_limit_min_ratio: float = 2.0  # a CPU limit leaves at least this much room over the request for bursts
    memory_limit_headroom: float = 0.6
    min_cpu_millicores: int = 25
    min_memory_bytes: int = 250 * MI
    oom_bump_ratio: float = 1.2
    oom_bump_bytes: int = 100 * MI

    @classmethod
    def vpa(cls) -> VerticalPolicy:
        """The Kubernetes VPA recommender's defaults, as the baseline to beat."""
        return cls(
            cpu_percentile=0.9,
            memory_percentile=0.9,
            safety_margin=0.15,
            memory_window_seconds=DAY,
            recent_peak_seconds=0.0,
            trend_horizon_seconds=0.0,
            low_confidence_margin=0.0,
            cpu_safety_margin=None,
            limits_from_usage=False,
        )


@dataclass
class ContainerUsage:
    """Everything remembered about one container's usage (checkpointed to the store as JSON)."""

    cpu: DecayingHistogram = field(default_factory=lambda: DecayingHistogram(CPU_BUCKETS))
    memory_peaks: DecayingHistogram = field(default_factory=lambda: DecayingHistogram(MEMORY_BUCKETS))
    window_start: float | None = None
    window_peak: float = 0.0
    recent_peaks: list[tuple[float, float]] = field(default_factory=list)  # (window start, peak), oldest first
    first_sample_at: float | None = None
    last_sample_at: float | None = None
    samples: int = 0
    last_oom_at: float | None = None
    oom_floor_bytes: int = 0

    @classmethod
    def new(cls, policy: VerticalPolicy) -> ContainerUsage:
        return cls(
            cpu=DecayingHistogram(CPU_BUCKETS, policy.half_life_seconds),
            memory_peaks=DecayingHistogram(MEMORY_BUCKETS, policy.half_life_seconds),
        )

    @property
    def observed_seconds(self) -> float:
        if self.first_sample_at is None or self.last_sample_at is None:
            return 0.0
        return self.last_sample_at - self.first_sample_at

    def add_sample(
        self, at: float, cpu_millicores: float | None, memory_bytes: float | None, policy: VerticalPolicy
    ) -> None:
        """One usage observation. Samples must arrive in time order; older ones are ignored."""
        if self.last_sample_at is not None and at <= self.last_sample_at:
            return
        if cpu_millicores is not None:
            self.cpu.add(cpu_millicores, at)
        if memory_bytes is not None:
            self._add_memory(at, memory_bytes, policy)
        self.first_sample_at = at if self.first_sample_at is None else self.first_sample_at
        self.last_sample_at = at
        self.samples += 1

    def add_pods(self, at: float, cpu: Sequence[float], memory: Sequence[float], policy: VerticalPolicy) -> None:
        """Samples of every pod of the workload at one instant: each CPU sample counts (as the VPA
        aggregates containers of the same name), memory counts as the largest working set."""
        if self.last_sample_at is not None and at <= self.last_sample_at:
            return
        for value in cpu:
            self.cpu.add(value, at)
        if memory:
            self._add_memory(at, max(memory), policy)
        self.first_sample_at = at if self.first_sample_at is None else self.first_sample_at
        self.last_sample_at = at
        self.samples += 1

    def _add_memory(self, at: float, value: float, policy: VerticalPolicy) -> None:
        window = policy.memory_window_seconds
        start = math.floor(at / window) * window
        if self.window_start is not None and start > self.window_start:
            self._close_window(policy)
        if self.window_start is None or start > self.window_start:
            self.window_start, self.window_peak = start, 0.0
        self.window_peak = max(self.window_peak, value)

    def _close_window(self, policy: VerticalPolicy) -> None:
        if self.window_start is None or self.window_peak <= 0:
            return
        self.memory_peaks.add(self.window_peak, self.window_start + policy.memory_window_seconds)
        self.recent_peaks.append((self.window_start, self.window_peak))
        keep_after = self.window_start - max(policy.recent_peak_seconds, 2 * policy.trend_horizon_seconds, DAY)
        self.recent_peaks = [(t, p) for t, p in self.recent_peaks if t >= keep_after]

    def record_oom(self, at: float, memory_at_kill: int, policy: VerticalPolicy) -> int:
        """An OOM kill at `memory_at_kill` bytes (the limit, or the request without one): the memory target
        jumps to max(x ratio, + bytes) at once and the bump is remembered as a peak. Returns the new floor."""
        bumped = max(math.ceil(memory_at_kill * policy.oom_bump_ratio), memory_at_kill + policy.oom_bump_bytes)
        self.last_oom_at = at
        self.oom_floor_bytes = max(self.oom_floor_bytes, bumped)
        self.memory_peaks.add(float(bumped), at)
        return self.oom_floor_bytes

    # --- checkpoints ------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "cpu": self.cpu.to_json(),
            "memory_peaks": self.memory_peaks.to_json(),
            "window_start": self.window_start,
            "window_peak": self.window_peak,
            "recent_peaks": [[t, p] for t, p in self.recent_peaks],
            "first_sample_at": self.first_sample_at,
            "last_sample_at": self.last_sample_at,
            "samples": self.samples,
            "last_oom_at": self.last_oom_at,
            "oom_floor_bytes": self.oom_floor_bytes,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ContainerUsage:
        return cls(
            cpu=DecayingHistogram.from_json(data["cpu"]),
            memory_peaks=DecayingHistogram.from_json(data["memory_peaks"]),
            window_start=data.get("window_start"),
            window_peak=float(data.get("window_peak", 0.0)),
            recent_peaks=[(float(t), float(p)) for t, p in data.get("recent_peaks", [])],
            first_sample_at=data.get("first_sample_at"),
            last_sample_at=data.get("last_sample_at"),
            samples=int(data.get("samples", 0)),
            last_oom_at=data.get("last_oom_at"),
            oom_floor_bytes=int(data.get("oom_floor_bytes", 0)),
        )


@dataclass(frozen=True)
class VerticalTarget:
    cpu_millicores: int
    memory_bytes: int
    confidence: float
    observed_seconds: float
    basis: str
    memory_over_share: float  # weighted share of memory peaks above the target: the OOM likelihood
    cpu_over_share: float  # weighted share of CPU samples above the target
    cpu_limit_millicores: int | None = None  # None: limits keep their ratio to requests
    memory_limit_bytes: int | None = None


def confidence(observed_seconds: float) -> float:
    """Grows with history: 0 with none, 0.5 after a day, 0.875 after a week (d / (d + 1), days)."""
    days = max(0.0, observed_seconds) / DAY
    return days / (days + 1.0)


def _slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope (units per second) of (time, value) points; 0 with fewer than 3."""
    n = len(points)
    if n < 3:
        return 0.0
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    den = sum((t - mt) ** 2 for t, _ in points)
    if den <= 0:
        return 0.0
    return sum((t - mt) * (v - mv) for t, v in points) / den


def recommend(usage: ContainerUsage, policy: VerticalPolicy, now: float) -> VerticalTarget | None:
    """The target requests for one container, or None without any usage yet."""
    if usage.samples == 0:
        return None
    conf = confidence(usage.observed_seconds)
    uncertainty = policy.low_confidence_margin * (1.0 - conf)
    # short history widens what protects the container: the limits when they are set from usage (requests,
    # what the cluster reserves and bills, stay at the estimate), else the requests (limits follow them)
    margin = policy.safety_margin + (0.0 if policy.limits_from_usage else uncertainty)
    cpu_margin = (policy.safety_margin if policy.cpu_safety_margin is None else policy.cpu_safety_margin) + (
        0.0 if policy.limits_from_usage else uncertainty
    )
    notes: list[str] = []

    cpu_p = usage.cpu.percentile(policy.cpu_percentile)
    cpu = max(float(policy.min_cpu_millicores), cpu_p * (1 + cpu_margin))
    notes.append(f"cpu p{policy.cpu_percentile * 100:.0f}={cpu_p:.0f}m +{cpu_margin:.0%}")

    peaks = DecayingHistogram(usage.memory_peaks.buckets, usage.memory_peaks.half_life_seconds)
    peaks.merge(usage.memory_peaks)
    if usage.window_start is not None and usage.window_peak > 0:  # the window still open counts too
        peaks.add(usage.window_peak, max(now, usage.window_start))
    mem_p = peaks.percentile(policy.memory_percentile)
    memory = mem_p * (1 + margin)
    notes.append(f"memory p{policy.memory_percentile * 100:.0f} of peaks={mem_p / MI:.0f}Mi +{margin:.0%}")

    recent = [(t, p) for t, p in usage.recent_peaks if t >= now - policy.recent_peak_seconds]
    if usage.window_start is not None and usage.window_peak > 0:
        recent.append((usage.window_start, usage.window_peak))
    if policy.recent_peak_seconds > 0 and recent:
        floor = max(p for _, p in recent) * (1 + policy.recent_peak_margin)
        if floor > memory:
            memory = floor
            notes.append(f"floor at the last day's peak +{policy.recent_peak_margin:.0%}")
    if policy.trend_horizon_seconds > 0:
        window = [(t, p) for t, p in recent if t >= now - 2 * policy.trend_horizon_seconds]
        slope = _slope(window)
        if slope > 0 and window:
            projected = (max(p for _, p in window) + slope * policy.trend_horizon_seconds) * (
                1 + policy.recent_peak_margin
            )
            if projected > memory:
                memory = projected
                notes.append(
                    f"rising {slope * 3600 / MI:.1f}Mi/h, projected {policy.trend_horizon_seconds / 3600:.0f}h"
                )
    if usage.oom_floor_bytes > memory:
        memory = float(usage.oom_floor_bytes)
        notes.append(f"OOM bump x{policy.oom_bump_ratio} / +{policy.oom_bump_bytes // MI}Mi")
    memory = max(float(policy.min_memory_bytes), memory)

    cpu_limit: int | None = None
    memory_limit: int | None = None
    if policy.limits_from_usage:
        cpu_high = usage.cpu.percentile(policy.cpu_limit_percentile)
        cpu_limit = math.ceil(
            max(math.ceil(cpu) * policy.cpu_limit_min_ratio, cpu_high * (1 + policy.safety_margin + uncertainty))
        )
        highest = max([peaks.percentile(1.0), *(p for _, p in recent)])
        memory_limit = math.ceil(max(memory, highest) * (1 + policy.memory_limit_headroom + uncertainty))
        notes.append(
            f"limits: cpu p{policy.cpu_limit_percentile * 100:.0f}={cpu_high:.0f}m, memory highest peak "
            f"{highest / MI:.0f}Mi +{policy.memory_limit_headroom + uncertainty:.0%}"
        )

    cpu_m = math.ceil(cpu)
    mem_b = math.ceil(memory)
    return VerticalTarget(
        cpu_millicores=cpu_m,
        memory_bytes=mem_b,
        confidence=conf,
        observed_seconds=usage.observed_seconds,
        basis="; ".join(notes),
        memory_over_share=peaks.share_above(mem_b),
        cpu_over_share=usage.cpu.share_above(cpu_m),
        cpu_limit_millicores=cpu_limit,
        memory_limit_bytes=memory_limit,
    )
