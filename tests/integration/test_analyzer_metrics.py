"""Metric evidence from a real Prometheus (Debian's package): the analyzer reads the incident workload's series with
`query_range` and names the change the step followed.

The test's exporter publishes an error ratio for `web`; the real server scrapes it every second. The image of
`web` changes and the ratio rises right after; a ConfigMap the workload reads changes later (after the rise: it
cannot have caused it), then the crash-loop alert arrives. The rollout is the top cause and carries the step as
`metric` evidence; the ConfigMap edit does not. Without Prometheus configured the same analyzer says so.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import Gauge

from opsbus.common.bus import Bus
from opsbus.common.events import Envelope
from opsbus.common.events.payloads import ChangeKind, ChangeOrigin, ChangeRecorded, DiagnosisMade, FieldChange
from opsbus.common.events.payloads.diagnosis import CauseKind, EvidenceKind
from opsbus.common.testing.prometheus import Exporter, PrometheusServer
from tests.integration.analyzer_stack import (
    CLUSTER,
    NS,
    AnalyzerStack,
    alert_event,
    bus,
    change_event,
    last_event,
    stack,
    wait_recorded,
)

pytestmark = pytest.mark.integration
__all__ = ["bus", "stack"]  # fixtures shared through analyzer_stack
QUERY = 'max(app_error_ratio{namespace="$namespace",workload="$workload"})'


def config_edit(at: datetime) -> Envelope:
    ref = {"kind": "ConfigMap", "name": "web-settings", "namespace": NS}
    payload = ChangeRecorded.model_validate(
        {
            "kinds": [ChangeKind.CONFIG],
            "object": ref,
            "diff": [FieldChange(path="data[LOG_LEVEL]", before="sha256:" + "a" * 64, after="sha256:" + "b" * 64)],
            "summary": "ConfigMap shop/web-settings: data[LOG_LEVEL] changed",
            "origin": ChangeOrigin.OBSERVED,
            "observed_at": at,
        }
    )
    return Envelope.build(payload, service="watcher", cluster=CLUSTER, obj=payload.object.as_object_ref(), time=at)


async def samples(server: PrometheusServer, value: float, count: int) -> None:
    """Until Prometheus holds `count` scrapes of the ratio at `value`."""
    await server.until(
        f'count_over_time((app_error_ratio{{workload="web"}} == {value})[30s:1s])',
        lambda r: bool(r) and float(r[0]["value"][1]) >= count,
        timeout=40,
    )


async def test_the_error_rate_step_after_a_rollout_is_metric_evidence_of_it(
    stack: AnalyzerStack, bus: Bus, prometheus_exporter: Exporter, prometheus_server: PrometheusServer
) -> None:
    ratio = Gauge("app_error_ratio", "5xx share", ["namespace", "workload"], registry=prometheus_exporter.registry)
    ratio.labels(NS, "web").set(0.01)
    ratio.labels(NS, "cart").set(0.02)
    await stack.start(
        options={
            "prometheus_url": prometheus_server.url,
            "metric_queries": {"error_rate": QUERY},
            "metric_lookback_seconds": 90,
        }
    )
    await samples(prometheus_server, 0.01, 5)

    rollout = change_event(datetime.now(UTC))
    await bus.publisher.publish(rollout)
    ratio.labels(NS, "web").set(0.4)  # the new version fails four requests in ten
    await samples(prometheus_server, 0.4, 5)
    edit = config_edit(datetime.now(UTC))  # after the rise: it cannot have caused it
    await bus.publisher.publish(edit)
    await wait_recorded(stack, rollout, edit)
    alert = alert_event(datetime.now(UTC), reason="CrashLoopBackOff")
    sent = asyncio.get_running_loop().time()
    await bus.publisher.publish(alert)
    made = await last_event(bus, "DIAGNOSIS", f"diagnosis.made.{CLUSTER}.{NS}")
    latency = asyncio.get_running_loop().time() - sent

    d = made.payload_as(DiagnosisMade)
    assert made.correlationid == alert.id
    assert latency < 2.0, latency
    top = d.causes[0]
    assert top.kind is CauseKind.ROLLOUT and top.evidence[0].ref == rollout.id, d
    metric = next(e for e in top.evidence if e.kind is EvidenceKind.METRIC)
    assert metric.ref == f'max(app_error_ratio{{namespace="{NS}",workload="web"}})'
    assert "error_rate rose 0.01 -> 0.4" in (metric.detail or ""), metric
    # the sample that shows the rise is the query's step after the change (timestamps are aligned to the step, so
    # it may carry a time a few milliseconds before the change event's own)
    assert metric.at is not None and metric.at >= rollout.time - timedelta(seconds=1)
    assert "error_rate rose" in top.summary
    config = [c for c in d.causes if c.kind is CauseKind.CONFIG_CHANGE]
    assert config and all(e.kind is not EvidenceKind.METRIC for c in config for e in c.evidence), d
    checked = next(c for c in d.checked if c.source == "metrics")
    assert checked.count == 1 and "error_rate rose" in (checked.detail or "")


async def test_without_prometheus_the_diagnosis_says_no_metrics_were_read(stack: AnalyzerStack, bus: Bus) -> None:
    await stack.start()
    rollout = change_event(datetime.now(UTC))
    await bus.publisher.publish(rollout)
    await wait_recorded(stack, rollout)
    await bus.publisher.publish(alert_event(datetime.now(UTC), reason="CrashLoopBackOff"))
    d = (await last_event(bus, "DIAGNOSIS", f"diagnosis.made.{CLUSTER}.{NS}")).payload_as(DiagnosisMade)
    assert d.causes[0].kind is CauseKind.ROLLOUT
    assert all(e.kind is not EvidenceKind.METRIC for e in d.causes[0].evidence)
    checked = next(c for c in d.checked if c.source == "metrics")
    assert (checked.count, checked.detail) == (0, "no Prometheus configured")
