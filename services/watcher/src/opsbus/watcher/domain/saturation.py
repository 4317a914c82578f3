"""Saturation detectors: pure functions from metric samples (per container) to findings.

The adapter (`opsbus.watcher.prometheus`) fetches series from a metrics source over a window and hands them over
as plain data (`Snapshot`); these rules decide. Rules (bounds in `SaturationRules`):

- KubeContainerMemoryNearLimit (warning, per container): working set / memory limit >= `memory_ratio` at every
  sample of the last `memory_for_seconds` (the series must cover that long). `since` is the first sample of the
  run above the threshold.
- KubeContainerCPUThrottled (warning, per container): increase(throttled periods) / increase(CFS periods) over
  the last `throttle_window_seconds` >= `throttle_ratio`, with at least `throttle_min_periods` periods in the
  window (an idle container that was throttled once is not "throttled"). Counter resets are handled as
  Prometheus' `increase` does.
- KubeContainerMemoryFillsSoon (warning, per container): a least-squares line through the working set over the
  last `trend_window_seconds` (at least `trend_min_samples` samples spanning half the window) rises and reaches
  the limit within `trend_horizon_seconds`. Not raised when MemoryNearLimit already fires for the container (one
  fault, one alert).

- KubePersistentVolumeFillingUp (warning, per PersistentVolumeClaim, from kubelet volume stats): free space
  already at or below `volume_available_ratio` of capacity, or a least-squares line through the available bytes
  over `volume_trend_window_seconds` (the same fit as memory, same sample rules) falls and reaches zero within
  `volume_horizon_seconds` while less than `volume_trend_below_ratio` is free (the kubernetes-mixin's guard: a
  large, mostly empty volume that is written to is not "filling up").

Labels follow the pod detectors' vocabulary (alertname, cluster, severity, namespace, pod, container, and node /
workload from the cache), so fingerprints are computed the same way and the alert book fires once
and resolves with the same hysteresis. `since` is a sample timestamp; the adapter aligns query ranges to the
step so replicas read the same timestamps. Never import an I/O library here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise

from pydantic import BaseModel, Field

from opsbus.common.events.payloads.alert import MetricObservation
from opsbus.common.events.payloads.common import ResourceRef, Severity
from opsbus.watcher.domain.cache import Cache
from opsbus.watcher.domain.detecting import RUNBOOK, Finding, workload_of

MEMORY_NEAR_LIMIT = "KubeContainerMemoryNearLimit"
CPU_THROTTLED = "KubeContainerCPUThrottled"
MEMORY_FILLS_SOON = "KubeContainerMemoryFillsSoon"
VOLUME_FILLING_UP = "KubePersistentVolumeFillingUp"


class SaturationRules(BaseModel):
    """Bounds of the saturation rules (`OPSBUS_WATCHER__PROMETHEUS__*`)."""

    memory_ratio: float = Field(
        default=0.9, gt=0, le=1, description="KubeContainerMemoryNearLimit: working set / limit at or above this ..."
    )
    memory_for_seconds: float = Field(default=300.0, ge=0, description="... at every sample for this long.")
    throttle_ratio: float = Field(
        default=0.25, gt=0, le=1, description="KubeContainerCPUThrottled: throttled / total CFS periods at or above."
    )
    throttle_window_seconds: float = Field(default=300.0, gt=0, description="... over this window.")
    throttle_min_periods: float = Field(
        default=100.0, ge=0, description="... with at least this many CFS periods in the window."
    )
    trend_window_seconds: float = Field(
        default=3600.0, gt=0, description="KubeContainerMemoryFillsSoon: linear fit over this window ..."
    )
    trend_horizon_seconds: float = Field(default=4 * 3600.0, gt=0, description="... reaches the limit within this.")
    trend_min_samples: int = Field(default=5, ge=2, description="... from at least this many samples.")
    volume_available_ratio: float = Field(
        default=0.03, ge=0, lt=1, description="KubePersistentVolumeFillingUp: free / capacity at or below this ..."
    )
    volume_trend_window_seconds: float = Field(
        default=6 * 3600.0, gt=0, description="... or a linear fit of the free bytes over this window ..."
    )
    volume_horizon_seconds: float = Field(default=4 * 86400.0, gt=0, description="... reaches zero within this ...")
    volume_trend_below_ratio: float = Field(
        default=0.15, gt=0, le=1, description="... while free / capacity is below this."
    )


@dataclass(frozen=True, order=True)
class ContainerId:
    namespace: str
    pod: str
    container: str


@dataclass(frozen=True, order=True)
class VolumeId:
    namespace: str
    claim: str  # the PersistentVolumeClaim


Sample = tuple[datetime, float]


@dataclass(frozen=True)
class Snapshot:
    """Series per container over a window ending at `end`, samples in time order. Counters are raw."""

    end: datetime
    working_set: Mapping[ContainerId, Sequence[Sample]] = field(default_factory=dict)
    memory_limit: Mapping[ContainerId, Sequence[Sample]] = field(default_factory=dict)
    throttled_periods: Mapping[ContainerId, Sequence[Sample]] = field(default_factory=dict)
    periods: Mapping[ContainerId, Sequence[Sample]] = field(default_factory=dict)
    volume_available: Mapping[VolumeId, Sequence[Sample]] = field(default_factory=dict)
    volume_capacity: Mapping[VolumeId, Sequence[Sample]] = field(default_factory=dict)
    queries: Mapping[str, str] = field(default_factory=dict)  # series name -> query, for the evidence


# --- math ---------------------------------------------------------------------------------------------------


def since_cutoff(samples: Sequence[Sample], start: datetime) -> list[Sample]:
    return [s for s in samples if s[0] >= start]


def counter_increase(samples: Sequence[Sample]) -> float:
    """Increase of a counter over the samples; a drop is a reset (the new value counts from zero)."""
    total = 0.0
    for (_, prev), (_, cur) in pairwise(samples):
        total += cur - prev if cur >= prev else cur
    return total


def linear_fit(samples: Sequence[Sample]) -> tuple[float, float] | None:
    """(slope per second, value at the last sample's time) of the least-squares line; None if degenerate."""
    if len(samples) < 2:
        return None
    t0 = samples[-1][0]
    xs = [(t - t0).total_seconds() for t, _ in samples]
    ys = [v for _, v in samples]
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    return slope, my - slope * mx  # intercept at x=0, i.e. at the last sample


def _latest(samples: Sequence[Sample] | None) -> float | None:
    return samples[-1][1] if samples else None


# --- rules --------------------------------------------------------------------------------------------------


def detect_saturation(
    snap: Snapshot, rules: SaturationRules, cluster: str, cache: Cache | None = None
) -> list[Finding]:
    """Findings over every container of the snapshot (deterministic order). With a cache, only containers of
    pods it holds (watched, not being deleted) are considered."""
    findings: list[Finding] = []
    ids: set[ContainerId] = set(snap.working_set) | set(snap.throttled_periods)
    for cid in sorted(ids):
        findings.extend(_container(cid, snap, rules, cluster, cache))
    for vid in sorted(snap.volume_available):
        finding = _volume(vid, snap, rules, cluster)
        if finding is not None:
            findings.append(finding)
    return findings


def _volume(vid: VolumeId, snap: Snapshot, rules: SaturationRules, cluster: str) -> Finding | None:
    available = list(snap.volume_available.get(vid, ()))
    capacity = _latest(snap.volume_capacity.get(vid))
    if not available or not capacity or capacity <= 0:
        return None
    free, ratio = available[-1][1], available[-1][1] / capacity
    seconds: float | None = None
    if ratio <= rules.volume_available_ratio:
        since = available[-1][0]
        for t, v in reversed(available):  # the run at or below the ratio that ends now dates it
            if v / capacity > rules.volume_available_ratio:
                break
            since = t
        how = f"only {ratio:.1%} ({free:.0f} bytes) of {capacity:.0f} is free"
    else:
        window = since_cutoff(available, snap.end - timedelta(seconds=rules.volume_trend_window_seconds))
        span = (window[-1][0] - window[0][0]).total_seconds() if window else 0.0
        fit = linear_fit(window) if len(window) >= rules.trend_min_samples else None
        if fit is None or span < rules.volume_trend_window_seconds / 2 or ratio >= rules.volume_trend_below_ratio:
            return None
        slope, now_value = fit
        if slope >= 0:
            return None
        seconds = max(now_value / -slope, 0.0)
        if seconds >= rules.volume_horizon_seconds:
            return None
        since = window[-1][0]
        how = (
            f"{ratio:.1%} free, falling {-slope * 3600:.0f} bytes/hour over the last "
            f"{rules.volume_trend_window_seconds / 3600:.1f} h: full in {seconds / 3600:.1f} h "
            f"(horizon {rules.volume_horizon_seconds / 3600:.0f} h)"
        )
    labels = {
        "alertname": VOLUME_FILLING_UP,
        "cluster": cluster,
        "severity": Severity.WARNING.value,
        "namespace": vid.namespace,
        "persistentvolumeclaim": vid.claim,
    }
    left = "is nearly full" if seconds is None else f"fills up in {seconds / 3600:.1f} hours"
    return Finding(
        alertname=VOLUME_FILLING_UP,
        severity=Severity.WARNING,
        labels=labels,
        summary=f"PersistentVolumeClaim {vid.namespace}/{vid.claim} {left}",
        description=f"The volume behind it: {how}.",
        target=ResourceRef(kind="PersistentVolumeClaim", name=vid.claim, namespace=vid.namespace, api_version="v1"),
        since=since,
        observed=since,
        runbook=RUNBOOK.format(slug="kubepersistentvolumefillingup"),
        metrics=(
            MetricObservation(
                name="volume_available_bytes",
                value=round(free, 1),
                threshold=round(capacity * rules.volume_available_ratio, 1),
                unit="bytes",
                query=snap.queries.get("volume_available"),
                predicted_exhaustion_seconds=None if seconds is None else round(seconds, 1),
            ),
        ),
    )


def _container(
    cid: ContainerId, snap: Snapshot, rules: SaturationRules, cluster: str, cache: Cache | None
) -> Iterable[Finding]:
    pod = cache.get("Pod", f"{cid.namespace}/{cid.pod}") if cache is not None else None
    if cache is not None and (pod is None or (pod.get("metadata") or {}).get("deletionTimestamp")):
        return  # not watched, gone or going away: metrics lag the cluster, the cache decides
    workload = workload_of(pod, cache) if pod is not None and cache is not None else None
    node = (pod.get("spec") or {}).get("nodeName") if pod is not None else None
    target = ResourceRef(
        kind="Pod",
        name=cid.pod,
        namespace=cid.namespace,
        api_version="v1",
        uid=((pod or {}).get("metadata") or {}).get("uid") or None,
    )

    def make(alertname: str, since: datetime, summary: str, description: str, obs: MetricObservation) -> Finding:
        labels = {"alertname": alertname, "cluster": cluster, "severity": Severity.WARNING.value}
        extra = {"namespace": cid.namespace, "pod": cid.pod, "container": cid.container}
        extra |= {"node": str(node) if node else "", "workload": workload.name if workload else ""}
        labels.update({k: v for k, v in extra.items() if v})
        return Finding(
            alertname=alertname,
            severity=Severity.WARNING,
            labels=labels,
            summary=summary,
            description=description,
            target=target,
            workload=workload,
            since=since,
            observed=since,
            runbook=RUNBOOK.format(slug=alertname.lower()),
            metrics=(obs,),
        )

    ws = list(snap.working_set.get(cid, ()))
    limit = _latest(snap.memory_limit.get(cid))
    near = False
    if ws and limit and limit > 0:
        # the run of samples at or above the ratio that ends at the newest sample
        run_start: datetime | None = None
        for t, v in reversed(ws):
            if v / limit < rules.memory_ratio:
                break
            run_start = t
        if run_start is not None and (ws[-1][0] - run_start).total_seconds() >= rules.memory_for_seconds:
            near = True
            ratio = ws[-1][1] / limit
            yield make(
                MEMORY_NEAR_LIMIT,
                run_start,
                f"Container {cid.container} of pod {cid.namespace}/{cid.pod} uses {ratio:.0%} of its memory limit",
                f"Working set {ws[-1][1]:.0f} of {limit:.0f} bytes (>= {rules.memory_ratio:.0%} since "
                f"{run_start.isoformat()}); an OOM kill is likely.",
                MetricObservation(
                    name="memory_working_set_ratio",
                    value=round(ratio, 4),
                    threshold=rules.memory_ratio,
                    unit="ratio",
                    query=snap.queries.get("working_set"),
                ),
            )
        window = since_cutoff(ws, snap.end - timedelta(seconds=rules.trend_window_seconds))
        span = (window[-1][0] - window[0][0]).total_seconds() if window else 0.0
        fit = linear_fit(window) if len(window) >= rules.trend_min_samples else None
        if not near and fit is not None and span >= rules.trend_window_seconds / 2:
            slope, now_value = fit
            if slope > 0:
                seconds = max((limit - now_value) / slope, 0.0)
                if seconds < rules.trend_horizon_seconds:
                    hours = seconds / 3600
                    yield make(
                        MEMORY_FILLS_SOON,
                        window[-1][0],
                        f"Container {cid.container} of pod {cid.namespace}/{cid.pod} fills its memory limit in "
                        f"{hours:.1f} hours",
                        f"Working set grows {slope * 3600:.0f} bytes/hour over the last "
                        f"{rules.trend_window_seconds / 3600:.1f} h; at that rate it reaches the {limit:.0f} byte "
                        f"limit in {hours:.1f} h (horizon {rules.trend_horizon_seconds / 3600:.1f} h).",
                        MetricObservation(
                            name="memory_working_set_bytes",
                            value=round(window[-1][1], 1),
                            threshold=limit,
                            unit="bytes",
                            query=snap.queries.get("working_set"),
                            predicted_exhaustion_seconds=round(seconds, 1),
                        ),
                    )

    start = snap.end - timedelta(seconds=rules.throttle_window_seconds)
    throttled = since_cutoff(snap.throttled_periods.get(cid, ()), start)
    periods = since_cutoff(snap.periods.get(cid, ()), start)
    total = counter_increase(periods)
    if len(throttled) >= 2 and total > 0 and total >= rules.throttle_min_periods:
        ratio = counter_increase(throttled) / total
        if ratio >= rules.throttle_ratio:
            yield make(
                CPU_THROTTLED,
                throttled[-1][0],
                f"Container {cid.container} of pod {cid.namespace}/{cid.pod} is CPU throttled in {ratio:.0%} of "
                f"periods",
                f"{ratio:.0%} of {total:.0f} CFS periods throttled over the last "
                f"{rules.throttle_window_seconds:.0f}s (threshold {rules.throttle_ratio:.0%}): the CPU limit is "
                f"too low for the load.",
                MetricObservation(
                    name="cpu_cfs_throttled_ratio",
                    value=round(min(ratio, 1.0), 4),
                    threshold=rules.throttle_ratio,
                    unit="ratio",
                    query=snap.queries.get("throttled_periods"),
                ),
            )
