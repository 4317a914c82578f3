"""The real-Prometheus test fixture itself: Debian's prometheus scraping an in-process exporter, and history
backfilled with promtool before the server starts."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from prometheus_client import Counter, Gauge

from opsbus.common.testing.fixtures import StartPrometheus
from opsbus.common.testing.prometheus import (
    Exporter,
    Family,
    PrometheusError,
    PrometheusServer,
    backfill,
    openmetrics,
    prometheus_server,
)

pytestmark = pytest.mark.integration


def value(result: list[dict[str, object]]) -> float:
    (series,) = result
    at_value = series["value"]
    assert isinstance(at_value, list)
    return float(at_value[1])


async def test_the_server_scrapes_what_the_test_sets_on_the_exporter(
    prometheus_exporter: Exporter, prometheus_server: PrometheusServer
) -> None:
    assert prometheus_server.query('up{job="exporter"}')[0]["metric"]["instance"] == prometheus_exporter.target
    working_set = Gauge(
        "container_memory_working_set_bytes",
        "bytes",
        ["namespace", "pod", "container"],
        registry=prometheus_exporter.registry,
    )
    working_set.labels("shop", "web-1", "app").set(200 * 2**20)
    got = await prometheus_server.until('container_memory_working_set_bytes{pod="web-1"}')
    assert value(got) == 200 * 2**20 and got[0]["metric"]["namespace"] == "shop"

    working_set.labels("shop", "web-1", "app").set(900 * 2**20)
    got = await prometheus_server.until(
        'container_memory_working_set_bytes{pod="web-1"}', lambda r: bool(r) and value(r) == 900 * 2**20
    )

    requests = Counter("http_requests", "requests", ["code"], registry=prometheus_exporter.registry)
    requests.labels("200").inc(0)
    await prometheus_server.until('http_requests_total{code="200"}')
    requests.labels("200").inc(50)  # the counter moves between scrapes: a rate appears
    rate = await prometheus_server.until(
        'rate(http_requests_total{code="200"}[1m])', lambda r: bool(r) and value(r) > 0
    )
    assert value(rate) > 0


async def test_a_query_that_matches_nothing_answers_an_empty_vector_and_bad_promql_raises(
    prometheus_server: PrometheusServer,
) -> None:
    assert prometheus_server.query("no_such_metric") == []
    with pytest.raises(PrometheusError, match="bad_data"):
        prometheus_server.query("sum(")
    with pytest.raises(TimeoutError, match="no_such_metric"):
        await prometheus_server.until("no_such_metric", timeout=1.5)


def test_backfilled_history_is_queryable_at_its_own_timestamps(start_prometheus: StartPrometheus) -> None:
    now = time.time()
    start = now - 2 * 86_400
    points = [(start + i * 600, float(i)) for i in range(int((now - 4 * 3600 - start) // 600))]
    history = openmetrics(
        [
            Family("container_memory_working_set_bytes", "gauge", {(("pod", "web-1"),): points}),
            Family(
                "container_cpu_usage_seconds_total",
                "counter",
                {(("pod", "web-1"),): [(at, 0.1 * (at - start)) for at, _ in points]},
            ),
        ]
    )
    server = start_prometheus(history=history)
    at, expected = points[100]
    assert value(server.query('container_memory_working_set_bytes{pod="web-1"}', at=at)) == expected
    cpu = server.query('rate(container_cpu_usage_seconds_total{pod="web-1"}[30m])', at=at)
    assert value(cpu) == pytest.approx(0.1)
    assert (
        value(server.query("count_over_time(container_memory_working_set_bytes[1d])", at=points[-1][0])) == 145
    )  # [t-1d, t], both ends
    assert server.query("container_memory_working_set_bytes") == []  # stale by now: no sample in the last 5 min


def test_backfill_refuses_the_head_block_range_and_what_retention_would_delete(tmp_path: Path) -> None:
    now = time.time()
    recent = openmetrics([Family("g", "gauge", {(): [(now - 3600, 1.0)]})])
    with pytest.raises(ValueError, match="last 3 h"):
        backfill(tmp_path, recent, now=now)
    ancient = openmetrics([Family("g", "gauge", {(): [(now - 40 * 86_400, 1.0)]})])
    with pytest.raises(ValueError, match="older than the retention"):
        backfill(tmp_path, ancient, now=now)
    with pytest.raises(ValueError, match="not finite"):
        openmetrics([Family("g", "gauge", {(): [(now - 86_400, float("nan"))]})])


def test_the_server_process_is_gone_after_the_context() -> None:
    with prometheus_server() as server:
        proc = server.proc
        assert proc is not None and proc.poll() is None
        assert server.query("vector(1)")[0]["value"][1] == "1"
        storage = server.storage_dir
    assert proc.poll() is not None
    assert not storage.exists()
