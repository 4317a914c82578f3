"""Wiring of the notifier: configuration, database, bus, consumer, outbox relay, request-reply endpoints, the
flush/deliver loop, readiness checks and ordered shutdown. No decisions are made here."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from opsbus.common.api.notifier import (
    AlertOutcomeList,
    AlertOutcomesRequest,
    DeliveryList,
    ListDeliveriesRequest,
    PreviewSilenceRequest,
    SilencePreview,
)
from opsbus.common.audit import Auditor
from opsbus.common.bus import ConsumerSpec, family_payloads
from opsbus.common.errors import ConfigurationError, ConflictError, PermanentError
from opsbus.common.rpc import Endpoint, serve
from opsbus.common.runtime import Runtime
from opsbus.common.store import (
    Database,
    OutboxRelay,
    RelayOptions,
    RetentionRule,
    purge_all,
)
from opsbus.notifier import inspecting, store
from opsbus.notifier.channels import Channel, ChannelConfigError, build_channels, http_client
from opsbus.notifier.configuring import ConfigVersions, Reloader, StoredConfig
from opsbus.notifier.domain.api import (
    ConfigIssue,
    ConfigVersion,
    ConfigVersionList,
    ConfigVersionSummary,
    CreateSilenceRequest,
    DeleteReceiverSecretRequest,
    Empty,
    ExpireSilenceRequest,
    GetConfigRequest,
    ListConfigVersionsRequest,
    ListSilencesRequest,
    PutConfigRequest,
    PutReceiverSecretRequest,
    ReceiverSecretList,
    ReceiverSecretView,
    RotateReceiverSecretsRequest,
    RotateReceiverSecretsResponse,
    RoutesView,
    RouteView,
    SilenceList,
    SilenceView,
    ValidateRoutesRequest,
    ValidateRoutesResponse,
)
from opsbus.notifier.domain.config import (
    ConfigError,
    NotifierConfig,
    Route,
    literal_secrets,
    parse_config,
    redact_secrets,
)
from opsbus.notifier.domain.delivery import RetryPolicy
from opsbus.notifier.domain.muting import Silence
from opsbus.notifier.domain.secrets import SecretRef, Unresolved
from opsbus.notifier.executing import ExecutorOptions, Notifier
from opsbus.notifier.rendering import Links, Renderer
from opsbus.notifier.secretsources import KubeSecrets, SecretSources, api_client
from opsbus.notifier.secretstore import Keyring, ReceiverSecrets, SecretInfo
from opsbus.notifier.settings import NotifierSettings

log = logging.getLogger(__name__)

SERVICE = "notifier"
VERSION = "0.1.0"
SUBJECTS = {
    "ALERT": ["alert.>"],
    "RECOVERY": ["recovery.>"],
    "DEPLOY": ["deploy.>"],
    "SCALE": ["scale.>"],
    "DIAGNOSIS": ["diagnosis.>"],
}


def consumer_specs(settings: NotifierSettings) -> list[ConsumerSpec]:
    """Every durable consumer of the notifier, one per family it routes, each accepting every type and version
    of its family (tests/integration/test_dlq_contract.py)."""
    del settings  # the notifier routes every cluster's events
    return [
        ConsumerSpec(
            durable=f"notifier-{stream.lower()}",
            stream=stream,
            subjects=subjects,
            accepts=family_payloads(stream.lower()),
            max_deliver=10,
            backoff=(0.05, 0.5, 2.0, 10.0, 60.0),
            description=f"notifier: route {stream.lower()} events into groups",
        )
        for stream, subjects in SUBJECTS.items()
    ]


def read_config(path: str) -> str:
    """The configuration file's text (checked by `setup` once its secret sources are up)."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot read notifier configuration {path}: {exc.strerror}") from exc


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


def config_version(stored: StoredConfig, active: int | None) -> ConfigVersion:
    text, redacted = redact_secrets(stored.yaml)
    return ConfigVersion(
        version=stored.version,
        yaml=text,
        sha256=stored.sha256,
        source=stored.source,
        author=stored.author,
        comment=stored.comment,
        created_at=stored.created_at,
        active=stored.version == active,
        redacted=redacted,
    )


