"""The transactional outbox: an event that must follow a database change is written in the same
transaction as the change, and a relay publishes it after the commit.

    async with sessions.begin() as session:
        session.add(recovery)                       # the state change
        await outbox.add(session, envelope)         # the event announcing it; same commit or neither

`add()` stores exactly what `Publisher.send()` would send (subject, body, headers with the current trace
context), so the relayed event continues the trace of the code that produced it.

`OutboxRelay` claims unpublished rows in order with `SELECT ... FOR UPDATE SKIP LOCKED` (several replicas
may run it: each takes different rows), publishes them pipelined with `Nats-Msg-Id` = event id, waits for
the acks, and marks them published in the same transaction. A crash between publish and commit leaves the
rows unpublished: the next relay sends them again and JetStream's duplicate window drops the copies. Keep
the stream's duplicate window longer than a relay's restart time. It wakes on a PostgreSQL NOTIFY sent by
`add()` (delivered at commit), on `wake()`, and every poll interval. Its backlog gauges (a `COUNT` over the
unpublished rows) are read at most every `observe_interval`, and once more on the first idle pass after a
backlog was seen (so they fall to 0 when it drains): under a storm a pass runs per committed batch, and a count
after each cost the healer 8-13 % of its CPU (issue 18).

Order: one relay publishes in row order. Replicas relaying concurrently interleave their batches; set
`RelayOptions(exclusive=True)` when consumers need the stream in commit order (one replica relays at a
time, the others stand by). A row whose publish fails is retried on a later pass.
This module never commits the caller's transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from sqlalchemy import Table, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from opsbus.common.bus.publishing import MSG_ID, Publisher, prepare
from opsbus.common.events.envelope import Envelope
from opsbus.common.store.tables import StoreTables, tables_for_schema

log = logging.getLogger(__name__)


def notify_channel(table: Table) -> str:
    """The PostgreSQL NOTIFY channel on which `add()` announces new rows of `table`."""
    return f"opsbus_outbox_{table.schema or 'public'}"[:63]


def outbox_row(event: Envelope) -> dict[str, Any]:
    """The outbox row of `event`: exactly what `Publisher.send()` would send, with the current trace context.

    For a caller that writes its rows in one statement of its own (the gateway's deploy request: the event, the
    audit entry and the request row in one round trip); it must also `pg_notify(notify_channel(table), '')`.
    """
    subject, body, headers = prepare(event)
    return {"event_id": event.id, "event_type": event.type, "subject": subject, "body": body, "headers": headers}


async def add(session: AsyncSession, table: Table, event: Envelope) -> bool:
    """Queue `event` for publishing when the session's transaction commits.

    False when an event with the same id is already queued (or was published within the retention
    bound): adding it again is a no-op, as publishing it again would be in the stream.
    """
    statement = (
        insert(table)
        .values(outbox_row(event))
        .on_conflict_do_nothing(index_elements=[table.c.event_id])
        .returning(table.c.id)
    )
    inserted = (await session.execute(statement)).first() is not None
    if inserted:
        # Delivered to listeners only when (and if) the transaction commits; repeats within one
        # transaction are folded into one notification by PostgreSQL.
        await session.execute(select(func.pg_notify(notify_channel(table), "")))
    return inserted


class Outbox:
    """`add()` bound to one service's outbox table."""

    def __init__(self, table: Table) -> None:
        self.table = table

    @classmethod
    def for_tables(cls, tables: StoreTables) -> Outbox:
        return cls(tables.outbox)

    @classmethod
    def for_schema(cls, schema: str) -> Outbox:
        return cls(tables_for_schema(schema).outbox)

    async def add(self, session: AsyncSession, event: Envelope) -> bool:
        return await add(session, self.table, event)


@dataclass(frozen=True, slots=True)
class RelayOptions:
    batch_size: int = 256
    poll_interval: float = 1.0
    error_backoff: float = 2.0
    listen: bool = True
    exclusive: bool = False
    stop_grace: float = 10.0
    max_error_length: int = 2000
    observe_interval: float = 5.0  # seconds between two reads of the backlog gauges while rows flow


class OutboxMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.relayed = Counter(
            "opsbus_outbox_relayed_total",
            "Outbox rows the relay published, by schema and outcome (ok, error).",
            ["schema", "outcome"],
            registry=registry,
        )
        self.lag = Gauge(
            "opsbus_outbox_lag_seconds",
            "Age of the oldest unpublished outbox row, by schema (0 when the outbox is drained).",
            ["schema"],
            registry=registry,
        )
        self.pending = Gauge(
            "opsbus_outbox_pending_rows",
            "Outbox rows committed and not yet published, by schema.",
            ["schema"],
            registry=registry,
        )


