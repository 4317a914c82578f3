"""The analyzer's read-only port to a metrics source, and its Prometheus HTTP API adapter (`query_range`).

Why this module exists: a saturation or error-rate step right after a change is strong evidence that the change
did it, and Prometheus is where operators keep those series. The queries are configuration (PromQL templates
with `$namespace` and `$workload`), so any exporter's names fit. Without a Prometheus URL the analyzer uses
`NoMetrics` and says so in what it checked; a slow or failing Prometheus costs a series, never the diagnosis
(bounded by the timeout, errors logged and skipped). Standard library HTTP in a thread: no new dependency.
Reads only; never decides anything (steps are found by the pure `domain.metrics`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from datetime import UTC, datetime
from string import Template
from typing import Any, Protocol

from opsbus.analyzer.domain.metrics import Series
from opsbus.common.events.payloads import WorkloadRef

log = logging.getLogger(__name__)
MAX_POINTS = 120


class MetricsReader(Protocol):
    async def series(self, workload: WorkloadRef, start: datetime, end: datetime) -> tuple[Series, ...] | None:
        """The configured series of `workload` between `start` and `end`; None when no source is configured."""
        ...


class NoMetrics:
    async def series(self, workload: WorkloadRef, start: datetime, end: datetime) -> tuple[Series, ...] | None:
        return None


def _points(body: Any) -> tuple[tuple[datetime, float], ...]:
    """A `matrix` answer as one series: the largest value per timestamp when several series came back."""
    if not isinstance(body, dict) or body.get("status") != "success":
        raise ValueError(f"status {body.get('status') if isinstance(body, dict) else type(body).__name__}")
    data = body.get("data") or {}
    if data.get("resultType") != "matrix":
        raise ValueError(f"resultType {data.get('resultType')!r}, want matrix")
    by_time: dict[float, float] = {}
    for result in data.get("result") or []:
        for at, raw in result.get("values") or []:
            value = float(raw)
            if math.isfinite(value):
                by_time[float(at)] = max(value, by_time.get(float(at), value))
    return tuple((datetime.fromtimestamp(at, UTC), v) for at, v in sorted(by_time.items()))


class PrometheusReader:
    def __init__(self, url: str, queries: Mapping[str, str], *, timeout: float) -> None:
        self.url = url.rstrip("/") + "/api/v1/query_range"
        self.queries = dict(queries)
        self.timeout = timeout

    def _get(self, params: dict[str, str]) -> Any:
        request = urllib.request.Request(self.url + "?" + urllib.parse.urlencode(params))  # noqa: S310 - configured URL
        with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
            return json.loads(response.read())

    async def _one(self, name: str, template: str, workload: WorkloadRef, start: datetime, end: datetime) -> Series:
        query = Template(template).safe_substitute(namespace=workload.namespace, workload=workload.name)
        resolution = max(1.0, math.ceil((end - start).total_seconds() / MAX_POINTS))
        params = {
            "query": query,
            "start": f"{start.timestamp():.3f}",
            "end": f"{end.timestamp():.3f}",
            "step": f"{resolution:g}",
        }
        body = await asyncio.wait_for(asyncio.to_thread(self._get, params), self.timeout + 0.2)
        return Series(name=name, query=query, points=_points(body), resolution_seconds=resolution)

    async def series(self, workload: WorkloadRef, start: datetime, end: datetime) -> tuple[Series, ...] | None:
        names = list(self.queries)
        answers = await asyncio.gather(
            *(self._one(n, self.queries[n], workload, start, end) for n in names), return_exceptions=True
        )
        found = []
        for name, answer in zip(names, answers, strict=True):
            if isinstance(answer, Series):
                found.append(answer)
            elif isinstance(answer, urllib.error.URLError | OSError | ValueError | TimeoutError | KeyError):
                log.info("metric %s of %s not read: %s", name, workload, answer)
            elif isinstance(answer, BaseException):
                raise answer
        return tuple(found)
