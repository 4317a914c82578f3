"""Wiring of the gateway: database, bus, outbox relay, read-model consumers, the HTTP API on uvicorn,
readiness, retention and ordered shutdown. No decisions are made here."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import uvicorn
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from opsbus.common.bus import Bus, ConsumerSpec, Delivery, family_payloads
from opsbus.common.events import EventPayload
from opsbus.common.events.payloads import (
    AlertFired,
    AlertResolved,
    AuditRecorded,
    ChangeRecorded,
    DiagnosisMade,
    DiagnosisRevised,
    NotifyDelivered,
    NotifyFailed,
    RecoverySucceeded,
)
from opsbus.common.runtime import Runtime
from opsbus.common.store import Database, OutboxRelay, RelayOptions, RetentionRule, purge_all
from opsbus.gateway import store
from opsbus.gateway.app import create_app
from opsbus.gateway.commands import Commands, Services
from opsbus.gateway.context import GatewayContext
from opsbus.gateway.domain.ratelimit import RateLimiter
from opsbus.gateway.history import EventHistory
from opsbus.gateway.keystore import KeyStore
from opsbus.gateway.oidc import JwtVerifier
from opsbus.gateway.readmodel import ALERT_CONSUMER, AUDIT_CONSUMER, CHAIN_CONSUMER, ReadModel
from opsbus.gateway.sessions import SessionStore
from opsbus.gateway.settings import GatewaySettings
from opsbus.gateway.sso import OidcClient
from opsbus.gateway.statements import Statements
from opsbus.gateway.streaming import EventStreams, StreamOptions
from opsbus.gateway.timeline import CHANGE_CONSUMER, Timeline
from opsbus.gateway.zabbixack import ACK_CONSUMER, acker_from_settings

log = logging.getLogger(__name__)

SERVICE = "gateway"


class _ApiServer(uvicorn.Server):
    """uvicorn without its own signal handling: the runtime owns SIGTERM and the shutdown order."""

    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def]
        yield


@dataclass
class Gateway:
    ctx: GatewayContext
    app: FastAPI
    bus: Bus
    db: Database
    port: int | None = None


def consumer_specs(settings: GatewaySettings) -> list[ConsumerSpec]:
    """Every durable consumer of the gateway, with what each accepts (tests/integration/test_dlq_contract.py)."""
    del settings  # the read models take every cluster
    return [
        _zabbix_acks(),
        _read_model(AUDIT_CONSUMER, "AUDIT", [AuditRecorded], "audit.recorded into the queryable audit table"),
        _read_model(ALERT_CONSUMER, "ALERT", [AlertFired, AlertResolved], "alerts into the incidents read model"),
        _read_model(f"{CHAIN_CONSUMER}-recovery", "RECOVERY", family_payloads("recovery"), "recoveries of incidents"),
        _read_model(
            f"{CHAIN_CONSUMER}-notify", "NOTIFY", [NotifyDelivered, NotifyFailed], "notifications of incidents"
        ),
        _read_model(CHANGE_CONSUMER, "CHANGE", [ChangeRecorded], "change.recorded into the change timeline"),
        _read_model(
            f"{CHAIN_CONSUMER}-diagnosis", "DIAGNOSIS", [DiagnosisMade, DiagnosisRevised], "diagnoses of incidents"
        ),
    ]


def _zabbix_acks() -> ConsumerSpec:
    """The Zabbix acknowledger's consumer (`zabbixack`): `recovery.succeeded` only, patient retries while Zabbix is
    away, an ack wait above its calls' worst case (attempts x timeout and backoff) so no delivery overlaps itself.
    It exists whether or not Zabbix's API is configured (without, it acknowledges nothing), so its durable and
    NATS permissions do not depend on the settings."""
    return ConsumerSpec(
        durable=ACK_CONSUMER,
        stream="RECOVERY",
        subjects=["recovery.succeeded.>"],
        accepts=[RecoverySucceeded],
        max_deliver=10,
        backoff=(2.0, 10.0, 30.0, 120.0, 600.0),
        ack_wait=180.0,
        description="gateway: acknowledge in Zabbix the problems opsbus healed",
    )


def _read_model(durable: str, stream: str, accepts: Sequence[type[EventPayload]], description: str) -> ConsumerSpec:
    """A read-model consumer: a whole family's stream, patient retries (the database may be briefly away)."""
    return ConsumerSpec(
        durable=durable,
        stream=stream,
        subjects=[f"{stream.lower()}.>"],
        accepts=accepts,
        max_deliver=10,
        backoff=(0.1, 1.0, 5.0, 30.0),
        description=f"gateway: {description}",
    )


async def _no_zabbix(delivery: Delivery) -> None:
    """Zabbix's API is not configured: nothing to acknowledge."""
    del delivery


