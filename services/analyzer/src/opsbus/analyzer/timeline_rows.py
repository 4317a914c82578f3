"""The analyzer's timeline rows in PostgreSQL: claiming a batch of incoming entries in the inbox, inserting them,
and reading back the window one diagnosis needs. Split from `executing` so the executor keeps to moving data
between the bus, the planner and these statements.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from opsbus.analyzer import store
from opsbus.analyzer.domain.timeline import Entry
from opsbus.common.events.envelope import Envelope
from opsbus.common.store import claim

CLUSTER_SCOPED = "_"


@dataclass(frozen=True, slots=True)
class Incoming:
    """A timeline entry handed in by a handler, with the event it came from and the consumer's inbox name."""

    event: Envelope
    entry: Entry
    consumer: str


async def claim_all(s: AsyncSession, items: Sequence[Incoming]) -> set[tuple[str, str]]:
    """The (consumer, event id) pairs claimed now: the rest were taken in by an earlier delivery."""
    if len(items) == 1:
        i = items[0]
        return {(i.consumer, i.event.id)} if await claim(s, store.TABLES.inbox, i.consumer, i.event.id) else set()
    inbox = store.TABLES.inbox
    pairs = sorted({(i.consumer, i.event.id) for i in items})
    result = await s.execute(
        pg_insert(inbox)
        .on_conflict_do_nothing(index_elements=[inbox.c.consumer, inbox.c.event_id])
        .returning(inbox.c.consumer, inbox.c.event_id),
        [{"consumer": c, "event_id": e} for c, e in pairs],
    )
    return {(r.consumer, r.event_id) for r in result}


async def insert_entries(s: AsyncSession, entries: Sequence[tuple[str, Entry]], now: datetime) -> None:
    """The (cluster, entry) pairs as one executemany (one cached compiled statement, sent as multi-row VALUES by
    SQLAlchemy: compiling a fresh multi-row VALUES per batch was 15 % of the ingest's CPU); an entry already
    recorded is left as it is."""
    t = store.timeline
    rows = [
        {
            "event_id": entry.event_id,
            "cluster": cluster,
            "namespace": entry.namespace or CLUSTER_SCOPED,
            "at": entry.at,
            "object_name": entry.object_name,
            "entry": entry.to_json(),
            "recorded_at": now,
        }
        for cluster, entry in entries
    ]
    await s.execute(pg_insert(t).on_conflict_do_nothing(index_elements=[t.c.event_id]), rows)


async def window(
    s: AsyncSession, cluster: str, namespace: str, nodes: frozenset[str], since: datetime
) -> tuple[Entry, ...]:
    """The namespace's entries and those of the given nodes: the only cluster-scoped rows that can score."""
    t = store.timeline
    scope = [t.c.namespace == namespace] if namespace != CLUSTER_SCOPED else []
    if nodes:
        scope.append(and_(t.c.namespace == CLUSTER_SCOPED, t.c.object_name.in_(sorted(nodes))))
    if not scope:
        return ()
    rows = await s.execute(select(t.c.entry).where(t.c.cluster == cluster, or_(*scope), t.c.at >= since))
    return tuple(Entry.from_json(r.entry) for r in rows)
