"""Wiring of the optimizer: database, bus, outbox relay, the cluster and usage ports, the periodic cycle,
the OOM-alert consumer, request-reply endpoints and readiness checks. No decisions are made here."""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from functools import partial
from typing import Any

import httpx

from opsbus.common.bus import Bus, ConsumerSpec
from opsbus.common.events.payloads import AlertFired
from opsbus.common.rpc import Endpoint, serve
from opsbus.common.runtime import Runtime
from opsbus.common.store import Database, OutboxRelay, RelayOptions, RetentionRule, check_schema_current, purge_all
from opsbus.optimizer import store
from opsbus.optimizer.applying import apply_recommendation
from opsbus.optimizer.cluster import KubeCluster
from opsbus.optimizer.domain.api import (
    ApplyRecommendationRequest,
    ApplyRecommendationResponse,
    ListRecommendationsRequest,
    RecommendationList,
    UsageRequest,
    UsageResponse,
)
from opsbus.optimizer.executing import SERVICE, Optimizer
from opsbus.optimizer.settings import OptimizerSettings
from opsbus.optimizer.usage import FallbackUsage, MetricsServerUsage, PrometheusUsage, UsageSource

log = logging.getLogger(__name__)
VERSION = "0.1.0"


def consumer_specs(settings: OptimizerSettings) -> list[ConsumerSpec]:
    """Every durable consumer of the optimizer, with what each accepts (tests/integration/test_dlq_contract.py)."""
    del settings  # the subjects are the same on every cluster
    return [
        ConsumerSpec(
            durable="optimizer-oom",
            stream="ALERT",
            subjects=["alert.fired.>"],
            accepts=[AlertFired],
            max_deliver=10,
            backoff=(0.5, 2.0, 10.0, 60.0),
            description="optimizer: bump memory after OOM kills",
        )
    ]


def endpoints(optimizer: Optimizer) -> list[Endpoint[Any, Any]]:
    return [
        Endpoint(
            "list_recommendations",
            ListRecommendationsRequest,
            RecommendationList,
            optimizer.list_recommendations,
            "Recommendations, newest first, filtered by namespace, workload and status.",
        ),
        Endpoint(
            "apply_recommendation",
            ApplyRecommendationRequest,
            ApplyRecommendationResponse,
            partial(apply_recommendation, optimizer),
            "Apply an open recommendation as recommended (refused during a rollout).",
        ),
        Endpoint(
            "usage",
            UsageRequest,
            UsageResponse,
            optimizer.usage_of,
            "The usage distribution remembered per container of one workload.",
        ),
    ]


def usage_source(settings: OptimizerSettings, cluster: KubeCluster, http: httpx.AsyncClient) -> UsageSource:
    o = settings.optimizer
    server = MetricsServerUsage(cluster.pod_metrics, clock=time.time)
    if o.prometheus_url is None:
        return server
    prom = PrometheusUsage(http, o.prometheus_url)
    return FallbackUsage(prom, server) if o.metrics_server_fallback else prom


async def setup(rt: Runtime[OptimizerSettings], *, run_cycles: bool = True) -> Optimizer:
    """Start everything; `run_cycles=False` leaves the cycle to the caller (tests drive it)."""
    s = rt.settings
    o = s.optimizer
    db = Database.from_settings(s.database, application_name=f"opsbus-{SERVICE}")
    rt.on_shutdown(db.close, "database")
    await check_schema_current(db.engine, store.MIGRATIONS, store.SCHEMA, service=SERVICE)
    rt.add_check("database", db.ping)

    bus = await Bus.connect(
        s.nats,
        service=SERVICE,
        registry=rt.registry,
        tracer_provider=rt.tracer_provider,
        shutdown_grace=s.shutdown_grace_seconds,
        instance=rt.instance,
    )
    rt.on_shutdown(bus.close, "bus")
    rt.add_check("nats", lambda: bus.connected)
    await bus.ensure_streams()

    relay = OutboxRelay(
        db.engine,
        store.TABLES.outbox,
        bus.publisher,
        registry=rt.registry,
        options=RelayOptions(poll_interval=1.0, exclusive=True),
    )
    await relay.start()
    rt.on_shutdown(relay.stop, "outbox relay")

    cluster = KubeCluster.from_kubeconfig(o.kubeconfig)

    async def close_cluster() -> None:
        cluster.close()

    rt.on_shutdown(close_cluster, "kubernetes client")
    http = httpx.AsyncClient(timeout=30.0, follow_redirects=False)
    rt.on_shutdown(http.aclose, "http client")

    optimizer = Optimizer(
        db,
        cluster,
        usage_source(s, cluster, http),
        options=o,
        cluster_name=s.cluster,
        registry=rt.registry,
        on_outbox=relay.wake,
    )
    (spec,) = consumer_specs(s)
    bus.consumer(spec, optimizer.handle_alert)
    await bus.start()

    svc = await serve(
        bus.nc,
        SERVICE,
        VERSION,
        endpoints(optimizer),
        description="right-sizing recommendations",
        tracer=rt.tracer_provider.get_tracer("opsbus.optimizer"),
    )
    rt.on_shutdown(svc.stop, "rpc endpoints")

    if run_cycles:

        async def cycle() -> None:
            report = await optimizer.cycle()
            log.info("cycle: %d workloads, %d samples from %s", report.workloads, report.samples, report.source)

        rt.every("optimise", o.interval_seconds, cycle)
        keep = timedelta(days=o.retention_days)
        rules = [
            RetentionRule.inbox(store.TABLES, keep),
            RetentionRule.published_outbox(store.TABLES, keep),
            RetentionRule(store.applied_changes, "applied_at", keep),
            RetentionRule(store.recommendations, "created_at", keep, store.recommendations.c.status != "open"),
        ]

        async def retention() -> None:
            await purge_all(db.engine, rules)

        rt.every("retention", 3600.0, retention)
    log.info(
        "optimizer ready: default mode %s, modes %s", o.default_mode.value, {k: v.value for k, v in o.modes.items()}
    )
    return optimizer
