"""Wiring of the analyzer: database, bus, outbox relay, the cluster port, the durable consumers, retention and
readiness checks. No decisions are made here.

Consumers (durable, shared by every replica): `analyzer-alerts` (alert.fired: open or join an incident and
diagnose it; one message per pull, latency matters), `analyzer-changes` (change.recorded) and
`analyzer-deploys` (deploy.started, deploy.rolledback): timeline entries that may revise open incidents, handled
`change_batch` at a time and written one transaction per batch (a burst of 10,000 changes is ~160 commits).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from opsbus.analyzer import store
from opsbus.analyzer.cluster import ClusterReader, KubeReader, NoCluster
from opsbus.analyzer.executing import Analyzer
from opsbus.analyzer.prometheus import MetricsReader, PrometheusReader
from opsbus.analyzer.settings import AnalyzerSettings
from opsbus.common.bus import ConsumerSpec
from opsbus.common.events.payloads import AlertFired, ChangeRecorded, DeployRolledBack, DeployStarted
from opsbus.common.runtime import Runtime
from opsbus.common.store import OutboxRelay, RelayOptions, RetentionRule, purge_all

log = logging.getLogger(__name__)


def consumer_specs(settings: AnalyzerSettings) -> list[ConsumerSpec]:
    """Every durable consumer of the analyzer, with what each accepts (tests/integration/test_dlq_contract.py)."""
    o = settings.analyzer
    return [
        ConsumerSpec(
            durable="analyzer-alerts",
            stream="ALERT",
            subjects=["alert.fired.>"],
            accepts=[AlertFired],
            concurrency=o.alert_concurrency,
            batch=1,  # a lone alert must not wait for a batch to fill: diagnosis within 2 s
            max_deliver=10,
            backoff=(0.5, 2.0, 10.0, 60.0),
            freshness=timedelta(seconds=o.freshness_seconds),
            description="analyzer: diagnose fired alerts",
        ),
        ConsumerSpec(
            durable="analyzer-changes",
            stream="CHANGE",
            subjects=["change.recorded.>"],
            accepts=[ChangeRecorded],
            concurrency=o.change_batch,  # handed in together: one transaction per batch (Analyzer.take_entries)
            batch=o.change_batch,
            max_deliver=10,
            backoff=(0.5, 2.0, 10.0, 60.0),
            description="analyzer: the change timeline",
        ),
        ConsumerSpec(
            durable="analyzer-deploys",
            stream="DEPLOY",
            subjects=[f"deploy.{m.verb()}.>" for m in (DeployStarted, DeployRolledBack)],
            accepts=[DeployStarted, DeployRolledBack],
            concurrency=o.change_batch,
            batch=o.change_batch,
            max_deliver=10,
            backoff=(0.5, 2.0, 10.0, 60.0),
            description="analyzer: rollouts and rollbacks on the timeline",
        ),
    ]


def cluster_reader(settings: AnalyzerSettings) -> ClusterReader:
    """The Kubernetes API when configured and reachable; otherwise diagnose without logs (said in `checked`)."""
    o = settings.analyzer
    if not o.read_cluster:
        return NoCluster()
    try:
        return KubeReader.from_kubeconfig(o.kubeconfig, timeout=o.cluster_timeout_seconds)
    except Exception as exc:  # no kubeconfig, no service account: the analyzer still works on events
        log.warning("no Kubernetes API to read logs from (%s): diagnosing from events only", exc)
        return NoCluster()


async def setup(
    rt: Runtime[AnalyzerSettings], *, reader: ClusterReader | None = None, metrics: MetricsReader | None = None
) -> Analyzer:
    s = rt.settings
    o = s.analyzer
    db = await rt.open_database(store.MIGRATIONS, store.SCHEMA)

    bus = await rt.open_bus()

    # One replica relays at a time, so an incident's diagnosis revisions reach subscribers in commit order.
    relay = OutboxRelay(
        db.engine, store.TABLES.outbox, bus.publisher, registry=rt.registry, options=RelayOptions(exclusive=True)
    )
    await relay.start()
    rt.on_shutdown(relay.stop, "outbox relay")

    reader = reader or cluster_reader(s)
    if isinstance(reader, KubeReader):
        kube = reader

        async def close_reader() -> None:
            kube.close()

        rt.on_shutdown(close_reader, "kubernetes client")

    if metrics is None and o.prometheus_url:
        metrics = PrometheusReader(o.prometheus_url, o.metric_queries, timeout=o.cluster_timeout_seconds)
    analyzer = Analyzer(db, reader, options=o, registry=rt.registry, on_outbox=relay.wake, metrics=metrics)
    handlers = {
        "analyzer-alerts": analyzer.on_alert,
        "analyzer-changes": analyzer.on_change,
        "analyzer-deploys": analyzer.on_deploy,
    }
    for spec in consumer_specs(s):
        bus.consumer(spec, handlers[spec.durable])
    await bus.start()

    keep = timedelta(days=o.retention_days)
    rules = [
        RetentionRule.inbox(store.TABLES, keep),
        RetentionRule.published_outbox(store.TABLES, keep),
        RetentionRule(store.timeline, "recorded_at", timedelta(hours=o.timeline_retention_hours)),
        RetentionRule(store.incidents, "updated_at", keep),
    ]

    async def retention() -> None:
        await purge_all(db.engine, rules)

    rt.every("retention", 3600.0, retention)
    log.info("analyzer ready: cluster reads %s, metrics %s", type(reader).__name__, type(analyzer.metrics).__name__)
    return analyzer
