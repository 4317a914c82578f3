"""Wiring of the notifier: configuration, database, bus, consumer, outbox relay, request-reply endpoints, the
flush/deliver loop, readiness checks and ordered shutdown. No decisions are made here."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from opsbus.common.audit import Auditor
from opsbus.common.bus import Bus, ConsumerSpec
from opsbus.common.errors import ConfigurationError
from opsbus.common.rpc import Endpoint, serve
from opsbus.common.runtime import Runtime
from opsbus.common.store import Database, OutboxRelay, RelayOptions, RetentionRule, check_schema_current
from opsbus.notifier import store
from opsbus.notifier.channels import Channel, build_channels
from opsbus.notifier.domain.api import (
    CreateSilenceRequest,
    Empty,
    ExpireSilenceRequest,
    ListSilencesRequest,
    RoutesView,
    RouteView,
    SilenceList,
    SilenceView,
    ValidateRoutesRequest,
    ValidateRoutesResponse,
)
from opsbus.notifier.domain.config import ConfigError, NotifierConfig, Route, parse_config
from opsbus.notifier.domain.delivery import RetryPolicy
from opsbus.notifier.domain.muting import Silence
from opsbus.notifier.executing import ExecutorOptions, Notifier
from opsbus.notifier.rendering import Links, Renderer
from opsbus.notifier.settings import NotifierSettings

log = logging.getLogger(__name__)

SERVICE = "notifier"
VERSION = "0.1.0"
SUBJECTS = {"ALERT": ["alert.>"], "RECOVERY": ["recovery.>"], "DEPLOY": ["deploy.>"], "SCALE": ["scale.>"]}


def load_config(path: str, env: Mapping[str, str] | None = None) -> NotifierConfig:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read notifier configuration {path}: {exc.strerror}") from exc
    try:
        return parse_config(text, env=os.environ if env is None else env)
    except ConfigError as exc:
        raise ConfigurationError(f"{path}: {exc}") from exc


def build_all_channels(
    config: NotifierConfig, renderer: Renderer, client: httpx.AsyncClient, timeout: float
) -> dict[str, dict[str, Channel]]:
    return {name: build_channels(r, renderer, client, timeout=timeout) for name, r in config.receivers.items()}


def route_view(route: Route) -> RouteView:
    o = route.options
    return RouteView(
        id=route.id,
        receiver=route.receiver,
        matchers=[str(m) for m in route.matchers],
        group_by=list(o.group_by),
        group_wait_seconds=o.group_wait.total_seconds(),
        group_interval_seconds=o.group_interval.total_seconds(),
        repeat_interval_seconds=o.repeat_interval.total_seconds(),
        continue_=route.continue_,
        routes=[route_view(r) for r in route.routes],
    )


def silence_view(s: Silence, now: datetime) -> SilenceView:
    state = s.state(now)
    assert state in ("pending", "active", "expired")
    return SilenceView(
        id=s.id,
        matchers=[str(m) for m in s.matchers],
        starts_at=s.starts_at,
        ends_at=s.ends_at,
        created_by=s.created_by,
        comment=s.comment,
        state=state,
    )


def endpoints(notifier: Notifier) -> list[Endpoint[Any, Any]]:
    config = notifier.config

    async def create_silence(req: CreateSilenceRequest) -> SilenceView:
        now = notifier.clock()
        start, end = req.window(now)
        if end <= start:
            from opsbus.common.errors import PermanentError  # noqa: PLC0415

            raise PermanentError("the silence ends before it starts")
        silence = await notifier.create_silence(req.matchers, start, end, req.created_by, req.comment)
        return silence_view(silence, now)

    async def list_silences(req: ListSilencesRequest) -> SilenceList:
        now = notifier.clock()
        views = [silence_view(s, now) for s in await notifier.list_silences()]
        return SilenceList(silences=[v for v in views if req.state is None or v.state == req.state])

    async def expire_silence(req: ExpireSilenceRequest) -> SilenceView:
        return silence_view(await notifier.expire_silence(req.id, req.expired_by), notifier.clock())

    async def get_routes(_: Empty) -> RoutesView:
        return RoutesView(
            route=route_view(config.root),
            receivers={name: [f"{k}/{i}" for k, i, _ in r.integrations()] for name, r in config.receivers.items()},
            inhibit_rules=len(config.inhibit_rules),
        )

    async def validate_routes(req: ValidateRoutesRequest) -> ValidateRoutesResponse:
        try:
            parse_config(req.yaml, env=_AnyEnv())
        except ConfigError as exc:
            return ValidateRoutesResponse(valid=False, problems=list(exc.problems))
        return ValidateRoutesResponse(valid=True)

    return [
        Endpoint("create_silence", CreateSilenceRequest, SilenceView, create_silence, "Create a silence."),
        Endpoint("list_silences", ListSilencesRequest, SilenceList, list_silences, "List silences."),
        Endpoint("expire_silence", ExpireSilenceRequest, SilenceView, expire_silence, "Expire a silence now."),
        Endpoint("get_routes", Empty, RoutesView, get_routes, "The routing tree in force (no secrets)."),
        Endpoint(
            "validate_routes",
            ValidateRoutesRequest,
            ValidateRoutesResponse,
            validate_routes,
            "Validate a routing YAML without applying it.",
        ),
    ]


class _AnyEnv(dict[str, str]):
    """Validation of a proposed YAML must not depend on (or reveal) this process's environment."""

    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: str) -> str:
        return "placeholder"


