"""The inbox: which events a consumer has already processed, recorded in the same transaction as the
handler's own writes, so a redelivered event (at-least-once delivery) changes nothing the second time.

    async with sessions.begin() as session:
        if not await inbox.claim(session, "healer-alerts", delivery.event.id):
            return                       # processed before: ack and do nothing
        ...                              # the handler's writes, same session
    # commit: the writes and the inbox row become visible together, or neither does

A concurrent second delivery of the same event (a replica that took over after ack_wait) blocks on the
first transaction's row: if the first commits, the claim returns False; if it rolls back, the claim wins.
This module must never commit: the caller owns the transaction.
"""

from __future__ import annotations

from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from opsbus.common.store.tables import StoreTables, tables_for_schema


async def claim(session: AsyncSession, table: Table, consumer: str, event_id: str) -> bool:
    """Record that `consumer` processes `event_id` in the session's transaction.

    True: first time, go ahead. False: already processed (committed by an earlier delivery), skip.
    """
    statement = (
        insert(table)
        .values(consumer=consumer, event_id=event_id)
        .on_conflict_do_nothing(index_elements=[table.c.consumer, table.c.event_id])
        .returning(table.c.event_id)
    )
    result = await session.execute(statement)
    return result.first() is not None


class Inbox:
    """`claim()` bound to one service's inbox table."""

    def __init__(self, table: Table) -> None:
        self.table = table

    @classmethod
    def for_tables(cls, tables: StoreTables) -> Inbox:
        return cls(tables.inbox)

    @classmethod
    def for_schema(cls, schema: str) -> Inbox:
        return cls(tables_for_schema(schema).inbox)

    async def claim(self, session: AsyncSession, consumer: str, event_id: str) -> bool:
        return await claim(session, self.table, consumer, event_id)
