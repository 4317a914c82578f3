"""The gateway's read models: the audit trail and incidents, built from the bus, queried by the API.

Consumers (durable, shared by replicas; each event claimed in the inbox in the same transaction as its
row, and rows keyed by event id, so a redelivery changes nothing):
* `gateway-audit` on AUDIT: every `audit.recorded` into `audit_entries`;
* `gateway-alerts` on ALERT: `alert.fired` opens an incident (keyed by the firing event's id, which is the
  chain's correlation id, with the trace id of its `traceparent`: the console's link to the trace in Jaeger),
  `alert.resolved` closes the open incident with the same cluster and fingerprint;
* `gateway-chains` on RECOVERY, NOTIFY and DIAGNOSIS: every recovery, notification and diagnosis event into
  `incident_events`, joined to incidents by correlation id (the analyzer files diagnoses under the first alert).

Queries narrow themselves to the caller's namespaces and clusters (`visible_*` from the access rules) in SQL,
so a tenant's page never contains, and its cursor never skips over, another tenant's rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, Select, Text, bindparam, cast, func, insert, literal_column, or_, select, update
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.dialects.postgresql import insert as pg_insert

from opsbus.common.bus import Delivery
from opsbus.common.errors import SkipError
from opsbus.common.events.payloads import AlertFired, AlertResolved, AuditRecorded
from opsbus.common.store import Database, claim
from opsbus.gateway import store
from opsbus.gateway.statements import Compiled, Statements, records

AUDIT_CONSUMER = "gateway-audit"
ALERT_CONSUMER = "gateway-alerts"
CHAIN_CONSUMER = "gateway-chains"


@dataclass(frozen=True, slots=True)
class Visibility:
    """What a caller may see: None means everything along that axis."""

    namespaces: frozenset[str] | None
    clusters: frozenset[str] | None

    def apply(self, query: Select[Any], namespace_col: Any, cluster_col: Any) -> Select[Any]:
        # named parameters: the audit page is compiled once per shape (`statements.Compiled`) and bound by name
        if self.namespaces is not None:
            query = query.where(namespace_col.in_(bindparam("visible_ns", sorted(self.namespaces), expanding=True)))
        if self.clusters is not None:
            query = query.where(cluster_col.in_(bindparam("visible_cl", sorted(self.clusters), expanding=True)))
        return query


@dataclass(frozen=True, slots=True)
class AuditFilter:
    namespace: str | None = None
    cluster: str | None = None
    action: str | None = None
    actor: str | None = None
    outcome: str | None = None
    correlation_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    after: int | None = None
    limit: int = 50
    target: str | None = None  # the target's name (a workload, key, session, policy...)


@dataclass(frozen=True, slots=True)
class IncidentFilter:
    namespace: str | None = None
    cluster: str | None = None
    status: str | None = None
    severity: str | None = None
    alertname: str | None = None
    since: datetime | None = None
    before: int | None = None
    limit: int = 50


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id of W3C trace context (`version-traceid-spanid-flags`, validated by the envelope): the
    incident's link to its trace in Jaeger (`<jaeger>/trace/<trace id>`). None without one, or all zeros."""
    if not traceparent:
        return None
    trace_id = traceparent.split("-")[1]
    return None if trace_id.strip("0") == "" else trace_id