def validate(text: str) -> ValidateRoutesResponse:
    """Every problem a put would refuse, except unset variables (validation does not read the environment)."""
    try:
        parse_config(text, env=_AnyEnv(), secrets=_AnySecrets())
        issues = literal_secrets(text)
    except ConfigError as exc:
        issues = list(exc.issues)
    return ValidateRoutesResponse(
        valid=not issues,
        problems=[str(i) for i in issues],
        issues=[ConfigIssue(path=i.path, line=i.line, message=i.message) for i in issues],
    )


def config_endpoints(versions: ConfigVersions, reloader: Reloader) -> list[Endpoint[Any, Any]]:
    async def get_config(req: GetConfigRequest) -> ConfigVersion:
        if req.version is not None:
            stored = await versions.get(req.version)
        else:
            latest = await versions.latest()
            if latest is None:
                raise PermanentError("no configuration has been recorded yet")
            stored = latest
        return config_version(stored, reloader.version)

    async def put_config(req: PutConfigRequest) -> ConfigVersion:
        stored = await versions.put(
            req.yaml, expected_version=req.expected_version, author=req.author, comment=req.comment, caller=req.caller
        )
        await reloader.refresh()
        return config_version(stored, reloader.version)

    async def list_config_versions(req: ListConfigVersionsRequest) -> ConfigVersionList:
        active = reloader.version
        return ConfigVersionList(
            versions=[
                ConfigVersionSummary(
                    version=v.version,
                    sha256=v.sha256,
                    source=v.source,
                    author=v.author,
                    comment=v.comment,
                    created_at=v.created_at,
                    active=v.version == active,
                )
                for v in await versions.history(req.limit)
            ]
        )

    return [
        Endpoint("get_config", GetConfigRequest, ConfigVersion, get_config, "The configuration YAML and version."),
        Endpoint(
            "put_config",
            PutConfigRequest,
            ConfigVersion,
            put_config,
            "Store and apply a new configuration version (409 when expected_version is not the latest).",
        ),
        Endpoint(
            "list_config_versions",
            ListConfigVersionsRequest,
            ConfigVersionList,
            list_config_versions,
            "The configuration versions, newest first.",
        ),
    ]


def endpoints(notifier: Notifier, reloader: Reloader | None = None) -> list[Endpoint[Any, Any]]:
    """The request-reply endpoints; the configuration ones (get/put/list versions) need the `reloader`."""

    async def create_silence(req: CreateSilenceRequest) -> SilenceView:
        now = notifier.clock()
        start, end = req.window(now)
        if end <= start:
            raise PermanentError("the silence ends before it starts")
        silence = await notifier.create_silence(req.matchers, start, end, req.created_by, req.comment, req.caller)
        return silence_view(silence, now)

    async def list_silences(req: ListSilencesRequest) -> SilenceList:
        now = notifier.clock()
        views = [silence_view(s, now) for s in await notifier.list_silences()]
        return SilenceList(silences=[v for v in views if req.state is None or v.state == req.state])

    async def expire_silence(req: ExpireSilenceRequest) -> SilenceView:
        expired = await notifier.expire_silence(req.id, req.expired_by, req.caller)
        return silence_view(expired, notifier.clock())

    async def get_routes(_: Empty) -> RoutesView:
        config = notifier.config
        return RoutesView(
            route=route_view(config.root),
            receivers={name: [f"{k}/{i}" for k, i, _ in r.integrations()] for name, r in config.receivers.items()},
            inhibit_rules=len(config.inhibit_rules),
            version=reloader.version if reloader else None,
        )

    async def validate_routes(req: ValidateRoutesRequest) -> ValidateRoutesResponse:
        return validate(req.yaml)

    async def preview_silence(req: PreviewSilenceRequest) -> SilencePreview:
        return await inspecting.preview_silence(notifier.db, req)

    async def list_deliveries(req: ListDeliveriesRequest) -> DeliveryList:
        return await inspecting.list_deliveries(notifier.db, req)

    async def alert_outcomes(req: AlertOutcomesRequest) -> AlertOutcomeList:
        return await inspecting.alert_outcomes(notifier.db, req)

    served: list[Endpoint[Any, Any]] = [
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
        Endpoint("preview_silence", PreviewSilenceRequest, SilencePreview, preview_silence, "What it would mute."),
        Endpoint("list_deliveries", ListDeliveriesRequest, DeliveryList, list_deliveries, "The delivery log."),
        Endpoint("alert_outcomes", AlertOutcomesRequest, AlertOutcomeList, alert_outcomes, "One alert's fate."),
    ]
    if reloader is not None:
        served += config_endpoints(reloader.versions, reloader)
    return served


