"""The watcher's saturation rules against a real Prometheus (Debian's prometheus package).

The test's exporter publishes cAdvisor's memory series for two containers (one at 95% of its limit, one at
50%) and kubelet volume stats for a claim almost full; the real server scrapes them every second, and the
watcher's `PrometheusSource` + `SaturationLoop` read them back with their own range queries. Only the
near-limit container and the full volume raise findings.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import Gauge

from opsbus.common.testing.prometheus import Exporter, PrometheusServer
from opsbus.watcher.domain.detecting import Finding
from opsbus.watcher.domain.saturation import MEMORY_NEAR_LIMIT, VOLUME_FILLING_UP
from opsbus.watcher.prometheus import PrometheusSource, SaturationLoop
from opsbus.watcher.settings import PrometheusOptions

pytestmark = pytest.mark.integration

GI = 1024**3
CONTAINER = ["cluster", "namespace", "pod", "container"]


def options(url: str) -> PrometheusOptions:
    """The rules' windows shrunk to seconds: the series a test can scrape in its lifetime."""
    return PrometheusOptions.model_validate(
        {
            "url": url,
            "step_seconds": 1,
            "timeout_seconds": 5,
            "memory_for_seconds": 5,
            "trend_window_seconds": 10,
            "throttle_window_seconds": 10,
            "volume_trend_window_seconds": 10,
            "selector": 'cluster="prod"',
        }
    )


async def test_memory_near_limit_and_a_full_volume_are_found_in_what_prometheus_scraped(
    prometheus_exporter: Exporter, prometheus_server: PrometheusServer
) -> None:
    reg = prometheus_exporter.registry
    working_set = Gauge("container_memory_working_set_bytes", "bytes", CONTAINER, registry=reg)
    limit = Gauge("container_spec_memory_limit_bytes", "bytes", CONTAINER, registry=reg)
    for pod, used in (("checkout-1", 0.95), ("search-1", 0.5)):
        working_set.labels("prod", "payments", pod, "app").set(used * GI)
        limit.labels("prod", "payments", pod, "app").set(GI)
    limit.labels("staging", "payments", "checkout-1", "app").set(GI)  # another cluster: the selector skips it
    working_set.labels("staging", "payments", "checkout-1", "app").set(GI)
    volume = ["cluster", "namespace", "persistentvolumeclaim"]
    available = Gauge("kubelet_volume_stats_available_bytes", "bytes", volume, registry=reg)
    capacity = Gauge("kubelet_volume_stats_capacity_bytes", "bytes", volume, registry=reg)
    available.labels("prod", "payments", "data-db-0").set(0.01 * 100 * GI)
    capacity.labels("prod", "payments", "data-db-0").set(100 * GI)

    # the rule wants every sample of the last 5 s above the ratio: at least 8 scrapes of the series first
    await prometheus_server.until(
        'count_over_time(container_memory_working_set_bytes{pod="checkout-1",cluster="prod"}[20s])',
        lambda r: bool(r) and float(r[0]["value"][1]) >= 8,
        timeout=40,
    )
    applied: list[list[Finding]] = []
    source = PrometheusSource(options(prometheus_server.url))
    loop = SaturationLoop(source, cluster="prod", apply=applied.append, clock=lambda: datetime.now(UTC))
    try:
        found = await loop.run_once()
    finally:
        await source.close()

    assert found is not None and applied == [found]
    by_name: dict[str, list[Finding]] = {}
    for f in found:
        by_name.setdefault(f.alertname, []).append(f)
    assert set(by_name) == {MEMORY_NEAR_LIMIT, VOLUME_FILLING_UP}, [(f.alertname, f.labels) for f in found]
    (memory,) = by_name[MEMORY_NEAR_LIMIT]
    assert memory.labels["pod"] == "checkout-1" and memory.labels["namespace"] == "payments"
    assert memory.metrics[0].value == pytest.approx(0.95)
    (full,) = by_name[VOLUME_FILLING_UP]
    labels: dict[str, Any] = dict(full.labels)
    assert labels.get("persistentvolumeclaim") == "data-db-0", labels