class ReadModel:
    def __init__(self, db: Database, statements: Statements) -> None:
        self.db = db
        self.statements = statements  # the audit page's statements (statements.py)
        # The queries below are one SELECT each: run in autocommit they need no BEGIN and ROLLBACK round trips
        # (a pooled connection's check-out ping stays). Same pool as `db`; writes keep their transactions.
        self._reads = db.engine.execution_options(isolation_level="AUTOCOMMIT")

    async def _rows(self, query: Select[Any]) -> list[dict[str, Any]]:
        async with self._reads.connect() as conn:
            return [dict(row) for row in (await conn.execute(query)).mappings()]

    # --- consumers ------------------------------------------------------------------------------------
    async def on_audit(self, delivery: Delivery) -> None:
        event = delivery.event
        if event.type != AuditRecorded.event_type:
            raise SkipError(f"not an audit entry: {event.type}")
        entry = event.payload_as(AuditRecorded)
        # one statement, one implicit transaction: the inbox claim and the row commit together or not at all
        await self.statements.execute(
            _STORE_AUDIT,
            {
                "consumer": AUDIT_CONSUMER,
                "event_id": event.id,
                "time": event.time,
                "service": event.service,
                "cluster": event.cluster,
                "namespace": entry.target.namespace,
                "actor_kind": entry.actor.kind.value,
                "actor_id": entry.actor.id,
                "action": entry.action,
                "target_kind": entry.target.kind,
                "target_name": entry.target.name,
                "outcome": entry.outcome.value,
                "reason": entry.reason,
                "details": entry.details,
                "request_id": entry.request_id,
                "correlation_id": event.correlationid,
                "dry_run": entry.dry_run,
            },
        )

    async def on_alert(self, delivery: Delivery) -> None:
        event = delivery.event
        t = store.incidents
        async with self.db.sessions.begin() as session:
            if not await claim(session, store.TABLES.inbox, ALERT_CONSUMER, event.id):
                return
            if event.type == AlertFired.event_type:
                alert = event.payload_as(AlertFired)
                await session.execute(
                    pg_insert(t)
                    .values(
                        id=event.correlationid or event.id,
                        cluster=event.cluster,
                        namespace=event.object.namespace,
                        fingerprint=alert.fingerprint,
                        alertname=alert.alertname,
                        severity=alert.severity.value,
                        status="firing",
                        source=alert.source.value,
                        summary=alert.annotations.summary,
                        subject=event.subject,
                        labels=alert.labels,
                        alert=event.data,
                        starts_at=alert.starts_at,
                        ends_at=None,
                        updated_at=event.time,
                        trace_id=trace_id_of(event.traceparent),
                    )
                    .on_conflict_do_nothing(index_elements=[t.c.id])
                )
            elif event.type == AlertResolved.event_type:
                resolved = event.payload_as(AlertResolved)
                open_one = (
                    select(t.c.seq)
                    .where(t.c.cluster == event.cluster, t.c.fingerprint == resolved.fingerprint)
                    .where(t.c.status == "firing")
                    .order_by(t.c.seq.desc())
                    .limit(1)
                    .scalar_subquery()
                )
                await session.execute(
                    update(t)
                    .where(t.c.seq == open_one)
                    .values(status="resolved", ends_at=resolved.ends_at, updated_at=event.time)
                )

    async def on_chain(self, delivery: Delivery) -> None:
        event = delivery.event
        async with self.db.sessions.begin() as session:
            if not await claim(session, store.TABLES.inbox, CHAIN_CONSUMER, event.id):
                return
            await session.execute(
                pg_insert(store.incident_events)
                .values(
                    event_id=event.id,
                    correlation_id=event.correlationid or event.id,
                    type=event.type,
                    time=event.time,
                    subject=event.subject,
                    data=event.data,
                )
                .on_conflict_do_nothing(index_elements=[store.incident_events.c.event_id])
            )

    # --- queries --------------------------------------------------------------------------------------
    # The audit trail is read newest first by keyset (`seq < cursor ORDER BY seq DESC LIMIT n`, never an
    # OFFSET or a COUNT): every equality filter has an index `(column, seq)` (migration 0004), so a page of one
    # filter is one index range scan whatever the table's size. Two conditions or more (filters, a time bound,
    # a caller's namespaces) can match rarely or never, and the walk down one index would then read all of it:
    # such a page searches at most `AUDIT_WINDOW` sequence numbers and, short of a full page, says where to go on
    # (its cursor is the window's floor). `docs/benchmarks.md` has the figures over 1,000,000 rows.
    async def audit(self, f: AuditFilter, visibility: Visibility) -> tuple[list[dict[str, Any]], int | None]:
        """A page of the search, and the cursor of the next one (None at the end of the trail)."""
        empty, floor = await self._audit_floor(f, visibility)
        if empty:
            return [], None
        values = _audit_values(f, visibility, floor)
        compiled = _shape(_AUDIT_SHAPES, values, lambda: audit_query(f, visibility, floor=floor))
        rows = records(await self.statements.fetch(compiled, values))
        if len(rows) == f.limit:
            return rows, int(rows[-1]["seq"])
        return rows, floor

    async def audit_json(self, f: AuditFilter, visibility: Visibility) -> tuple[str, int | None]:
        """The page `audit` returns, as the JSON array of its entries that `GET /v1/audit` answers, built by
        PostgreSQL (`audit_json_query`): the gateway never decodes a row. And the next page's cursor."""
        empty, floor = await self._audit_floor(f, visibility)
        if empty:
            return "[]", None
        values = _audit_values(f, visibility, floor)
        compiled = _shape(_AUDIT_JSON_SHAPES, values, lambda: audit_json_query(f, visibility, floor=floor))
        items, count, last = (await self.statements.fetch(compiled, values))[0]
        return items, (int(last) if count == f.limit else floor)

    async def _audit_floor(self, f: AuditFilter, visibility: Visibility) -> tuple[bool, int | None]:
        """Whether the trail is empty, and the lowest sequence number a combined search looks at (None: all)."""
        if _conditions(f, visibility) <= 1:
            return False, None
        low, high = (await self.statements.fetch(_BOUNDS, {}))[0]
        if low is None:
            return True, None
        top = min(high + 1, f.after) if f.after is not None else high + 1
        return False, (top - AUDIT_WINDOW if top - AUDIT_WINDOW > low else None)

    async def incidents(self, f: IncidentFilter, visibility: Visibility) -> list[dict[str, Any]]:
        t = store.incidents
        q = visibility.apply(select(t), t.c.namespace, t.c.cluster)
        for column, value in (
            (t.c.namespace, f.namespace),
            (t.c.cluster, f.cluster),
            (t.c.status, f.status),
            (t.c.severity, f.severity),
            (t.c.alertname, f.alertname),
        ):
            if value is not None:
                q = q.where(column == value)
        if f.since is not None:
            q = q.where(or_(t.c.ends_at.is_(None), t.c.ends_at >= f.since))
        if f.before is not None:
            q = q.where(t.c.seq < f.before)
        return await self._rows(q.order_by(t.c.seq.desc()).limit(f.limit))

    async def incident(self, incident_id: str) -> dict[str, Any] | None:
        t = store.incidents
        rows = await self._rows(select(t).where(t.c.id == incident_id))
        return rows[0] if rows else None

    async def chain(self, correlation_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        """Recovery and notification events per correlation id, oldest first."""
        if not correlation_ids:
            return {}
        e = store.incident_events
        q = select(e).where(e.c.correlation_id.in_(list(correlation_ids))).order_by(e.c.time, e.c.event_id)
        out: dict[str, list[dict[str, Any]]] = {cid: [] for cid in correlation_ids}
        for row in await self._rows(q):
            out[row["correlation_id"]].append(row)
        return out

    async def record_deploy_request(self, values: dict[str, Any]) -> None:
        async with self.db.sessions.begin() as session:
            await session.execute(insert(store.deploy_requests).values(**values))

    async def deploy_request(self, request_id: str) -> dict[str, Any] | None:
        t = store.deploy_requests
        rows = await self._rows(select(t).where(t.c.request_id == request_id))
        return rows[0] if rows else None


AUDIT_WINDOW = 50_000
"""Sequence numbers a page of a combined audit search looks through at most."""


def _conditions(f: AuditFilter, visibility: Visibility) -> int:
    values = (f.namespace, f.cluster, f.action, f.actor, f.outcome, f.correlation_id, f.target, f.since, f.until)
    restricted = (visibility.namespaces is not None) + (visibility.clusters is not None)
    return sum(v is not None for v in values) + restricted


def _equalities(f: AuditFilter) -> tuple[tuple[str, Any, str | None], ...]:
    t = store.audit_entries
    return (
        ("namespace", t.c.namespace, f.namespace),
        ("cluster", t.c.cluster, f.cluster),
        ("action", t.c.action, f.action),
        ("actor", t.c.actor_id, f.actor),
        ("outcome", t.c.outcome, f.outcome),
        ("correlation_id", t.c.correlation_id, f.correlation_id),
        ("target", t.c.target_name, f.target),
    )


def _audit_values(f: AuditFilter, visibility: Visibility, floor: int | None) -> dict[str, Any]:
    """The parameters of `audit_query`, by name (an `IN` list's as `<name>_1`, `<name>_2`...). Their names, in
    this order, are also the statement's shape: two searches with the same names have the same SQL."""
    values: dict[str, Any] = {}
    for name, items in (("visible_ns", visibility.namespaces), ("visible_cl", visibility.clusters)):
        if items is not None:
            values.update({f"{name}_{i}": item for i, item in enumerate(sorted(items), 1)})
    values.update({name: value for name, _, value in _equalities(f) if value is not None})
    bounds = (("since", f.since), ("until", f.until), ("after", f.after), ("floor", floor))
    values.update({name: value for name, value in bounds if value is not None})
    values["limit"] = f.limit
    return values


def audit_query(f: AuditFilter, visibility: Visibility, *, floor: int | None = None) -> Select[Any]:
    """One keyset page of the audit search, down to `floor` (a SELECT: `EXPLAIN`ed by the tests), its
    parameters named as `_audit_values` names them."""
    t = store.audit_entries
    q = select(t)
    q = visibility.apply(q, t.c.namespace, t.c.cluster)
    for name, column, value in _equalities(f):
        if value is not None:
            q = q.where(column == bindparam(name, value, type_=column.type))
    if f.since is not None:
        q = q.where(t.c.time >= bindparam("since", f.since, type_=t.c.time.type))
    if f.until is not None:
        q = q.where(t.c.time < bindparam("until", f.until, type_=t.c.time.type))
    if f.after is not None:
        q = q.where(t.c.seq < bindparam("after", f.after, type_=t.c.seq.type))
    if floor is not None:
        q = q.where(t.c.seq >= bindparam("floor", floor, type_=t.c.seq.type))
    return q.order_by(t.c.seq.desc()).limit(bindparam("limit", f.limit, type_=Integer()))


# `to_char` as pydantic writes an aware UTC datetime: `Z`, and the microseconds only when there are some
_UTC_TEXT = (
    "to_char(page.time AT TIME ZONE 'UTC', CASE WHEN date_part('microseconds', page.time)::bigint % 1000000 = 0 "
    """THEN 'YYYY-MM-DD"T"HH24:MI:SS"Z"' ELSE 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"' END)"""
)


def audit_json_query(f: AuditFilter, visibility: Visibility, *, floor: int | None = None) -> Select[str, int, Any]:
    """`audit_query`'s page as one row: the JSON array of its entries, shaped as the API's `AuditEntry` (same
    keys, same values once parsed), newest first; how many; and the last one's `seq` (the next cursor)."""
    page = audit_query(f, visibility, floor=floor).subquery("page")
    c = page.c

    def obj(*pairs: tuple[str, Any]) -> Any:
        arguments: list[Any] = []
        for key, value in pairs:
            arguments += [literal_column(f"'{key}'"), value]
        return func.json_build_object(*arguments)

    entry = obj(
        ("id", c.event_id),
        ("time", literal_column(_UTC_TEXT)),
        ("service", c.service),
        ("cluster", c.cluster),
        ("namespace", c.namespace),
        ("actor", obj(("kind", c.actor_kind), ("id", c.actor_id))),
        ("action", c.action),
        ("target", obj(("kind", c.target_kind), ("namespace", c.namespace), ("name", c.target_name))),
        ("outcome", c.outcome),
        ("reason", c.reason),
        ("details", c.details),
        ("request_id", c.request_id),
        ("correlation_id", c.correlation_id),
        ("dry_run", c.dry_run),
    )
    items = func.coalesce(func.json_agg(aggregate_order_by(entry, c.seq.desc())), literal_column("'[]'::json"))
    return select(cast(items, Text), func.count(), func.min(c.seq)).select_from(page)


def _shape(cache: dict[tuple[str, ...], Compiled], values: dict[str, Any], build: Callable[[], Any]) -> Compiled:
    """The statement compiled for these parameter names (a search's shape: which conditions are set, how many
    namespaces the caller sees), compiled on first use."""
    shape = tuple(values)
    compiled = cache.get(shape)
    if compiled is None:
        if len(cache) > 4096:  # shapes are few
            cache.clear()
        compiled = cache[shape] = Compiled.of(build())
    return compiled


def store_audit_statement() -> Any:
    """`on_audit`'s write: claim the event in the inbox and, only if this claim is the first, insert its row (a
    data-modifying CTE: one round trip instead of a session's `BEGIN`, two statements and `COMMIT`)."""
    inbox, t = store.TABLES.inbox, store.audit_entries
    claimed = (
        pg_insert(inbox)
        .values(
            consumer=bindparam("consumer", type_=inbox.c.consumer.type),
            event_id=bindparam("event_id", type_=inbox.c.event_id.type),
        )
        .on_conflict_do_nothing(index_elements=[inbox.c.consumer, inbox.c.event_id])
        .returning(inbox.c.event_id)
        .cte("claimed")
    )
    columns = [c for c in t.c if c.name != "seq"]
    row = select(*(bindparam(c.name, type_=c.type) for c in columns)).select_from(claimed)
    return (
        pg_insert(t)
        .from_select([c.name for c in columns], row)
        .on_conflict_do_nothing(index_elements=[t.c.event_id])
        .add_cte(claimed)
    )


_STORE_AUDIT = Compiled.of(store_audit_statement())
_AUDIT_SHAPES: dict[tuple[str, ...], Compiled] = {}
_AUDIT_JSON_SHAPES: dict[tuple[str, ...], Compiled] = {}
_BOUNDS = Compiled.of(select(func.min(store.audit_entries.c.seq), func.max(store.audit_entries.c.seq)))


__all__ = [
    "AUDIT_WINDOW",
    "AuditFilter",
    "IncidentFilter",
    "ReadModel",
    "Visibility",
    "audit_json_query",
    "audit_query",
]