class OutboxRelay:
    """Publishes committed outbox rows; `start()`/`stop()` around the service's life, or `relay_once()`."""

    def __init__(
        self,
        engine: AsyncEngine,
        table: Table,
        publisher: Publisher,
        *,
        registry: CollectorRegistry,
        options: RelayOptions | None = None,
    ) -> None:
        self._engine = engine
        self.table = table
        self._publisher = publisher
        self.options = options or RelayOptions()
        self._metrics = OutboxMetrics(registry)
        self._schema = table.schema or "public"
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listener: AsyncConnection | None = None
        self._driver: Any = None
        self._observed_at: float | None = None  # monotonic time of the last backlog read
        self._backlog = 0  # rows unpublished at that read

    # --- lifecycle ----------------------------------------------------------------------------------
    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("relay already started")
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name=f"outbox-relay:{self._schema}")

    def wake(self) -> None:
        """Relay now rather than at the next poll (e.g. right after committing rows in this process)."""
        self._wake.set()

    async def stop(self) -> None:
        """Finish the batch in flight (its acks and its commit) within the grace period, then stop."""
        self._stopping.set()
        self._wake.set()
        task, self._task = self._task, None
        if task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), self.options.stop_grace)
        except TimeoutError:
            log.warning(
                "outbox relay %s: batch still running after %.0fs; abandoning it", self._schema, self.options.stop_grace
            )
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # --- one pass -----------------------------------------------------------------------------------
    async def relay_once(self) -> int:
        """Publish one batch of unpublished rows; the number published (0: nothing to do or not our turn)."""
        t = self.table
        async with self._engine.begin() as conn:
            if self.options.exclusive:
                lock = select(func.pg_try_advisory_xact_lock(func.hashtext(f"opsbus_outbox:{self._schema}")))
                if not (await conn.execute(lock)).scalar_one():
                    return 0
            claim = (
                select(t.c.id, t.c.event_id, t.c.event_type, t.c.subject, t.c.body, t.c.headers)
                .where(t.c.published_at.is_(None))
                .order_by(t.c.id)
                .limit(self.options.batch_size)
                .with_for_update(skip_locked=True)
            )
            rows = (await conn.execute(claim)).all()
            if not rows:
                return 0
            acks = [
                await self._publisher.send_raw(
                    row.subject, bytes(row.body), {**row.headers, MSG_ID: row.event_id}, event_type=row.event_type
                )
                for row in rows
            ]
            results = await asyncio.gather(*acks, return_exceptions=True)
            published = [
                row.id for row, result in zip(rows, results, strict=True) if not isinstance(result, BaseException)
            ]
            failed = [
                (int(row.id), result)
                for row, result in zip(rows, results, strict=True)
                if isinstance(result, BaseException)
            ]
            await self._mark_published(conn, published)
            await self._record_failures(conn, failed)
        self._metrics.relayed.labels(self._schema, "ok").inc(len(published))
        if failed:
            self._metrics.relayed.labels(self._schema, "error").inc(len(failed))
            log.warning(
                "outbox relay %s: %d of %d publishes failed: %s", self._schema, len(failed), len(rows), failed[0][1]
            )
        return len(published)

    async def _mark_published(self, conn: AsyncConnection, ids: Sequence[int]) -> None:
        if ids:
            await conn.execute(update(self.table).where(self.table.c.id.in_(ids)).values(published_at=func.now()))

    async def _record_failures(self, conn: AsyncConnection, failed: Sequence[tuple[int, BaseException]]) -> None:
        t = self.table
        for row_id, exc in failed:
            message = f"{type(exc).__name__}: {exc}"[: self.options.max_error_length]
            await conn.execute(update(t).where(t.c.id == row_id).values(attempts=t.c.attempts + 1, last_error=message))

    async def observe(self) -> tuple[int, float]:
        """Read the backlog (rows, age of the oldest in seconds) into the metrics and return it."""
        t = self.table
        query = select(
            func.count(), func.coalesce(func.extract("epoch", func.now() - func.min(t.c.created_at)), 0)
        ).where(t.c.published_at.is_(None))
        async with self._engine.connect() as conn:
            count, lag = (await conn.execute(query)).one()
        self._observed_at, self._backlog = time.monotonic(), int(count)
        self._metrics.pending.labels(self._schema).set(int(count))
        self._metrics.lag.labels(self._schema).set(float(lag))
        return int(count), float(lag)

    def _observe_due(self, relayed: int) -> bool:
        """Read the backlog now? At the first pass, every `observe_interval`, and on an idle pass after a backlog."""
        if self._observed_at is None or time.monotonic() - self._observed_at >= self.options.observe_interval:
            return True
        return relayed == 0 and self._backlog > 0

    # --- the loop -----------------------------------------------------------------------------------
    async def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                self._wake.clear()
                delay = self.options.poll_interval
                try:
                    await self._ensure_listening()
                except Exception as exc:  # no LISTEN (e.g. a transaction-pooling proxy): polling still works
                    log.warning("outbox relay %s: cannot LISTEN (%s); polling only", self._schema, exc)
                relayed = 0
                try:
                    while not self._stopping.is_set():
                        n = await self.relay_once()
                        relayed += n
                        if n < self.options.batch_size:
                            break  # else a full batch: there may be more right behind it
                except Exception as exc:
                    delay = self.options.error_backoff
                    log.warning("outbox relay %s: pass failed (%s); retrying in %.1fs", self._schema, exc, delay)
                if self._observe_due(relayed):
                    with contextlib.suppress(Exception):
                        await self.observe()
                with contextlib.suppress(TimeoutError):
                    # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation that
                    # arrives as the event fires, and this loop would then never stop.
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
        finally:
            await self._unlisten()

    async def _ensure_listening(self) -> None:
        if not self.options.listen:
            return
        if self._driver is not None and not self._driver.is_closed():
            return
        await self._unlisten()
        conn = await self._engine.connect()
        try:
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection
            await driver.add_listener(notify_channel(self.table), self._on_notify)
        except BaseException:
            await conn.close()
            raise
        self._listener, self._driver = conn, driver

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def _unlisten(self) -> None:
        conn, driver = self._listener, self._driver
        self._listener = self._driver = None
        if conn is None:
            return
        with contextlib.suppress(Exception):
            if driver is not None and not driver.is_closed():
                await driver.remove_listener(notify_channel(self.table), self._on_notify)
        with contextlib.suppress(Exception):
            await conn.close()
