"""Wiring of the optimizer: database, bus, outbox relay, the cluster and usage ports, the periodic cycle,
the OOM-alert consumer, request-reply endpoints and readiness checks. No decisions are made here."""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from functools import partial
from typing import Any

import httpx
from prometheus_client import CollectorRegistry

from opsbus.common.bus import ConsumerSpec, for_cluster
from opsbus.common.events.payloads import AlertFired
from opsbus.common.rpc import Endpoint, serve
from opsbus.common.runtime import Runtime
from opsbus.common.store import OutboxRelay, RelayOptions, RetentionRule, purge_all
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
from opsbus.optimizer.forecasting import Forecaster
from opsbus.optimizer.history import HistorySource, PrometheusHistory, StoredHistory
from opsbus.optimizer.queries import list_recommendations, usage_of
from opsbus.optimizer.settings import OptimizerSettings
from opsbus.optimizer.usage import FallbackUsage, MetricsServerUsage, PrometheusUsage, UsageSource

log = logging.getLogger(__name__)
VERSION = "0.1.0"


def consumer_specs(settings: OptimizerSettings) -> list[ConsumerSpec]:
    """Every durable consumer of the optimizer, with what each accepts (tests/integration/test_dlq_contract.py).

    Named and filtered per cluster (`optimizer-oom-<cluster>` on `alert.fired.<cluster>.>`, `bus.clusters`): it
    resizes workloads of its own cluster only, and several clusters share one bus.
    """
    return [
        for_cluster(
            ConsumerSpec(
                durable="optimizer-oom",
                stream="ALERT",
                subjects=[f"alert.fired.{settings.cluster}.>"],
                accepts=[AlertFired],
                max_deliver=10,
                backoff=(0.5, 2.0, 10.0, 60.0),
                description="optimizer: bump memory after OOM kills",
            ),
            settings.cluster,
        )
    ]


def endpoints(optimizer: Optimizer) -> list[Endpoint[Any, Any]]:
    return [
        Endpoint(
            "list_recommendations",
            ListRecommendationsRequest,
            RecommendationList,
            partial(list_recommendations, optimizer.db),
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
            partial(usage_of, optimizer.db),
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


def forecaster(
    settings: OptimizerSettings, stored: StoredHistory, http: httpx.AsyncClient, registry: CollectorRegistry
) -> Forecaster:
    """The forecaster reads Prometheus when a URL is set (unless told `store`), its own history otherwise."""
    o = settings.optimizer
    f = o.forecast
    source: HistorySource = stored
    if o.prometheus_url is not None and f.history_source != "store":
        source = PrometheusHistory(PrometheusUsage(http, o.prometheus_url), max_points=f.prometheus_max_points)
    return Forecaster(
        source,
        policy=f.policy(),
        predictive=f.predictive(o.interval_seconds),
        history_seconds=f.history_seconds,
        step_seconds=min(o.usage_step_seconds, o.history.step_seconds),
        workloads_per_pass=f.workloads_per_pass,
        registry=registry,
    )


async def in_place_resize(setting: str, cluster: KubeCluster) -> bool:
    """`auto`: whether the apiserver serves `pods/resize`; a discovery failure means no (the template path)."""
    if setting != "auto":
        return setting == "on"
    try:
        served = await cluster.serves_resize()
    except Exception as exc:  # discovery is advisory: the template path always works
        log.warning("could not tell whether pods/resize is served (%s): pod templates are patched", exc)
        return False
    log.info("in-place pod resize %s", "served: requests change on running pods" if served else "not served")
    return served


async def setup(rt: Runtime[OptimizerSettings], *, run_cycles: bool = True) -> Optimizer:
    """Start everything; `run_cycles=False` leaves the cycle to the caller (tests drive it)."""
    s = rt.settings
    o = s.optimizer
    db = await rt.open_database(store.MIGRATIONS, store.SCHEMA)

    bus = await rt.open_bus()

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

    h = o.history
    stored = StoredHistory(db, step=h.step_seconds, max_age_seconds=h.max_age_days * 86_400.0, max_points=h.max_points)
    optimizer = Optimizer(
        db,
        cluster,
        usage_source(s, cluster, http),
        options=o,
        cluster_name=s.cluster,
        registry=rt.registry,
        on_outbox=relay.wake,
        history=stored,
        forecaster=forecaster(s, stored, http, rt.registry) if o.forecast.enabled else None,
        in_place_resize=await in_place_resize(o.forecast.in_place_resize, cluster),
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

        async def prune_history() -> None:
            await stored.prune(time.time())

        rt.every("retention", 3600.0, retention)
        rt.every("history-prune", h.prune_interval_seconds, prune_history)
    log.info(
        "optimizer ready: default mode %s, modes %s", o.default_mode.value, {k: v.value for k, v in o.modes.items()}
    )
    return optimizer
