"""Retention for tables that grow (the inbox, published outbox rows, later audit and delivery logs):
delete rows older than a bound, in small batches, each batch its own short transaction, so a purge never
holds long locks or bloats one huge transaction while the service keeps writing.

The cut-off comes from an injected clock, so tests decide what "old" means without waiting.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnClause, ColumnElement, Table, delete, literal_column, select
from sqlalchemy.ext.asyncio import AsyncEngine

from opsbus.common.store.tables import StoreTables

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RetentionRule:
    """Delete rows of `table` whose `column` is older than `keep`; `where` narrows further (e.g. published)."""

    table: Table
    column: str
    keep: timedelta
    where: ColumnElement[bool] | None = None

    @property
    def name(self) -> str:
        return self.table.fullname

    @classmethod
    def inbox(cls, tables: StoreTables, keep: timedelta) -> RetentionRule:
        """Processed-event records: keep them longer than any redelivery can arrive (max_deliver x backoff)."""
        return cls(tables.inbox, "processed_at", keep)

    @classmethod
    def published_outbox(cls, tables: StoreTables, keep: timedelta) -> RetentionRule:
        """Published outbox rows only: an unpublished row is never deleted, however old."""
        outbox = tables.outbox
        return cls(outbox, "published_at", keep, outbox.c.published_at.is_not(None))


async def purge(
    engine: AsyncEngine,
    rule: RetentionRule,
    *,
    batch_size: int = 1000,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> int:
    """Delete the rows `rule` says are expired, `batch_size` per transaction; the number deleted."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    table, column = rule.table, rule.table.c[rule.column]
    cutoff = clock() - rule.keep
    condition = column < cutoff
    if rule.where is not None:
        condition = condition & rule.where
    ctid: ColumnClause[Any] = literal_column("ctid")
    # ctid: the physical row id, so the batch works for any table whatever its primary key.
    victims = select(ctid).select_from(table).where(condition).limit(batch_size)
    statement = delete(table).where(ctid.in_(victims))
    total = 0
    while True:
        async with engine.begin() as conn:
            deleted = (await conn.execute(statement)).rowcount
        total += deleted
        if deleted < batch_size:
            break
    if total:
        log.info("retention: deleted %d rows from %s older than %s", total, rule.name, rule.keep)
    return total


async def purge_all(
    engine: AsyncEngine,
    rules: Iterable[RetentionRule],
    *,
    batch_size: int = 1000,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> dict[str, int]:
    """Apply every rule in turn; rows deleted per table (the retention job a service schedules)."""
    return {rule.name: await purge(engine, rule, batch_size=batch_size, clock=clock) for rule in rules}