async def build(rt: Runtime[GatewaySettings], *, serve_http: bool = True) -> Gateway:
    """Start everything; with `serve_http=False` the app is returned unserved (tests use ASGI transport)."""
    s = rt.settings
    opts = s.gateway
    db = await rt.open_database(store.MIGRATIONS, store.SCHEMA)

    bus = await rt.open_bus()

    relay = OutboxRelay(
        db.engine, store.TABLES.outbox, bus.publisher, registry=rt.registry, options=RelayOptions(poll_interval=1.0)
    )
    await relay.start()
    rt.on_shutdown(relay.stop, "outbox relay")

    statements = Statements(s.database, application_name=f"opsbus-{SERVICE}")
    rt.on_shutdown(statements.close, "database (hot statements)")
    reads = ReadModel(db, statements)
    timeline = Timeline(db)
    handlers = {AUDIT_CONSUMER: reads.on_audit, ALERT_CONSUMER: reads.on_alert, CHANGE_CONSUMER: timeline.on_change}
    zabbix_http = httpx.AsyncClient(follow_redirects=False)
    rt.on_shutdown(zabbix_http.aclose, "http client (Zabbix)")
    acker = acker_from_settings(
        opts.zabbix,
        db,
        zabbix_http,
        incident_url=opts.public_url,
        cluster=s.cluster,
        clock=lambda: datetime.now(UTC),
        on_outbox=relay.wake,
    )
    handlers[ACK_CONSUMER] = acker.on_recovery if acker is not None else _no_zabbix
    for spec in consumer_specs(s):
        bus.consumer(spec, handlers.get(spec.durable, reads.on_chain))  # the rest follow incident chains
    await bus.start()

    http = httpx.AsyncClient(follow_redirects=False)
    rt.on_shutdown(http.aclose, "http client")
    ctx = GatewayContext(
        settings=s,
        keys=KeyStore(db, cache_seconds=opts.key_cache_seconds),
        jwt=JwtVerifier(opts.oidc, http),
        limiter=RateLimiter(opts.rate_per_second, opts.rate_burst),
        reads=reads,
        commands=Commands(db, bus.publisher, cluster=s.cluster, statements=statements, on_outbox=relay.wake),
        services=Services(bus.nc, timeout=opts.rpc_timeout_seconds),
        streams=EventStreams(
            bus.js,
            options=StreamOptions(opts.sse_heartbeat_seconds, opts.sse_queue, opts.sse_max_clients),
            registry=rt.registry,
        ),
        history=EventHistory(bus.js, timeout=opts.rpc_timeout_seconds),
        registry=rt.registry,
        readiness=rt.readiness,
        timeline=timeline,
        sessions=SessionStore(
            db, ttl=timedelta(seconds=opts.console.session_ttl_seconds), cache_seconds=opts.key_cache_seconds
        ),
        tracer_provider=rt.tracer_provider if s.telemetry.otlp_endpoint else None,
        sso=OidcClient(opts.oidc, http) if opts.oidc.sign_in_enabled else None,
    )
    app = create_app(ctx)
    gateway = Gateway(ctx=ctx, app=app, bus=bus, db=db)

    keep = timedelta(days=opts.audit_retention_days)
    incidents_keep = timedelta(days=opts.incident_retention_days)
    rules = [
        RetentionRule.inbox(store.TABLES, timedelta(days=7)),
        RetentionRule.published_outbox(store.TABLES, timedelta(days=7)),
        RetentionRule(store.audit_entries, "time", keep),
        RetentionRule(store.incidents, "updated_at", incidents_keep, store.incidents.c.status == "resolved"),
        RetentionRule(store.incident_events, "time", incidents_keep),
        RetentionRule(store.deploy_requests, "requested_at", incidents_keep),
        RetentionRule(store.changes, "time", timedelta(days=opts.change_retention_days)),
        RetentionRule(store.console_sessions, "expires_at", timedelta(days=7)),
    ]

    async def retention() -> None:
        await purge_all(db.engine, rules)

    rt.every("retention", 3600.0, retention)

    if serve_http:
        gateway.port = await _serve(rt, app)
    return gateway


async def _serve(rt: Runtime[GatewaySettings], app: FastAPI) -> int:
    opts = rt.settings.gateway
    config = uvicorn.Config(
        app,
        host=opts.host,
        port=opts.port,
        log_config=None,
        access_log=False,
        lifespan="off",
        timeout_keep_alive=30,
        http="httptools",  # C parser (a dependency of the gateway); h11 costs several times the CPU per request
    )
    server = _ApiServer(config)
    task = asyncio.create_task(server.serve(), name="gateway:api")
    while not server.started:
        if task.done():
            await task
            raise RuntimeError("the API server stopped during startup")
        await asyncio.sleep(0.01)

    async def stop() -> None:
        server.should_exit = True
        await task

    rt.on_shutdown(stop, "api server")
    port = int(next(s for srv in server.servers for s in srv.sockets).getsockname()[1])
    log.info("gateway API on http://%s:%d/v1 (OpenAPI at /v1/openapi.json)", opts.host, port)
    return port


async def setup(rt: Runtime[GatewaySettings]) -> None:
    await build(rt)


def fresh_registry() -> CollectorRegistry:
    return CollectorRegistry()
