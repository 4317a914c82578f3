"""The usage port: container CPU and memory samples from a metrics source.

* `PrometheusUsage`: the Prometheus HTTP API (`/api/v1/query_range`) over the standard cAdvisor metrics the
  kubelet exports: `container_memory_working_set_bytes` (what the OOM killer and evictions look at) and
  `rate(container_cpu_usage_seconds_total[5m])`, per (namespace, pod, container). Long ranges are split so
  no request asks for more than 10 000 points (Prometheus refuses 11 000).
* `MetricsServerUsage`: `metrics.k8s.io/v1beta1` PodMetrics: only the current sample, as metrics-server
  keeps no history; enough to keep histograms growing where no Prometheus runs.
* `FallbackUsage`: the first source, and the second when the first fails.

Failures raise `UsageUnavailable` (a TransientError): a cycle without usage plans nothing new.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from opsbus.common.errors import TransientError
from opsbus.optimizer.domain.quantities import cpu_millicores, memory_bytes

log = logging.getLogger(__name__)

CPU_QUERY = (
    'sum by (namespace, pod, container) (rate(container_cpu_usage_seconds_total{{container!="",container!="POD"{sel}}}'
    "[5m]))"
)
MEMORY_QUERY = (
    'max by (namespace, pod, container) (container_memory_working_set_bytes{{container!="",container!="POD"{sel}}})'
)
MAX_POINTS = 10_000


class UsageUnavailable(TransientError):
    """The metrics source could not answer."""


@dataclass(frozen=True)
class Sample:
    at: float
    namespace: str
    pod: str
    container: str
    cpu_millicores: float | None = None
    memory_bytes: float | None = None


class UsageSource(Protocol):
    name: str

    async def samples(self, namespaces: Sequence[str], start: float, end: float, step: float) -> list[Sample]: ...


def _selector(namespaces: Sequence[str]) -> str:
    if not namespaces:
        return ""
    return ',namespace=~"' + "|".join(sorted(namespaces)) + '"'


class PrometheusUsage:
    name = "prometheus"

    def __init__(self, http: httpx.AsyncClient, url: str, *, timeout: float = 30.0) -> None:
        self.url = url
        self._http = http
        self._url = url.rstrip("/") + "/api/v1/query_range"
        self._timeout = timeout

    async def _range(self, query: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        chunk = step * (MAX_POINTS - 1)
        t = start
        while t <= end:
            stop = min(end, t + chunk)
            params = {"query": query, "start": f"{t:.3f}", "end": f"{stop:.3f}", "step": f"{step:g}"}
            try:
                response = await self._http.get(self._url, params=params, timeout=self._timeout)
                body = response.json()
            except (httpx.HTTPError, ValueError) as exc:
                raise UsageUnavailable(f"prometheus: {type(exc).__name__}: {exc}") from exc
            if response.status_code != 200 or body.get("status") != "success":
                raise UsageUnavailable(
                    f"prometheus answered HTTP {response.status_code}: {body.get('errorType')}: {body.get('error')}"
                )
            data = body.get("data") or {}
            if data.get("resultType") != "matrix":
                raise UsageUnavailable(f"prometheus resultType {data.get('resultType')!r}, want matrix")
            out.extend(data.get("result") or [])
            t = stop + step
        return out

    async def samples(self, namespaces: Sequence[str], start: float, end: float, step: float) -> list[Sample]:
        return await self.select(_selector(namespaces), start, end, step)

    async def select(self, sel: str, start: float, end: float, step: float) -> list[Sample]:
        """Samples of the series matching the extra label matchers `sel` (`,label=~"..."`)."""
        cpu, mem = await asyncio.gather(
            self._range(CPU_QUERY.format(sel=sel), start, end, step),
            self._range(MEMORY_QUERY.format(sel=sel), start, end, step),
        )
        merged: dict[tuple[float, str, str, str], dict[str, float]] = defaultdict(dict)
        for series, key, scale in ((cpu, "cpu", 1000.0), (mem, "memory", 1.0)):
            for s in series:
                m = s.get("metric") or {}
                ns, pod, container = m.get("namespace"), m.get("pod"), m.get("container")
                if not (ns and pod and container):
                    continue
                for at, value in s.get("values") or []:
                    try:
                        v = float(value) * scale
                    except (TypeError, ValueError):
                        continue
                    if math.isfinite(v):  # NaN and Inf are not usage
                        merged[(float(at), ns, pod, container)][key] = v
        return [
            Sample(at, ns, pod, c, cpu_millicores=v.get("cpu"), memory_bytes=v.get("memory"))
            for (at, ns, pod, c), v in sorted(merged.items())
        ]


class MetricsServerUsage:
    """metrics.k8s.io: `list_pod_metrics(namespace or None)` returns the PodMetrics items (dicts)."""

    name = "metrics.k8s.io"

    def __init__(self, list_pod_metrics: Callable[[str | None], Any], clock: Callable[[], float]) -> None:
        self._list = list_pod_metrics
        self._clock = clock

    async def samples(self, namespaces: Sequence[str], start: float, end: float, step: float) -> list[Sample]:
        out: list[Sample] = []
        scopes: list[str | None] = list(namespaces) or [None]
        for ns in scopes:
            try:
                items = await self._list(ns)
            except Exception as exc:
                raise UsageUnavailable(f"metrics.k8s.io: {type(exc).__name__}: {exc}") from exc
            now = self._clock()
            for item in items:
                meta = item.get("metadata") or {}
                for c in item.get("containers") or []:
                    usage = c.get("usage") or {}
                    out.append(
                        Sample(
                            now,
                            meta.get("namespace", ns or ""),
                            meta.get("name", ""),
                            c.get("name", ""),
                            cpu_millicores=float(cpu_millicores(usage["cpu"]) or 0) if "cpu" in usage else None,
                            memory_bytes=float(memory_bytes(usage["memory"]) or 0) if "memory" in usage else None,
                        )
                    )
        return out


class FallbackUsage:
    def __init__(self, primary: UsageSource, fallback: UsageSource) -> None:
        self.primary, self.fallback = primary, fallback
        self.name = primary.name
        self.last_used = primary.name

    async def samples(self, namespaces: Sequence[str], start: float, end: float, step: float) -> list[Sample]:
        try:
            result = await self.primary.samples(namespaces, start, end, step)
            self.last_used = self.primary.name
            return result
        except UsageUnavailable as exc:
            log.warning("%s unavailable (%s): falling back to %s", self.primary.name, exc, self.fallback.name)
            self.last_used = self.fallback.name
            return await self.fallback.samples(namespaces, start, end, step)