class _AnyEnv(dict[str, str]):
    """Validation of a proposed YAML must not depend on (or reveal) this process's environment."""

    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: str) -> str:
        return "placeholder"


class _AnySecrets(dict[SecretRef, str | Unresolved]):
    """Nor on (or reveal) which secrets exist: every reference of a valid form resolves to a placeholder."""

    def get(self, key: SecretRef, default: object = None) -> str:
        return "placeholder"


def secret_endpoints(secrets: ReceiverSecrets, reloader: Reloader) -> list[Endpoint[Any, Any]]:
    """Put, list, delete and rotate stored receiver secrets; write-only: no answer holds a value."""

    async def put_receiver_secret(req: PutReceiverSecretRequest) -> ReceiverSecretView:
        info = await secrets.put(req.name, req.value.get_secret_value(), actor=req.updated_by, comment=req.comment)
        await reloader.refresh()  # a configuration in force that refers to it takes the new value now
        return secret_view(info)

    async def list_receiver_secrets(_: Empty) -> ReceiverSecretList:
        return ReceiverSecretList(secrets=[secret_view(i) for i in await secrets.list()])

    async def delete_receiver_secret(req: DeleteReceiverSecretRequest) -> ReceiverSecretView:
        user = await reloader.versions.referencing(req.name)
        if user is not None:
            raise ConflictError(f"receiver secret {req.name} is referenced by {user}: put one without it first")
        return secret_view(await secrets.delete(req.name, actor=req.deleted_by))

    async def rotate_receiver_secrets(req: RotateReceiverSecretsRequest) -> RotateReceiverSecretsResponse:
        rotated, total = await secrets.rotate(actor=req.rotated_by)
        return RotateReceiverSecretsResponse(rotated=rotated, total=total, key_id=secrets.keyring.primary)

    return [
        Endpoint(
            "put_receiver_secret",
            PutReceiverSecretRequest,
            ReceiverSecretView,
            put_receiver_secret,
            "Store (or replace) a receiver secret, encrypted; the answer never holds the value.",
        ),
        Endpoint(
            "list_receiver_secrets", Empty, ReceiverSecretList, list_receiver_secrets, "Stored secrets' metadata."
        ),
        Endpoint(
            "delete_receiver_secret",
            DeleteReceiverSecretRequest,
            ReceiverSecretView,
            delete_receiver_secret,
            "Delete a stored secret (409 while the configuration refers to it).",
        ),
        Endpoint(
            "rotate_receiver_secrets",
            RotateReceiverSecretsRequest,
            RotateReceiverSecretsResponse,
            rotate_receiver_secrets,
            "Re-encrypt every stored secret under the first key.",
        ),
    ]


def secret_view(info: SecretInfo) -> ReceiverSecretView:
    return ReceiverSecretView(
        name=info.name,
        key_id=info.key_id,
        created_at=info.created_at,
        updated_at=info.updated_at,
        updated_by=info.updated_by,
    )


def secret_sources(
    rt: Runtime[NotifierSettings], db: Database, auditor: Auditor, on_outbox: Callable[[], None]
) -> tuple[ReceiverSecrets, SecretSources]:
    """The encrypted store (no key: nothing can be stored) and the Kubernetes Secrets reader."""
    o = rt.settings.notifier.secrets
    keys = [k.get_secret_value() for k in o.keys]
    secrets = ReceiverSecrets(db, Keyring(keys) if keys else None, auditor=auditor, clock=utcnow, on_outbox=on_outbox)
    kube = KubeSecrets(lambda: api_client(o.kubeconfig), namespace=o.namespace, cache_seconds=o.cache_seconds)
    sources = SecretSources(secrets, kube)
    rt.on_shutdown(sources.close, "kubernetes client")
    return secrets, sources


