"""The change timeline read model: `change.recorded` into the gateway's `changes` table, and its query.

One durable consumer (`gateway-changes` on CHANGE, shared by replicas) claims each event in the inbox in the
same transaction as its row, keyed by event id, so a redelivery changes nothing; a payload that does not
decode never reaches here (the bus sends it to the DLQ with the reason, as for every registered type).
The query narrows itself to the caller's namespaces and clusters in SQL, like the audit trail: a node's
changes (no namespace) are visible only to callers who see every namespace. Retention: `changes.time`,
purged with the gateway's other read models (`OPSBUS_GATEWAY__CHANGE_RETENTION_DAYS`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from opsbus.common.bus import Delivery
from opsbus.common.events.payloads import ChangeRecorded
from opsbus.common.store import Database, claim
from opsbus.gateway import store
from opsbus.gateway.readmodel import Visibility

CHANGE_CONSUMER = "gateway-changes"


@dataclass(frozen=True, slots=True)
class ChangeFilter:
    namespace: str | None = None
    cluster: str | None = None
    workload: str | None = None  # a workload's name, or the object's own name (a ConfigMap, a node)
    kind: str | None = None  # one of ChangeKind
    since: datetime | None = None
    until: datetime | None = None
    after: int | None = None
    limit: int = 50


class Timeline:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._reads = db.engine.execution_options(isolation_level="AUTOCOMMIT")

    async def on_change(self, delivery: Delivery) -> None:
        event = delivery.event
        change = event.payload_as(ChangeRecorded)
        workload = change.workload
        async with self.db.sessions.begin() as session:
            if not await claim(session, store.TABLES.inbox, CHANGE_CONSUMER, event.id):
                return
            await session.execute(
                pg_insert(store.changes)
                .values(
                    event_id=event.id,
                    time=change.observed_at,
                    service=event.service,
                    cluster=event.cluster,
                    namespace=change.object.namespace,
                    object_kind=change.object.kind,
                    object_name=change.object.name,
                    workload_kind=workload.kind if workload else None,
                    workload_name=workload.name if workload else None,
                    kinds=[k.value for k in change.kinds],
                    origin=change.origin.value,
                    summary=change.summary,
                    change=event.data,
                    correlation_id=event.correlationid,
                    causation_id=event.causationid,
                )
                .on_conflict_do_nothing(index_elements=[store.changes.c.event_id])
            )

    async def changes(self, f: ChangeFilter, visibility: Visibility) -> list[dict[str, Any]]:
        t = store.changes
        q = visibility.apply(select(t), t.c.namespace, t.c.cluster)
        if f.namespace is not None:
            q = q.where(t.c.namespace == f.namespace)
        if f.cluster is not None:
            q = q.where(t.c.cluster == f.cluster)
        if f.workload is not None:
            q = q.where((t.c.workload_name == f.workload) | (t.c.object_name == f.workload))
        if f.kind is not None:
            q = q.where(t.c.kinds.contains([f.kind]))
        if f.since is not None:
            q = q.where(t.c.time >= f.since)
        if f.until is not None:
            q = q.where(t.c.time < f.until)
        if f.after is not None:
            q = q.where(t.c.seq < f.after)
        async with self._reads.connect() as conn:
            rows = await conn.execute(q.order_by(t.c.seq.desc()).limit(f.limit))
            return [dict(row) for row in rows.mappings()]


__all__ = ["CHANGE_CONSUMER", "ChangeFilter", "Timeline"]
