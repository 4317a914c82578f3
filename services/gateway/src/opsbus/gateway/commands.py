"""What the gateway does on behalf of a caller: publish commands as events, call services, audit itself.

* A deploy request is one transaction, written as one statement (one round trip): the `deploy.requested`
  event and the gateway's audit entry go into the outbox, and the request is recorded for status and
  authorization; the relay publishes after commit.
* Alerts from Alertmanager are published directly and acknowledged by JetStream before the webhook answers
  200, so Alertmanager's own retry covers a failure (their ids are deterministic: a retry is deduplicated).
* Request-reply calls to services carry the caller's trace context; no answer is `ServiceUnavailableError`.
* Every mutating call is audited (actor = the API key or OIDC subject, never a secret), in the transaction of
  the write it records: the gateway's own writes (keys, deploy requests) here; a write owned by another
  service (policies, routes, silences) by that service, the request naming the caller (`caller_of`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from nats.aio.client import Client
from pydantic import BaseModel, JsonValue
from sqlalchemy import Select, bindparam, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from opsbus.common.api.calling import Caller
from opsbus.common.audit import Auditor
from opsbus.common.bus import Publisher
from opsbus.common.events import Envelope, ObjectRef
from opsbus.common.events.payloads import DeployRequested
from opsbus.common.events.payloads.audit import AuditOutcome
from opsbus.common.events.payloads.common import Actor, ActorKind, ResourceRef
from opsbus.common.rpc import call
from opsbus.common.store import Database, add
from opsbus.common.store.outbox import notify_channel, outbox_row
from opsbus.gateway import store
from opsbus.gateway.domain.access import Principal
from opsbus.gateway.statements import Compiled, Statements

SERVICE = "gateway"
Resp = TypeVar("Resp", bound=BaseModel)


def actor_of(principal: Principal) -> Actor:
    kind = ActorKind.APIKEY if principal.kind == "apikey" else ActorKind.USER
    return Actor(kind=kind, id=principal.id, display_name=principal.display_name)


def caller_of(principal: Principal, request_id: str) -> Caller:
    """The caller named in a request to the service that owns the data, which audits the call in the
    transaction of its write."""
    return Caller(actor=actor_of(principal), request_id=request_id)


class Services:
    """Request-reply to the other services (`opsbus.svc.<service>.<operation>`)."""

    def __init__(self, nc: Client, *, timeout: float) -> None:
        self.nc = nc
        self.timeout = timeout

    async def call(
        self, service: str, operation: str, request: BaseModel, response: type[Resp], *, timeout: float | None = None
    ) -> Resp:
        """`timeout` overrides the configured one for an operation that reads a cluster (slower than a table)."""
        wait = self.timeout if timeout is None else max(timeout, self.timeout)
        return await call(self.nc, service, operation, request, response, timeout=wait)


class Commands:
    def __init__(
        self,
        db: Database,
        publisher: Publisher,
        *,
        cluster: str,
        statements: Statements,
        on_outbox: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.db = db
        self.publisher = publisher
        self.cluster = cluster
        self.auditor = Auditor(service=SERVICE, cluster=cluster)
        # One statement in autocommit is one transaction: no BEGIN/COMMIT round trips around it.
        self._statements = statements
        self._wake = on_outbox
        self.clock = clock

    async def request_deploy(self, payload: DeployRequested, principal: Principal, request_id: str) -> Envelope:
        event = Envelope.build(payload, service=SERVICE, cluster=payload.cluster, obj=payload.workload.as_object_ref())
        audit = self.auditor.entry(
            action="deploy.request",
            target=payload.workload.as_resource_ref(),
            outcome=AuditOutcome.EXECUTED,
            reason=payload.reason or f"{payload.strategy.value} requested through the gateway",
            details={"strategy": payload.strategy.value, "images": dict(payload.images), "request_id": event.id},
            actor=actor_of(principal),
            cause=event,
            request_id=request_id,
            idempotency_key=f"deploy:{event.id}",
        )
        audit = audit.model_copy(update={"source": f"/opsbus/{SERVICE}/{payload.cluster}"})
        await self._statements.execute(_DEPLOY, _deploy_parameters(event, audit, payload, principal))
        self._wake()
        return event

    def entry(
        self,
        principal: Principal,
        *,
        action: str,
        target: ResourceRef,
        reason: str,
        request_id: str,
        cluster: str | None = None,
        outcome: AuditOutcome = AuditOutcome.EXECUTED,
        details: Mapping[str, JsonValue] | None = None,
    ) -> Envelope:
        """The gateway's audit entry for a caller's call (no I/O): for a write that commits it with its change."""
        entry = self.auditor.entry(
            action=action,
            target=target,
            outcome=outcome,
            reason=reason,
            details=details,
            actor=actor_of(principal),
            request_id=request_id,
        )
        if cluster and cluster != self.cluster:
            entry = entry.model_copy(update={"source": f"/opsbus/{SERVICE}/{cluster}"})
        return entry

    async def audit(self, principal: Principal, **fields: object) -> None:
        """Record a call that changed nothing in the gateway's own tables (same arguments as `entry`)."""
        entry = self.entry(principal, **fields)  # type: ignore[arg-type]
        async with self.db.sessions.begin() as session:
            await add(session, store.TABLES.outbox, entry)
        self._wake()

    async def publish_alerts(self, events: Sequence[Envelope]) -> None:
        futures = [await self.publisher.send(event) for event in events]
        for future in futures:
            await future


