"""The watcher's Prometheus adapter against a real HTTP server on 127.0.0.1 answering in Prometheus' JSON format:
range queries (cAdvisor container series, kubelet volume stats) are parsed into the saturation rules' alerts;
errors, garbage and empty answers give no alert, are logged, and never raise; an outage keeps the last findings
only for `stale_after_seconds`."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from opsbus.common.testing.servers import free_port
from opsbus.watcher.domain.detecting import Finding
from opsbus.watcher.domain.saturation import CPU_THROTTLED, MEMORY_NEAR_LIMIT, VOLUME_FILLING_UP
from opsbus.watcher.prometheus import PrometheusSource, SaturationLoop
from opsbus.watcher.settings import PrometheusOptions

pytestmark = pytest.mark.integration

NOW = datetime(2025, 3, 14, 9, 30, 7, tzinfo=UTC)
GI = 1024**3
LABELS = {"namespace": "payments", "pod": "checkout-7d9f8b6c5-x2x4q", "container": "app"}


@dataclass
class Fake:
    """What the fake Prometheus answers: `mode` selects the shape; every request is recorded."""

    mode: str = "saturated"
    requests: list[dict[str, str]] = field(default_factory=list)

    async def query_range(self, request: Request) -> Response:
        params = dict(request.query_params)
        self.requests.append(params)
        if self.mode == "unavailable":
            body = {"status": "error", "errorType": "unavailable", "error": "TSDB not ready"}
            return JSONResponse(body, status_code=503)
        if self.mode == "bad_data":
            body = {"status": "error", "errorType": "bad_data", "error": 'parse error: unexpected "}"'}
            return JSONResponse(body, status_code=400)
        if self.mode == "html":
            return PlainTextResponse("<html>502 Bad Gateway</html>", status_code=502)
        if self.mode == "vector":  # an instant-query shape where a matrix belongs
            return JSONResponse({"status": "success", "data": {"resultType": "vector", "result": []}})
        if self.mode == "slow":
            await asyncio.sleep(2)
        if self.mode == "empty":
            return JSONResponse({"status": "success", "data": {"resultType": "matrix", "result": []}})
        start, end, step = float(params["start"]), float(params["end"]), float(params["step"])
        stamps = [start + i * step for i in range(int((end - start) / step) + 1)]
        query = params["query"]
        if "kubelet_volume_stats" in query:
            return JSONResponse(volume_answer(query, stamps))
        if "working_set" in query:
            values = [0.95 * GI for _ in stamps]
        elif "memory_limit" in query:
            values = [float(GI) for _ in stamps]
        elif "throttled" in query:
            values = [1000.0 + 150 * i for i in range(len(stamps))]
        else:
            values = [9000.0 + 300 * i for i in range(len(stamps))]
        result: list[dict[str, Any]] = [
            {
                "metric": LABELS,
                # Prometheus sends [unix seconds (float), "value as string"], NaN/Inf as strings too
                "values": [
                    [ts, "NaN" if i == 3 else repr(v)] for i, (ts, v) in enumerate(zip(stamps, values, strict=True))
                ],
            },
            {"metric": {"namespace": "kube-system"}, "values": [[stamps[0], "1"]]},  # no pod/container: skipped
        ]
        return JSONResponse({"status": "success", "data": {"resultType": "matrix", "result": result}})


CLAIM = {"namespace": "payments", "persistentvolumeclaim": "data-ledger-0"}
CAPACITY = 10 * GI


def volume_answer(query: str, stamps: list[float]) -> dict[str, Any]:
    """data-ledger-0 goes from 10% to 5% free over the window (full in as long again); logs-ledger-0 stays half
    empty; one series lacks the claim label."""
    span = stamps[-1] - stamps[0]
    if "available" in query:
        filling = [CAPACITY * (0.10 - 0.05 * (ts - stamps[0]) / span) for ts in stamps]
        steady = [CAPACITY * 0.5 for _ in stamps]
    else:
        filling = steady = [float(CAPACITY) for _ in stamps]
    result = [
        {"metric": CLAIM, "values": [[ts, repr(v)] for ts, v in zip(stamps, filling, strict=True)]},
        {
            "metric": {"namespace": "payments", "persistentvolumeclaim": "logs-ledger-0"},
            "values": [[ts, repr(v)] for ts, v in zip(stamps, steady, strict=True)],
        },
        {"metric": {"namespace": "payments"}, "values": [[stamps[0], "1"]]},
    ]
    return {"status": "success", "data": {"resultType": "matrix", "result": result}}


@pytest.fixture
async def prometheus() -> AsyncIterator[tuple[Fake, str]]:
    fake = Fake()
    app = Starlette(routes=[Route("/api/v1/query_range", fake.query_range)])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            break
        await asyncio.sleep(0.01)
    assert server.started
    try:
        yield fake, f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 5)


def options(url: str, **kw: Any) -> PrometheusOptions:
    base: dict[str, Any] = {
        "url": url,
        "step_seconds": 30,
        "timeout_seconds": 0.5,
        "memory_for_seconds": 300,
        "trend_window_seconds": 600,
        "throttle_window_seconds": 300,
        "selector": 'cluster="prod"',
    }
    return PrometheusOptions.model_validate(base | kw)


class Applied:
    def __init__(self) -> None:
        self.calls: list[list[Finding]] = []

    def __call__(self, findings: list[Finding]) -> None:
        self.calls.append(findings)


async def test_parses_real_range_answers_into_alerts(prometheus: tuple[Fake, str]) -> None:
    fake, url = prometheus
    source = PrometheusSource(options(url))
    applied = Applied()
    loop = SaturationLoop(source, cluster="prod", apply=applied, clock=lambda: NOW)
    try:
        found = await loop.run_once()
    finally:
        await source.close()
    assert found is not None
    assert sorted(f.alertname for f in found) == sorted([MEMORY_NEAR_LIMIT, CPU_THROTTLED, VOLUME_FILLING_UP])
    assert applied.calls == [found]
    by_name = {f.alertname: f for f in found}
    assert by_name[MEMORY_NEAR_LIMIT].labels["pod"] == LABELS["pod"]
    assert by_name[MEMORY_NEAR_LIMIT].metrics[0].value == pytest.approx(0.95)
    assert by_name[CPU_THROTTLED].metrics[0].value == pytest.approx(0.5)
    # six range queries, the window aligned to the step (replicas read the same timestamps), selector applied;
    # the container series over the container rules' window, the volume stats over the volume trend window
    assert len(fake.requests) == 6
    for params in fake.requests:
        assert float(params["end"]) % 30 == 0 and float(params["end"]) <= NOW.timestamp()
        assert 'cluster="prod"' in params["query"]
        if "kubelet_volume_stats" in params["query"]:
            assert float(params["end"]) - float(params["start"]) == 6 * 3600
            assert "by (namespace, persistentvolumeclaim)" in params["query"]
        else:
            assert float(params["end"]) - float(params["start"]) == 600
            assert 'container!="POD"' in params["query"]
    assert math.isclose(float(fake.requests[0]["step"]), 30)


async def test_disk_fill_prediction_from_kubelet_volume_stats(prometheus: tuple[Fake, str]) -> None:
    _, url = prometheus
    source = PrometheusSource(options(url))
    try:
        found = await SaturationLoop(source, cluster="prod", apply=Applied(), clock=lambda: NOW).run_once()
    finally:
        await source.close()
    assert found is not None
    (volume,) = [f for f in found if f.alertname == VOLUME_FILLING_UP]  # the steady, half-empty claim: no alert
    assert dict(volume.labels) == {
        "alertname": VOLUME_FILLING_UP,
        "cluster": "prod",
        "severity": "warning",
        "namespace": "payments",
        "persistentvolumeclaim": "data-ledger-0",
    }
    assert (volume.target.kind, volume.target.namespace, volume.target.name) == (
        "PersistentVolumeClaim",
        "payments",
        "data-ledger-0",
    )
    (obs,) = volume.metrics
    # 5% of capacity lost in 6 h, 5% left: full in 6 h (the fit over real range answers, NaN-free, step-aligned)
    assert obs.predicted_exhaustion_seconds == pytest.approx(6 * 3600, rel=0.01)
    assert obs.value == pytest.approx(0.05 * CAPACITY, rel=0.01)
    assert obs.unit == "bytes" and obs.query is not None and "kubelet_volume_stats_available_bytes" in obs.query
    assert "fills up in 6.0 hours" in volume.summary


@pytest.mark.parametrize("mode", ["unavailable", "bad_data", "html", "vector", "slow"])
async def test_errors_give_no_alert_and_are_logged(
    prometheus: tuple[Fake, str], mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    fake, url = prometheus
    fake.mode = mode
    source = PrometheusSource(options(url))
    applied = Applied()
    loop = SaturationLoop(source, cluster="prod", apply=applied, clock=lambda: NOW)
    try:
        with caplog.at_level(logging.WARNING, logger="opsbus.watcher.prometheus"):
            assert await loop.run_once() is None
    finally:
        await source.close()
    assert applied.calls == [[]]  # nothing known: no saturation findings
    assert loop.failures == 1
    (record,) = [r for r in caplog.records if r.name == "opsbus.watcher.prometheus"]
    assert "saturation rules skipped" in record.getMessage()
    expected = {
        "unavailable": "TSDB not ready",
        "bad_data": "parse error",
        "html": "not JSON",
        "vector": "not a matrix",
        "slow": "Timeout",
    }[mode]
    assert expected in record.getMessage()


async def test_connection_refused_gives_no_alert(caplog: pytest.LogCaptureFixture) -> None:
    source = PrometheusSource(options(f"http://127.0.0.1:{free_port()}"))
    applied = Applied()
    try:
        with caplog.at_level(logging.WARNING, logger="opsbus.watcher.prometheus"):
            assert await SaturationLoop(source, cluster="prod", apply=applied, clock=lambda: NOW).run_once() is None
    finally:
        await source.close()
    assert applied.calls == [[]]
    assert any("ConnectError" in r.getMessage() for r in caplog.records)


async def test_no_data_gives_no_alert_and_is_logged(
    prometheus: tuple[Fake, str], caplog: pytest.LogCaptureFixture
) -> None:
    fake, url = prometheus
    fake.mode = "empty"
    source = PrometheusSource(options(url))
    applied = Applied()
    try:
        with caplog.at_level(logging.INFO, logger="opsbus.watcher.prometheus"):
            found = await SaturationLoop(source, cluster="prod", apply=applied, clock=lambda: NOW).run_once()
    finally:
        await source.close()
    assert found == []
    assert applied.calls == [[]]
    assert any("no container series" in r.getMessage() for r in caplog.records)


async def test_outage_keeps_findings_until_stale(prometheus: tuple[Fake, str]) -> None:
    fake, url = prometheus
    clock = [NOW]
    source = PrometheusSource(options(url, stale_after_seconds=120))
    applied = Applied()
    loop = SaturationLoop(source, cluster="prod", apply=applied, clock=lambda: clock[0])
    try:
        first = await loop.run_once()
        assert first is not None and len(first) == 3
        fake.mode = "unavailable"
        clock[0] += timedelta(seconds=60)
        assert await loop.run_once() is None
        assert applied.calls == [first]  # within stale_after: the firing alerts are not resolved by an outage
        clock[0] += timedelta(seconds=90)
        assert await loop.run_once() is None
        assert applied.calls == [first, []]  # stale: dropped (the alert book resolves after its hysteresis)
        fake.mode = "saturated"
        clock[0] += timedelta(seconds=30)
        again = await loop.run_once()
    finally:
        await source.close()
    assert again is not None and {f.fingerprint for f in again} == {f.fingerprint for f in first}
    assert loop.failures == 0