async def setup(rt: Runtime[NotifierSettings], *, config: NotifierConfig | None = None) -> Notifier:
    """Start everything; `config` overrides the file (tests)."""
    s = rt.settings
    opts = s.notifier
    config = config or load_config(opts.config_file)
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
        db.engine, store.TABLES.outbox, bus.publisher, registry=rt.registry, options=RelayOptions(poll_interval=1.0)
    )
    await relay.start()
    rt.on_shutdown(relay.stop, "outbox relay")

    client = httpx.AsyncClient(timeout=opts.request_timeout_seconds, follow_redirects=False)
    rt.on_shutdown(client.aclose, "http client")
    renderer = Renderer(Links(gateway_url=opts.gateway_url, jaeger_url=opts.jaeger_url))
    channels = build_all_channels(config, renderer, client, opts.request_timeout_seconds)
    auditor = Auditor(service=SERVICE, cluster=s.cluster)
    notifier = Notifier(
        db,
        config,
        channels,
        auditor=auditor,
        cluster=s.cluster,
        registry=rt.registry,
        options=ExecutorOptions(
            retry=RetryPolicy(
                opts.max_attempts, opts.backoff_base_seconds, opts.backoff_max_seconds, opts.max_retry_after_seconds
            ),
            lease=timedelta(seconds=opts.lease_seconds),
            batch=opts.batch,
            tick=opts.tick_seconds,
        ),
        on_outbox=relay.wake,
    )
    await notifier.start()
    rt.on_shutdown(notifier.stop, "flush and delivery loop")

    for stream, subjects in SUBJECTS.items():
        bus.consumer(
            ConsumerSpec(
                durable=f"notifier-{stream.lower()}",
                stream=stream,
                subjects=subjects,
                max_deliver=10,
                backoff=(0.05, 0.5, 2.0, 10.0, 60.0),
                description=f"notifier: route {stream.lower()} events into groups",
            ),
            notifier.handle,
        )
    await bus.start()

    svc = await serve(
        bus.nc,
        SERVICE,
        VERSION,
        endpoints(notifier),
        description="routes and silences",
        tracer=rt.tracer_provider.get_tracer("opsbus.notifier"),
    )
    rt.on_shutdown(svc.stop, "rpc endpoints")
    log.info("notifier routing %d routes to %d receivers", len(config.routes()), len(config.receivers))
    return notifier


def retention_rules(keep: timedelta) -> list[RetentionRule]:
    t = store.notifications
    return [
        RetentionRule.inbox(store.TABLES, keep),
        RetentionRule.published_outbox(store.TABLES, keep),
        RetentionRule(store.delivery_log, "at", keep),
        RetentionRule(t, "finished_at", keep, t.c.finished_at.is_not(None)),
        RetentionRule(store.silences, "ends_at", keep),
    ]


def utcnow() -> datetime:
    return datetime.now(UTC)
