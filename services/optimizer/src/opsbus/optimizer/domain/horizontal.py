"""Horizontal recommendations for workloads without an HPA, by the HPA's own algorithm.

desired = ceil(current x utilisation / target), unchanged while |utilisation/target - 1| <= tolerance
(0.1 by default, as the HPA's `--horizontal-pod-autoscaler-tolerance`). Scale-down is stabilised: the
recommendation is the largest one made within the window (300 s by default), so a dip does not shed pods
that the next minute needs back. Scale-up is immediate. A workload with an HPA gets no horizontal
recommendation at all: two controllers writing `replicas` fight.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class HorizontalPolicy:
    target_utilization: float = 0.7
    tolerance: float = 0.1
    scale_down_stabilization_seconds: float = 300.0
    min_replicas: int = 1
    max_replicas: int = 100


def desired_replicas(current: int, utilization: float, target: float, tolerance: float) -> int:
    """The HPA formula; `utilization` and `target` are shares of requests (0.9 = 90%)."""
    if current <= 0 or target <= 0:
        return current
    ratio = utilization / target
    if abs(ratio - 1.0) <= tolerance:
        return current
    return max(1, math.ceil(current * ratio - 1e-9))


@dataclass(frozen=True)
class HorizontalResult:
    recommended: int
    raw: int
    history: tuple[tuple[float, int], ...]  # (time, raw recommendation) within the window, to keep
    reason: str


def recommend_replicas(
    current: int,
    utilization: float,
    policy: HorizontalPolicy,
    history: Sequence[tuple[float, int]],
    now: float,
) -> HorizontalResult:
    raw = desired_replicas(current, utilization, policy.target_utilization, policy.tolerance)
    window = policy.scale_down_stabilization_seconds
    kept = (*((t, r) for t, r in history if t > now - window), (now, raw))
    recommended = raw
    reason = f"utilisation {utilization:.0%} of requests vs target {policy.target_utilization:.0%}"
    if raw < current:
        stabilized = max(r for _, r in kept)
        if stabilized > raw:
            reason += f"; scale-down held at {stabilized} (highest within {window:.0f}s)"
        recommended = min(current, stabilized)
    recommended = max(policy.min_replicas, min(policy.max_replicas, recommended))
    return HorizontalResult(recommended=recommended, raw=raw, history=kept, reason=reason)
