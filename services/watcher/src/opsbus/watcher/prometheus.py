"""The metrics source of the saturation rules: Prometheus' HTTP API (`/api/v1/query_range`) over httpx.

`PrometheusSource.snapshot(now)` runs four range queries over the longest window the rules need, ending at
`now` rounded down to the step (so replicas read the same sample timestamps), and returns a `Snapshot` of plain
series per (namespace, pod, container). Any failure (connection, HTTP status, `status: error`, a body that is not
the documented shape) raises `PrometheusError`; `SaturationLoop` logs it and keeps the previous findings for
`stale_after_seconds`, so a Prometheus outage neither crashes the watcher nor resolves real alerts.

Series (cAdvisor, as scraped from the kubelet):
- working set: `container_memory_working_set_bytes`
- memory limit: `container_spec_memory_limit_bytes > 0` (0 means no limit: no ratio)
- CFS counters: `container_cpu_cfs_throttled_periods_total`, `container_cpu_cfs_periods_total`
each `max by (namespace, pod, container)` over real containers (`container!=""`, not the pause container).
- volumes (kubelet, per PersistentVolumeClaim): `kubelet_volume_stats_available_bytes`,
  `kubelet_volume_stats_capacity_bytes`, each `max by (namespace, persistentvolumeclaim)`, over their own (longer)
  trend window.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from opsbus.watcher.domain.detecting import Finding
from opsbus.watcher.domain.saturation import ContainerId, Sample, Snapshot, VolumeId, detect_saturation
from opsbus.watcher.settings import PrometheusOptions

log = logging.getLogger(__name__)

_BY = "namespace, pod, container"
_BY_VOLUME = "namespace, persistentvolumeclaim"
_CONTAINER_LABELS = ("namespace", "pod", "container")
_VOLUME_LABELS = ("namespace", "persistentvolumeclaim")
VOLUME_QUERIES = ("volume_available", "volume_capacity")


class PrometheusError(Exception):
    """A query that produced no usable answer."""


def queries(selector: str = "") -> dict[str, str]:
    sel = 'container!="", container!="POD"' + (f", {selector}" if selector else "")
    return {
        "working_set": f"max by ({_BY}) (container_memory_working_set_bytes{{{sel}}})",
        "memory_limit": f"max by ({_BY}) (container_spec_memory_limit_bytes{{{sel}}}) > 0",
        "throttled_periods": f"max by ({_BY}) (container_cpu_cfs_throttled_periods_total{{{sel}}})",
        "periods": f"max by ({_BY}) (container_cpu_cfs_periods_total{{{sel}}})",
        "volume_available": f"max by ({_BY_VOLUME}) (kubelet_volume_stats_available_bytes{{{selector}}})",
        "volume_capacity": f"max by ({_BY_VOLUME}) (kubelet_volume_stats_capacity_bytes{{{selector}}}) > 0",
    }


def parse_matrix(body: Any) -> dict[ContainerId, list[Sample]]:
    """The `matrix` result of a range query, by container. Series without the three labels and non-finite
    values (NaN, +Inf) are skipped."""
    return {ContainerId(*key): samples for key, samples in parse_series(body, _CONTAINER_LABELS).items()}


def parse_volumes(body: Any) -> dict[VolumeId, list[Sample]]:
    """The `matrix` result of a volume query, by PersistentVolumeClaim (series without both labels skipped)."""
    return {VolumeId(*key): samples for key, samples in parse_series(body, _VOLUME_LABELS).items()}


def parse_series(body: Any, labels: Sequence[str]) -> dict[tuple[str, ...], list[Sample]]:
    """The `matrix` result of a range query, keyed by the values of `labels`; series lacking one are skipped,
    and so are non-finite values (NaN, +Inf)."""
    if not isinstance(body, dict):
        raise PrometheusError("response is not a JSON object")
    if body.get("status") != "success":
        raise PrometheusError(f"{body.get('errorType') or 'error'}: {body.get('error') or body.get('status')}")
    data = body.get("data")
    if not isinstance(data, dict) or data.get("resultType") != "matrix" or not isinstance(data.get("result"), list):
        raise PrometheusError("response data is not a matrix")
    out: dict[tuple[str, ...], list[Sample]] = {}
    for series in data["result"]:
        metric = series.get("metric") or {}
        try:
            key = tuple(str(metric[label]) for label in labels)
        except KeyError:
            continue
        samples: list[Sample] = []
        for ts, raw in series.get("values") or []:
            try:
                value = float(raw)
            except (TypeError, ValueError):
                continue
            if math.isfinite(value):
                samples.append((datetime.fromtimestamp(float(ts), UTC), value))
        if samples:
            out[key] = sorted(samples)
    return out


class PrometheusSource:
    def __init__(self, options: PrometheusOptions, client: httpx.AsyncClient | None = None) -> None:
        if not options.url:
            raise ValueError("PrometheusSource needs a URL")
        self.options = options
        self.queries = queries(options.selector)
        self.client = client or httpx.AsyncClient(base_url=options.url.rstrip("/"), timeout=options.timeout_seconds)

    async def close(self) -> None:
        await self.client.aclose()

    async def query_range(self, query: str, start: datetime, end: datetime, step: float) -> Any:
        """The decoded answer of one range query (checked by `parse_matrix` / `parse_volumes`)."""
        params: dict[str, str | float] = {
            "query": query,
            "start": f"{start.timestamp():.3f}",
            "end": f"{end.timestamp():.3f}",
            "step": step,
        }
        try:
            resp = await self.client.get("/api/v1/query_range", params=params)
        except httpx.HTTPError as exc:
            raise PrometheusError(f"query failed: {type(exc).__name__}: {exc}") from exc
        try:
            body = resp.json()
        except ValueError as exc:
            raise PrometheusError(f"HTTP {resp.status_code}, body is not JSON") from exc
        if resp.status_code != 200 and isinstance(body, dict) and body.get("status") == "success":
            raise PrometheusError(f"HTTP {resp.status_code}")
        return body

    def window(self) -> float:
        """Range of the container queries: the longest window a container rule reads."""
        o = self.options
        return max(o.memory_for_seconds + o.step_seconds, o.trend_window_seconds, o.throttle_window_seconds)

    async def snapshot(self, now: datetime) -> Snapshot:
        step = self.options.step_seconds
        end = datetime.fromtimestamp(math.floor(now.timestamp() / step) * step, UTC)
        start = end - timedelta(seconds=self.window())
        series: dict[str, Mapping[ContainerId, Sequence[Sample]]] = {}
        volumes: dict[str, Mapping[VolumeId, Sequence[Sample]]] = {}
        volume_start = end - timedelta(seconds=self.options.volume_trend_window_seconds)
        for name, query in self.queries.items():
            if name in VOLUME_QUERIES:
                volumes[name] = parse_volumes(await self.query_range(query, volume_start, end, step))
            else:
                series[name] = parse_matrix(await self.query_range(query, start, end, step))
        return Snapshot(
            end=end,
            working_set=series["working_set"],
            memory_limit=series["memory_limit"],
            throttled_periods=series["throttled_periods"],
            periods=series["periods"],
            volume_available=volumes["volume_available"],
            volume_capacity=volumes["volume_capacity"],
            queries=self.queries,
        )


class SaturationLoop:
    """One run per interval: snapshot -> rules -> the engine's saturation findings."""

    def __init__(
        self,
        source: PrometheusSource,
        *,
        cluster: str,
        apply: Callable[[list[Finding]], None],
        cache: Any = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.source = source
        self.cluster = cluster
        self.apply = apply
        self.cache = cache
        self.clock = clock
        self.last_success: datetime | None = None
        self.failures = 0

    async def run_once(self) -> list[Finding] | None:
        """Findings applied this run, or None when the query failed (previous findings kept while fresh)."""
        now = self.clock()
        try:
            snap = await self.source.snapshot(now)
        except PrometheusError as exc:
            self.failures += 1
            log.warning("saturation rules skipped: Prometheus %s (%d in a row)", exc, self.failures)
            stale = self.source.options.stale_after_seconds
            if self.last_success is None or (now - self.last_success).total_seconds() > stale:
                self.apply([])
            return None
        findings = detect_saturation(snap, self.source.options, self.cluster, self.cache)
        if not snap.working_set and not snap.throttled_periods:
            log.info("saturation rules: Prometheus returned no container series")
        if not snap.volume_available:
            log.debug("saturation rules: Prometheus returned no kubelet volume series")
        self.failures = 0
        self.last_success = now
        self.apply(findings)
        return findings