async def setup(
    rt: Runtime[NotifierSettings], *, config_text: str | None = None, env: Mapping[str, str] | None = None
) -> Notifier:
    """Start everything; `config_text` replaces the file's content and `env` the process environment (tests)."""
    s = rt.settings
    opts = s.notifier
    env = os.environ if env is None else env
    if config_text is None:
        config_text = read_config(opts.config_file)
    db = await rt.open_database(store.MIGRATIONS, store.SCHEMA)

    bus = await rt.open_bus()

    relay = OutboxRelay(
        db.engine, store.TABLES.outbox, bus.publisher, registry=rt.registry, options=RelayOptions(poll_interval=1.0)
    )
    await relay.start()
    rt.on_shutdown(relay.stop, "outbox relay")

    client = http_client(opts.request_timeout_seconds)
    rt.on_shutdown(client.aclose, "http client")
    renderer = Renderer(Links(gateway_url=opts.gateway_url, jaeger_url=opts.jaeger_url))
    auditor = Auditor(service=SERVICE, cluster=s.cluster)

    def channels_for(config: NotifierConfig) -> dict[str, dict[str, Channel]]:
        return build_all_channels(config, renderer, client, opts.request_timeout_seconds)

    secrets, sources = secret_sources(rt, db, auditor, relay.wake)
    stored = await secrets.check_readable()  # refuse to start when stored secrets cannot be decrypted
    versions = ConfigVersions(
        db, auditor=auditor, env=env, clock=utcnow, on_outbox=relay.wake, channels_for=channels_for, sources=sources
    )
    try:  # the file must be usable here before it is recorded as a version
        channels_for((await versions.load(config_text, fresh=True))[0])
    except (ConfigError, ChannelConfigError) as exc:
        raise ConfigurationError(f"notifier configuration {opts.config_file}: {exc}") from exc
    in_force = await versions.seed(config_text)
    try:
        config, _ = await versions.load(in_force.yaml)
        channels = channels_for(config)
    except (ConfigError, ChannelConfigError) as exc:
        raise ConfigurationError(f"notifier configuration version {in_force.version} (in force): {exc}") from exc
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
            unaccounted_after=timedelta(seconds=opts.unaccounted_after_seconds),
            check_every=opts.invariant_check_seconds,
            check_limit=opts.invariant_check_limit,
        ),
        on_outbox=relay.wake,
    )
    reloader = Reloader(versions, notifier, channels_for)
    await reloader.apply(in_force)
    rt.every("config reload", opts.config_poll_seconds, reloader.refresh)
    rules = retention_rules(
        timedelta(days=opts.retention_days), stale_alerts=timedelta(days=opts.stale_alert_retention_days)
    )

    async def retention() -> None:
        await purge_all(db.engine, rules)

    rt.every("retention", opts.retention_interval_seconds, retention)
    await notifier.start()
    rt.on_shutdown(notifier.stop, "flush and delivery loop")

    for spec in consumer_specs(s):
        bus.consumer(spec, notifier.handle)
    await bus.start()

    svc = await serve(
        bus.nc,
        SERVICE,
        VERSION,
        endpoints(notifier, reloader) + secret_endpoints(secrets, reloader),
        description="routes and silences",
        tracer=rt.tracer_provider.get_tracer("opsbus.notifier"),
    )
    rt.on_shutdown(svc.stop, "rpc endpoints")
    log.info(
        "notifier routing %d routes to %d receivers (configuration version %d, %d stored receiver secret(s))",
        len(config.routes()),
        len(config.receivers),
        in_force.version,
        stored,
    )
    return notifier


def retention_rules(keep: timedelta, *, stale_alerts: timedelta) -> list[RetentionRule]:
    """What the retention job deletes: attempts in the delivery log, finished notifications (delivered or dead),
    alert outcomes that ended (an open one is what the invariant check must still see),
    silences that ended, processed-event and published-outbox records older than `keep`; groups no flush has
    touched for `keep` (a live group is rewritten at least every group_interval, so only abandoned ones); and
    firing alerts not seen for `stale_alerts` (an inhibition source whose resolution was lost)."""
    t = store.notifications
    return [
        RetentionRule.inbox(store.TABLES, keep),
        RetentionRule.published_outbox(store.TABLES, keep),
        RetentionRule(store.delivery_log, "at", keep),
        RetentionRule(t, "finished_at", keep, t.c.finished_at.is_not(None)),
        RetentionRule(store.silences, "ends_at", keep),
        RetentionRule(store.groups, "updated_at", keep),
        RetentionRule(store.firing_alerts, "updated_at", stale_alerts),
        RetentionRule(
            store.alert_outcomes, "updated_at", keep, store.alert_outcomes.c.state.not_in(["routed", "queued"])
        ),
    ]


def utcnow() -> datetime:
    return datetime.now(UTC)
