"""The Prometheus usage adapter against a real HTTP server on 127.0.0.1 (the fake Prometheus), and the fallback."""

from __future__ import annotations

from collections.abc import Sequence

import httpx
import pytest

from opsbus.optimizer.testing import FakePrometheus
from opsbus.optimizer.usage import FallbackUsage, PrometheusUsage, Sample, UsageUnavailable

MI = 2**20


def usage(ns: str, pod: str, container: str, t: float) -> tuple[float, float] | None:
    if pod == "gap" and 120 <= t < 240:
        return None
    return 0.25 if pod.startswith("web") else 0.05, (300 if container == "app" else 50) * MI


SERIES = [("shop", "web-1", "app"), ("shop", "web-1", "sidecar"), ("shop", "gap", "app"), ("other", "x", "app")]


async def test_range_query_maps_series_to_samples() -> None:
    async with FakePrometheus(usage, lambda: SERIES).running() as prom, httpx.AsyncClient() as http:
        samples = await PrometheusUsage(http, prom.url).samples(["shop"], 0.0, 600.0, 60.0)
    web = [s for s in samples if s.pod == "web-1" and s.container == "app"]
    assert len(web) == 11  # 0..600 every 60 s
    assert web[0].cpu_millicores == pytest.approx(250.0) and web[0].memory_bytes == 300 * MI
    assert {s.namespace for s in samples} == {"shop"}  # the namespace matcher was sent and honoured
    assert len([s for s in samples if s.pod == "gap"]) == 9  # missing points stay missing
    sent = prom.requests[0]["query"]
    assert 'namespace=~"shop"' in sent and 'container!="POD"' in sent


async def test_long_ranges_are_split_below_the_points_limit() -> None:
    async with FakePrometheus(usage, lambda: SERIES[:1]).running() as prom, httpx.AsyncClient() as http:
        samples = await PrometheusUsage(http, prom.url).samples(["shop"], 0.0, 15_000 * 60.0, 60.0)
    assert len(samples) == 15_001
    assert len(prom.requests) == 4  # two queries, each in two chunks of at most 10 000 points


async def test_an_error_answer_raises_usage_unavailable() -> None:
    async with FakePrometheus(usage, lambda: SERIES, fail=True).running() as prom, httpx.AsyncClient() as http:
        with pytest.raises(UsageUnavailable, match="HTTP 500"):
            await PrometheusUsage(http, prom.url).samples([], 0.0, 60.0, 60.0)


async def test_connection_refused_falls_back() -> None:
    class Static:
        name = "metrics.k8s.io"

        async def samples(self, namespaces: Sequence[str], start: float, end: float, step: float) -> list[Sample]:
            return [Sample(end, "shop", "web-1", "app", 100.0, 1e8)]

    async with httpx.AsyncClient() as http:
        source = FallbackUsage(PrometheusUsage(http, "http://127.0.0.1:9", timeout=2.0), Static())
        samples = await source.samples(["shop"], 0.0, 60.0, 60.0)
    assert source.last_used == "metrics.k8s.io"
    assert samples[0].cpu_millicores == 100.0
