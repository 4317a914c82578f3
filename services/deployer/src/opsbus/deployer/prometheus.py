"""The metrics provider port and its Prometheus HTTP API adapter.

`query()` never raises: whatever goes wrong (connection refused, timeout, HTTP error, `status: error`, a
result with several series, a non-number) comes back as `Sample(error=...)`, and an empty result as
`Sample(value=None)`. The pure analysis then calls both inconclusive, so a broken provider can never make a
rollout pass (keptn#9146). NaN and Inf are returned as floats and judged inconclusive there too.
"""

from __future__ import annotations

from typing import Any, Protocol

import httpx

from opsbus.common.events.payloads.deploy import MetricsProvider
from opsbus.deployer.domain.analysis import Sample


class MetricsPort(Protocol):
    async def query(self, provider: MetricsProvider) -> Sample: ...


def _value(result: Any) -> float:
    return float(result[1])


class Prometheus:
    def __init__(self, http: httpx.AsyncClient, *, default_url: str | None) -> None:
        self._http = http
        self._default = default_url

    async def query(self, provider: MetricsProvider) -> Sample:  # noqa: PLR0911 - one answer per failure mode
        base = provider.address or self._default
        if not base:
            return Sample(
                error="no Prometheus address: the metric names none and OPSBUS_DEPLOYER__PROMETHEUS_URL is unset"
            )
        url = base.rstrip("/") + "/api/v1/query"
        try:
            response = await self._http.get(url, params={"query": provider.query}, timeout=provider.timeout_seconds)
        except httpx.HTTPError as exc:
            return Sample(error=f"prometheus {type(exc).__name__}: {exc}"[:1024])
        try:
            body = response.json()
        except ValueError:
            return Sample(error=f"prometheus answered HTTP {response.status_code} with a non-JSON body")
        if response.status_code != 200 or body.get("status") != "success":
            return Sample(
                error=f"prometheus answered HTTP {response.status_code}: {body.get('errorType')}: {body.get('error')}"[
                    :1024
                ]
            )
        data = body.get("data") or {}
        kind = data.get("resultType")
        result = data.get("result")
        try:
            if kind == "scalar":
                return Sample(value=_value(result))
            if kind == "vector":
                if not result:
                    return Sample(value=None)
                if len(result) > 1:
                    return Sample(error=f"query returned {len(result)} series; an analysis metric needs exactly one")
                return Sample(value=_value(result[0]["value"]))
        except (TypeError, ValueError, KeyError, IndexError) as exc:
            return Sample(error=f"prometheus result not understood: {exc}")
        return Sample(error=f"prometheus resultType {kind!r} is not supported (want scalar or a one-sample vector)")