_OUTBOX_COLUMNS = ("event_id", "event_type", "subject", "body", "headers")
_REQUEST_COLUMNS = ("request_id", "cluster", "namespace", "kind", "name", "strategy", "requester", "requested_at")


def _build_deploy_statement() -> Select[Any]:
    """The deploy request's whole write as one statement, so one round trip and one transaction: the event and
    the audit entry into the outbox, the request row, and the relay's wake-up (delivered at commit).

    Built and compiled once with bind parameters (`statements.Compiled`: SQLAlchemy compiled a literal multi-row
    VALUES anew on every call, and still walked the cached statement and processed its parameters per call).
    Data-modifying CTEs run to completion whether or not the outer query reads them; the outer query reads both
    so that SQLAlchemy renders them.
    """
    outbox = store.TABLES.outbox
    queued = (
        pg_insert(outbox)
        .values([{c: bindparam(f"{c}_{n}", type_=outbox.c[c].type) for c in _OUTBOX_COLUMNS} for n in (0, 1)])
        .on_conflict_do_nothing(index_elements=[outbox.c.event_id])
        .returning(outbox.c.id)
        .cte("queued")
    )
    requests = store.deploy_requests
    recorded = (
        requests.insert()
        .values({c: bindparam(c, type_=requests.c[c].type) for c in _REQUEST_COLUMNS})
        .returning(requests.c.request_id)
        .cte("recorded")
    )
    return select(
        select(func.count()).select_from(queued).scalar_subquery(),
        select(func.count()).select_from(recorded).scalar_subquery(),
        func.pg_notify(notify_channel(outbox), ""),
    )


_DEPLOY = Compiled.of(_build_deploy_statement())


def _deploy_parameters(
    event: Envelope, audit: Envelope, payload: DeployRequested, principal: Principal
) -> dict[str, Any]:
    parameters: dict[str, Any] = {
        f"{column}_{n}": value for n, row in enumerate((event, audit)) for column, value in outbox_row(row).items()
    }
    parameters.update(
        request_id=event.id,
        cluster=payload.cluster,
        namespace=payload.workload.namespace,
        kind=payload.workload.kind,
        name=payload.workload.name,
        strategy=payload.strategy.value,
        requester=principal.label,
        requested_at=event.time,
    )
    return parameters


def cluster_object(kind: str, name: str) -> ObjectRef:
    return ObjectRef(kind=kind, name=name)
