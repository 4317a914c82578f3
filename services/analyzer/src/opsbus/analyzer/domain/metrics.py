"""Metric evidence: a saturation or error-rate step that follows a change.

A series is what Prometheus answered to one of the configured queries for the incident's workload (a range of
(time, value) points before the first alert). A *step* is a rise of the level: the median of the few points after
a split is well above the median of the few points before it (relative rise at least `min_ratio`, and above
`min_rise` in absolute terms so a series near zero does not step on noise). A change is supported by a step that
starts between just before it (one query resolution, scrapes lag) and `follow` after it: "the error rate went
from 0.01 to 0.40 eight seconds after the rollout". Such support raises the change's signature term; a step
nothing explains stays in what was checked. Pure: points come in, steps come out; querying is the executor's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import median

SIDE = 3  # points each side of a split


@dataclass(frozen=True, slots=True)
class Series:
    name: str  # the configured name, e.g. `error_rate`, `memory_saturation`
    query: str  # the PromQL asked
    points: tuple[tuple[datetime, float], ...]
    resolution_seconds: float = 15.0


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    query: str
    at: datetime  # first point at the new level
    before: float
    after: float
    resolution_seconds: float

    def describe(self) -> str:
        return f"{self.name} rose {self.before:.3g} -> {self.after:.3g}"


def step_of(series: Series, *, min_ratio: float = 0.5, min_rise: float = 1e-3) -> Step | None:
    """The largest rise of level in `series`, or None when it has none (or too few points to tell)."""
    pts = sorted(series.points)
    best: Step | None = None
    for i in range(2, len(pts) - 1):
        before = [v for _, v in pts[max(0, i - SIDE) : i]]
        after = [v for _, v in pts[i : i + SIDE]]
        if len(after) < 2:
            continue
        b, a = median(before), median(after)
        rise = a - b
        if rise < min_rise or rise < min_ratio * abs(b):
            continue
        if best is None or rise > best.after - best.before:
            best = Step(series.name, series.query, pts[i][0], b, a, series.resolution_seconds)
    return best


def steps(series: Sequence[Series]) -> tuple[Step, ...]:
    found = (step_of(s) for s in series)
    return tuple(s for s in found if s is not None)


def following(found: Sequence[Step], at: datetime, follow: timedelta) -> Step | None:
    """The step that starts after a change at `at` (within `follow`; one resolution early for scrape lag)."""
    near = [s for s in found if at - timedelta(seconds=2 * s.resolution_seconds) <= s.at <= at + follow]
    return min(near, key=lambda s: abs((s.at - at).total_seconds()), default=None)
