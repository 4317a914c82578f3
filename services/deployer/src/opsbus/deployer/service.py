"""Wiring: database (schema check), bus (streams, the deploy.requested consumer), outbox relay, cluster and
metrics clients, the rollout engine and the request-reply endpoints. No decisions here.

`start()` returns a running `Deployer` that tests drive directly; `setup()` is the `Runtime` hook used by
`python -m opsbus.deployer run`, which registers readiness checks and the ordered shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
from nats.micro.service import Service
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry

from opsbus.common.bus import Bus, ConsumerSpec, for_cluster
from opsbus.common.events.payloads import DeployRequested
from opsbus.common.rpc import Endpoint, serve
from opsbus.common.runtime import Runtime
from opsbus.common.store import Database, OutboxRelay, RelayOptions, RetentionRule, check_schema_current, purge_all
from opsbus.deployer.api import (
    CommandRequest,
    HistoryRequest,
    HistoryResponse,
    RecentRequest,
    ReplicaSetsResponse,
    RevisionView,
    RolloutList,
    RolloutSelector,
    RolloutView,
)
from opsbus.deployer.executing import Engine, view
from opsbus.deployer.kube import Kube, KubePort, api_client
from opsbus.deployer.prometheus import MetricsPort, Prometheus
from opsbus.deployer.settings import DeployerSettings
from opsbus.deployer.store import MIGRATIONS, SCHEMA, TABLES, Revision, Rollout

SERVICE = "deployer"
VERSION = "0.1.0"
RETENTION_EVERY_SECONDS = 3600.0

log = logging.getLogger(__name__)


@dataclass
class Deployer:
    engine: Engine
    bus: Bus
    db: Database
    relay: OutboxRelay
    rpc: Service
    http: httpx.AsyncClient
    closers: list[Any] = field(default_factory=list)
    retention: asyncio.Task[None] | None = None

    async def close(self) -> None:
        """Ordered: stop answering and pulling, stop driving rollouts, flush the outbox, close connections."""
        if self.retention is not None:
            self.retention.cancel()
            await asyncio.gather(self.retention, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.rpc.stop()
        for consumer in self.bus.consumers:
            await consumer.stop()
        await self.engine.stop()
        await self.relay.stop()
        await self.bus.close()
        await self.http.aclose()
        await self.db.close()
        for closer in self.closers:
            closer()


def retention_rules(settings: DeployerSettings) -> list[RetentionRule]:
    opts = settings.deployer
    short, history = timedelta(days=opts.inbox_outbox_retention_days), timedelta(days=opts.history_retention_days)
    rollouts = Rollout.__table__
    return [
        RetentionRule.inbox(TABLES, short),
        RetentionRule.published_outbox(TABLES, short),
        RetentionRule(rollouts, "finished_at", history, rollouts.c.finished_at.is_not(None)),  # type: ignore[arg-type]
        RetentionRule(Revision.__table__, "recorded_at", history),  # type: ignore[arg-type]
    ]


async def _retention_loop(db: Database, rules: list[RetentionRule]) -> None:
    while True:
        try:
            purged = await purge_all(db.engine, rules)
            if any(purged.values()):
                log.info("retention purged %s", purged)
        except Exception:
            log.exception("retention pass failed")
        await asyncio.sleep(RETENTION_EVERY_SECONDS)


def consumer_specs(settings: DeployerSettings) -> list[ConsumerSpec]:
    """Every durable consumer of the deployer, with what each accepts (tests/integration/test_dlq_contract.py).

    Named per cluster (`deployer-requests-<cluster>`, `bus.clusters`): several clusters share one bus.
    """
    return [
        for_cluster(
            ConsumerSpec(
                durable="deployer-requests",
                stream="DEPLOY",
                subjects=[f"deploy.requested.{settings.cluster}.>"],
                accepts=[DeployRequested],
                # No bus-level freshness: the engine answers a stale request with deploy.skipped instead of dropping it.
                freshness=None,
                description="deployer: deploy.requested for this cluster",
            ),
            settings.cluster,
        )
    ]


def endpoints(engine: Engine) -> list[Endpoint[Any, Any]]:
    async def status(request: RolloutSelector) -> RolloutView:
        return view(await engine.find(request))

    async def history(request: HistoryRequest) -> HistoryResponse:
        rollouts, revisions = await engine.history(request.workload, request.limit)
        return HistoryResponse(
            rollouts=tuple(view(r) for r in rollouts),
            revisions=tuple(
                RevisionView(
                    revision=r.revision,
                    deployment_id=r.rollout_id,
                    images={str(k): str(v) for k, v in r.images.items()},
                    outcome=r.outcome,
                    recorded_at=r.recorded_at,
                    strategy=strategy,
                    template=r.template,
                )
                for r, strategy in revisions
            ),
        )

    async def recent(request: RecentRequest) -> RolloutList:
        rows = await engine.recent(request.namespaces, request.state, request.limit)
        return RolloutList(rollouts=tuple(view(r) for r in rows))

    async def replica_sets(request: RolloutSelector) -> ReplicaSetsResponse:
        row = await engine.find(request)
        return ReplicaSetsResponse(workload=row.workload, replica_sets=await engine.replica_sets(row))

    async def abort(request: CommandRequest) -> RolloutView:
        return view(await engine.command(request.rollout, "abort", request.actor, request.reason, request.caller))

    async def promote(request: CommandRequest) -> RolloutView:
        return view(await engine.command(request.rollout, "promote", request.actor, request.reason, request.caller))

    return [
        Endpoint("status", RolloutSelector, RolloutView, status, "a rollout's state"),
        Endpoint("history", HistoryRequest, HistoryResponse, history, "a workload's rollouts and revisions"),
        Endpoint("recent", RecentRequest, RolloutList, recent, "the latest rollouts in some namespaces"),
        Endpoint("replicasets", RolloutSelector, ReplicaSetsResponse, replica_sets, "a rollout's new and old sets"),
        Endpoint("abort", CommandRequest, RolloutView, abort, "abort a queued or running rollout"),
        Endpoint("promote", CommandRequest, RolloutView, promote, "promote a rollout paused by analysis"),
    ]


async def start(
    settings: DeployerSettings,
    *,
    registry: CollectorRegistry,
    tracer_provider: TracerProvider | None = None,
    instance: str,
    kube: KubePort | None = None,
    metrics: MetricsPort | None = None,
) -> Deployer:
    db = Database.from_settings(settings.database, application_name=f"opsbus-{SERVICE}")
    await check_schema_current(db.engine, MIGRATIONS, SCHEMA, service=SERVICE)
    closers: list[Any] = []
    if kube is None:
        api = api_client(settings.deployer.kubeconfig)
        closers.append(api.close)
        kube = Kube(api)
    http = httpx.AsyncClient()
    metrics = metrics or Prometheus(http, default_url=settings.deployer.prometheus_url)
    bus = await Bus.connect(
        settings.nats,
        service=SERVICE,
        registry=registry,
        tracer_provider=tracer_provider,
        shutdown_grace=settings.shutdown_grace_seconds,
        instance=instance,
    )
    await bus.ensure_streams()
    tracer = tracer_provider.get_tracer("opsbus.deployer") if tracer_provider else None
    relay = OutboxRelay(
        db.engine, TABLES.outbox, bus.publisher, registry=registry, options=RelayOptions(exclusive=True)
    )
    engine = Engine(
        kube=kube,
        metrics=metrics,
        sessions=db.sessions,
        tables=TABLES,
        cluster=settings.cluster,
        instance=instance,
        options=settings.deployer,
        on_commit=relay.wake,
        tracer=tracer,
    )
    await relay.start()
    engine.start()
    (spec,) = consumer_specs(settings)
    bus.consumer(spec, engine.accept)
    await bus.start()
    rpc = await serve(bus.nc, SERVICE, VERSION, endpoints(engine), description="opsbus deployer", tracer=tracer)
    retention = asyncio.create_task(_retention_loop(db, retention_rules(settings)), name="deployer:retention")
    return Deployer(
        engine=engine, bus=bus, db=db, relay=relay, rpc=rpc, http=http, closers=closers, retention=retention
    )


async def setup(rt: Runtime[DeployerSettings]) -> None:
    deployer = await start(rt.settings, registry=rt.registry, tracer_provider=rt.tracer_provider, instance=rt.instance)
    rt.add_check("nats", lambda: deployer.bus.connected)
    rt.add_check("database", deployer.db.ping)
    rt.on_shutdown(deployer.close, "deployer")
