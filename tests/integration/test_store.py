"""The store against real PostgreSQL (and real NATS for the inbox and the outbox): migrations, the inbox under
redelivery, the outbox across a crash, concurrent relays and retention. Assertions look at what a user would
see: rows in tables, revisions in the version table, messages in the stream."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry
from sqlalchemy import Connection, Select, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from opsbus.common.bus import Bus, ConsumerSpec, Delivery
from opsbus.common.bus.publishing import MSG_ID
from opsbus.common.errors import SchemaMismatchError
from opsbus.common.events import Envelope
from opsbus.common.settings import DatabaseSettings
from opsbus.common.store import (
    Database,
    Inbox,
    Outbox,
    OutboxRelay,
    RelayOptions,
    RetentionRule,
    check_schema_current,
    current_revision,
    downgrade,
    head_revisions,
    migrate_main,
    purge_all,
    safe_url,
    upgrade,
)
from opsbus.common.store.engine import PING_IDLE_AFTER
from opsbus.common.testing.servers import PostgresServer
from tests.integration.busprobe import Happened, event, provision
from tests.integration.store_sample.models import MIGRATIONS, SCHEMA, TABLES, Base, Widget

pytestmark = pytest.mark.integration

MakeBus = Callable[..., Awaitable[Bus]]


# --- helpers ----------------------------------------------------------------------------------------
@pytest.fixture
def settings(database_url: str) -> DatabaseSettings:
    return DatabaseSettings.model_validate({"url": database_url, "pool_size": 4})


@pytest.fixture
async def db(settings: DatabaseSettings) -> AsyncIterator[Database]:
    """The sample service's database, migrated to head."""
    await upgrade(settings, MIGRATIONS, SCHEMA)
    database = Database.from_settings(settings, application_name="opsbus-tests")
    yield database
    await database.close()


async def wait_until(condition: Callable[[], Awaitable[bool]], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


async def tables_in(db: Database, schema: str) -> set[str]:
    async with db.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s"), {"s": schema}
        )
        return {row[0] for row in rows}


async def columns_of(db: Database, schema: str, table: str) -> set[str]:
    async with db.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT column_name FROM information_schema.columns WHERE table_schema = :s AND table_name = :t"),
            {"s": schema, "t": table},
        )
        return {row[0] for row in rows}


async def count(db: Database, statement: Select[int]) -> int:
    async with db.engine.connect() as conn:
        return int((await conn.execute(statement)).scalar_one())


async def unpublished(db: Database) -> int:
    return await count(
        db, select(func.count()).select_from(TABLES.outbox).where(TABLES.outbox.c.published_at.is_(None))
    )


async def stream_messages(bus: Bus, stream: str) -> list[tuple[str, bytes, dict[str, str]]]:
    info = await bus.js.stream_info(stream)
    found = []
    if info.state.messages:
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            raw = await bus.js.get_msg(stream, seq)
            found.append((raw.subject or "", raw.data or b"", dict(raw.headers or {})))
    return found


async def commit_events(db: Database, events: Sequence[Envelope]) -> None:
    outbox = Outbox(TABLES.outbox)
    async with db.sessions.begin() as session:
        for ev in events:
            assert await outbox.add(session, ev)
            session.add(Widget(name="made", source_event=ev.id))


# --- migrations -------------------------------------------------------------------------------------
async def test_migrations_up_down_up(settings: DatabaseSettings) -> None:
    database = Database.from_settings(settings)
    try:
        assert await current_revision(settings, SCHEMA) is None
        assert await tables_in(database, SCHEMA) == set()

        await upgrade(settings, MIGRATIONS, SCHEMA, "0001")
        assert await current_revision(settings, SCHEMA) == "0001"
        assert await tables_in(database, SCHEMA) == {"alembic_version", "opsbus_inbox", "opsbus_outbox", "widgets"}
        assert "note" not in await columns_of(database, SCHEMA, "widgets")
        assert await tables_in(database, "public") == set()  # the version table lives in the service's schema

        await upgrade(settings, MIGRATIONS, SCHEMA)
        assert await current_revision(settings, SCHEMA) == "0002" == head_revisions(MIGRATIONS)[0]
        assert "note" in await columns_of(database, SCHEMA, "widgets")

        await downgrade(settings, MIGRATIONS, SCHEMA, "base")
        assert await current_revision(settings, SCHEMA) is None
        assert await tables_in(database, SCHEMA) == {"alembic_version"}

        await upgrade(settings, MIGRATIONS, SCHEMA)
        assert await current_revision(database.engine, SCHEMA) == "0002"
        assert await tables_in(database, SCHEMA) == {"alembic_version", "opsbus_inbox", "opsbus_outbox", "widgets"}
    finally:
        await database.close()


async def test_migrations_match_the_models(db: Database) -> None:
    """Autogenerate finds nothing to do at head: the op helpers and `store_tables` build the same tables,
    and other schemas are invisible to the comparison."""
    from alembic.autogenerate import compare_metadata  # noqa: PLC0415
    from alembic.runtime.migration import MigrationContext  # noqa: PLC0415

    async with db.engine.begin() as conn:
        await conn.execute(text("CREATE TABLE public.someone_elses (id int PRIMARY KEY)"))

    def diff(connection: Connection) -> list[object]:
        context = MigrationContext.configure(
            connection,
            opts={
                "include_schemas": True,
                "include_name": lambda name, type_, parents: name == SCHEMA if type_ == "schema" else True,
                "version_table_schema": SCHEMA,
                "compare_type": True,
            },
        )
        return list(compare_metadata(context, Base.metadata))

    async with db.engine.connect() as conn:
        assert await conn.run_sync(diff) == []


async def test_service_refuses_a_schema_it_does_not_know(settings: DatabaseSettings) -> None:
    with pytest.raises(SchemaMismatchError, match=r"no migrations applied.*`python -m opsbus.sample migrate`"):
        await check_schema_current(settings, MIGRATIONS, SCHEMA)

    await upgrade(settings, MIGRATIONS, SCHEMA, "0001")
    with pytest.raises(SchemaMismatchError, match=r"at revision 0001; this code needs 0002.*opsbus.sample migrate"):
        await check_schema_current(settings, MIGRATIONS, SCHEMA)

    await upgrade(settings, MIGRATIONS, SCHEMA)
    assert await check_schema_current(settings, MIGRATIONS, SCHEMA) == "0002"

    # A newer release migrated the database to a revision this code has never heard of.
    database = Database.from_settings(settings)
    try:
        async with database.engine.begin() as conn:
            await conn.execute(text("UPDATE sample.alembic_version SET version_num = 'f00dfeed'"))
    finally:
        await database.close()
    with pytest.raises(SchemaMismatchError, match=r"f00dfeed, which this version of the code does not know"):
        await check_schema_current(settings, MIGRATIONS, SCHEMA, service="sampler")
    with pytest.raises(SchemaMismatchError, match=r"opsbus.sampler migrate"):
        await check_schema_current(settings, MIGRATIONS, SCHEMA, service="sampler")


async def test_migrate_entrypoint(settings: DatabaseSettings, capsys: pytest.CaptureFixture[str]) -> None:
    def cli(*argv: str) -> int:
        return migrate_main(argv, settings=settings, script_location=MIGRATIONS, schema=SCHEMA)

    # The entrypoint owns its event loop (it is a process's main), so run it off this test's loop.
    assert await asyncio.to_thread(cli, "check") == 1
    assert "python -m opsbus.sample migrate" in capsys.readouterr().err
    assert await asyncio.to_thread(cli) == 0
    assert capsys.readouterr().out == "sample: at 0002\n"
    assert await asyncio.to_thread(cli, "check") == 0
    assert await asyncio.to_thread(cli, "downgrade", "0001") == 0
    assert await asyncio.to_thread(cli, "current") == 0
    assert capsys.readouterr().out.splitlines()[-1] == "0001"
    assert await asyncio.to_thread(cli, "history") == 0
    assert "0002 <- 0001" in capsys.readouterr().out


async def test_engine_never_shows_the_password(settings: DatabaseSettings, db: Database) -> None:
    password = settings.url.get_secret_value().split("://", 1)[1].split("@", 1)[0].partition(":")[2]
    assert password, "the test database URL carries a password"
    assert password not in safe_url(settings)
    assert password not in repr(db.engine.url) and password not in str(db.engine)
    assert await db.ping()
    async with db.engine.connect() as conn:
        timeout = (await conn.execute(text("SHOW statement_timeout"))).scalar_one()
        app = (await conn.execute(text("SHOW application_name"))).scalar_one()
    assert (timeout, app) == ("30s", "opsbus-tests")


# --- inbox ------------------------------------------------------------------------------------------
async def test_inbox_makes_a_handler_idempotent_under_redelivery(db: Database, make_bus: MakeBus) -> None:
    """Event 1: the handler commits, then crashes before the ack -> JetStream redelivers it, the inbox says
    "done", nothing is written twice. Event 2: the handler crashes before its commit -> the inbox claim rolls
    back with the write, and the redelivery does the work once."""
    bus = await make_bus()
    await provision(bus)
    inbox = Inbox(TABLES.inbox)
    attempts: list[tuple[int, int]] = []

    async def handler(delivery: Delivery) -> None:
        n = delivery.event.payload_as(Happened).n
        attempts.append((n, delivery.attempt))
        async with db.sessions.begin() as session:
            if not await inbox.claim(session, "tests-widgets", delivery.event.id):
                return  # processed already: ack, do nothing
            session.add(Widget(name=f"widget-{n}", source_event=delivery.event.id))
            await session.flush()
            if n == 2 and delivery.attempt == 1:
                raise RuntimeError("crash before commit")
        if n == 1 and delivery.attempt == 1:
            raise RuntimeError("crash after commit, before ack")

    bus.consumer(
        ConsumerSpec(durable="tests-widgets", stream="TEST", subjects=["test.>"], backoff=(0.2,), fetch_timeout=0.3),
        handler,
    )
    await bus.start()
    first, second = event(1), event(2)
    await bus.publisher.publish(first)
    await bus.publisher.publish(second)

    async def settled() -> bool:
        return len(attempts) == 4 and await bus.consumers[0].refresh_lag() == (0, 0)

    await wait_until(settled, what="both events redelivered once and acked")
    assert sorted(attempts) == [(1, 1), (1, 2), (2, 1), (2, 2)]
    async with db.sessions() as session:
        widgets = (await session.execute(select(Widget.name, Widget.source_event).order_by(Widget.name))).all()
        claimed = (await session.execute(select(TABLES.inbox.c.consumer, TABLES.inbox.c.event_id))).all()
    assert [tuple(w) for w in widgets] == [("widget-1", first.id), ("widget-2", second.id)]
    assert sorted(tuple(c) for c in claimed) == sorted([("tests-widgets", first.id), ("tests-widgets", second.id)])


async def test_concurrent_claims_of_one_event_let_one_through(db: Database) -> None:
    """Two replicas handle the same event at once: the second waits for the first's transaction and skips
    if it committed, or does the work if it rolled back."""
    inbox = Inbox(TABLES.inbox)

    async def claim_in(session: AsyncSession) -> bool:
        return await inbox.claim(session, "tests-race", "evt-1")

    async with db.sessions() as first, db.sessions() as second:
        await first.begin()
        assert await claim_in(first)
        await second.begin()
        racing = asyncio.create_task(claim_in(second))
        await asyncio.sleep(0.3)
        assert not racing.done()  # blocked on the first transaction's row
        await first.rollback()  # the first replica crashed: the second must do the work
        assert await racing
        await second.commit()

    async with db.sessions.begin() as third:
        assert not await claim_in(third)  # now it is done for good


# --- outbox -----------------------------------------------------------------------------------------
class CrashingRelay(OutboxRelay):
    """Publishes, then dies before recording that it did (the window the outbox must survive)."""

    async def _mark_published(self, conn: AsyncConnection, ids: Sequence[int]) -> None:
        raise RuntimeError("killed between publish and commit")


async def test_outbox_publishes_exactly_the_committed_rows_after_a_crash(
    db: Database, make_bus: MakeBus, registry: CollectorRegistry
) -> None:
    bus = await make_bus()
    await provision(bus)
    events = [event(n) for n in range(10)]
    await commit_events(db, events[:5])
    ghost = event(99)

    async def add_then_fail() -> None:
        async with db.sessions.begin() as session:
            await Outbox(TABLES.outbox).add(session, ghost)
            raise RuntimeError("rolled back")

    with pytest.raises(RuntimeError, match="rolled back"):
        await add_then_fail()
    await commit_events(db, events[5:])

    crashing = CrashingRelay(
        db.engine, TABLES.outbox, bus.publisher, registry=CollectorRegistry(), options=RelayOptions(batch_size=4)
    )
    with pytest.raises(RuntimeError, match="killed"):
        await crashing.relay_once()
    assert len(await stream_messages(bus, "TEST")) == 4  # published...
    assert await unpublished(db) == 10  # ...but not recorded as such

    relay_registry = CollectorRegistry()
    relay = OutboxRelay(
        db.engine,
        TABLES.outbox,
        bus.publisher,
        registry=relay_registry,
        options=RelayOptions(batch_size=3, poll_interval=0.1),
    )
    await relay.start()
    try:
        await wait_until(lambda: _is_zero(unpublished(db)), what="the outbox to drain")
    finally:
        await relay.stop()

    messages = await stream_messages(bus, "TEST")
    assert [headers[MSG_ID] for _, _, headers in messages] == [e.id for e in events]  # once each, in order
    assert [body for _, body, _ in messages] == [e.to_json() for e in events]
    assert ghost.id not in {headers[MSG_ID] for _, _, headers in messages}
    assert await count(db, select(func.count()).select_from(TABLES.outbox)) == 10
    assert await count(db, select(func.count()).select_from(Widget)) == 10
    # The crashed relay's four were sent again and dropped by JetStream's duplicate window.
    sample = {"type": Happened.event_type, "outcome": "duplicate"}
    assert registry.get_sample_value("opsbus_events_published_total", sample) == 4
    assert relay_registry.get_sample_value("opsbus_outbox_relayed_total", {"schema": SCHEMA, "outcome": "ok"}) == 10
    assert relay_registry.get_sample_value("opsbus_outbox_pending_rows", {"schema": SCHEMA}) == 0
    assert relay_registry.get_sample_value("opsbus_outbox_lag_seconds", {"schema": SCHEMA}) == 0


async def _is_zero(value: Awaitable[int]) -> bool:
    return await value == 0


async def test_relay_wakes_on_commit_and_keeps_the_trace(
    db: Database, make_bus: MakeBus, tracer_provider: TracerProvider
) -> None:
    """With a 60 s poll interval, only the NOTIFY sent at commit can make the relay publish promptly; the
    stored headers carry the producer's trace context."""
    bus = await make_bus()
    await provision(bus)
    relay = OutboxRelay(
        db.engine,
        TABLES.outbox,
        bus.publisher,
        registry=CollectorRegistry(),
        options=RelayOptions(poll_interval=60.0),
    )
    await relay.start()
    try:
        await asyncio.sleep(0.3)  # the relay's first (empty) pass, then it waits
        produced = event(5)
        with tracer_provider.get_tracer("tests").start_as_current_span("decide") as span:
            await commit_events(db, [produced])
        trace_id = format(span.get_span_context().trace_id, "032x")
        await wait_until(lambda: _is_zero(unpublished(db)), timeout=5, what="the relay to wake on NOTIFY")
    finally:
        await relay.stop()
    [(subject, body, headers)] = await stream_messages(bus, "TEST")
    assert subject == produced.nats_subject()
    assert headers[MSG_ID] == produced.id
    assert trace_id in headers["traceparent"]
    assert trace_id in (produced.model_validate_json(body).traceparent or "")


@pytest.mark.parametrize("exclusive", [False, True], ids=["concurrent", "exclusive"])
async def test_two_relays_never_double_publish(db: Database, make_bus: MakeBus, exclusive: bool) -> None:
    """Two replicas relay the same outbox. Concurrent: SKIP LOCKED splits the rows between them. Exclusive:
    one relays at a time, so the stream holds the events in commit order."""
    registries = [CollectorRegistry(), CollectorRegistry()]
    buses = [await make_bus(f"replica-{i}", registry_=registries[i]) for i in range(2)]
    await provision(buses[0])
    events = [event(n) for n in range(200)]
    for start in range(0, 200, 50):
        await commit_events(db, events[start : start + 50])
    relays = [
        OutboxRelay(
            db.engine,
            TABLES.outbox,
            bus.publisher,
            registry=reg,
            options=RelayOptions(batch_size=10, poll_interval=0.05, exclusive=exclusive),
        )
        for bus, reg in zip(buses, registries, strict=True)
    ]
    await asyncio.gather(*(relay.start() for relay in relays))
    try:
        await wait_until(lambda: _is_zero(unpublished(db)), timeout=20, what="the outbox to drain")
    finally:
        await asyncio.gather(*(relay.stop() for relay in relays))

    info = await buses[0].js.stream_info("TEST")
    assert info.state.messages == 200 == await count(db, select(func.count()).select_from(TABLES.outbox))
    relayed = [
        reg.get_sample_value("opsbus_outbox_relayed_total", {"schema": SCHEMA, "outcome": "ok"}) or 0
        for reg in registries
    ]
    assert sum(relayed) == 200  # every row sent by exactly one relay: none hidden by the dedupe window
    for reg in registries:
        duplicates = reg.get_sample_value(
            "opsbus_events_published_total", {"type": Happened.event_type, "outcome": "duplicate"}
        )
        assert not duplicates
    ids = [h[MSG_ID] for _, _, h in await stream_messages(buses[0], "TEST")]
    assert sorted(ids) == sorted(e.id for e in events)
    if exclusive:
        assert ids == [e.id for e in events]


# --- retention --------------------------------------------------------------------------------------
async def test_retention_deletes_only_old_rows(db: Database) -> None:
    now = datetime(2030, 1, 31, 12, 0, tzinfo=UTC)
    old, recent = now - timedelta(days=10), now - timedelta(hours=1)
    inbox, outbox = TABLES.inbox, TABLES.outbox
    async with db.engine.begin() as conn:
        await conn.execute(
            insert(inbox),
            [{"consumer": "c", "event_id": f"old-{i}", "processed_at": old} for i in range(5)]
            + [{"consumer": "c", "event_id": f"new-{i}", "processed_at": recent} for i in range(3)],
        )
        rows: list[dict[str, object]] = []
        for label, created, published in [
            *[("old-published", old, old)] * 4,
            *[("old-unpublished", old, None)] * 2,  # stuck rows are never deleted, however old
            *[("new-published", recent, recent)] * 2,
        ]:
            rows.append(
                {
                    "event_id": f"{label}-{len(rows)}",
                    "event_type": "io.opsbus.test.happened.v1",
                    "subject": "test.happened.dev.ns1",
                    "body": b"{}",
                    "headers": {},
                    "created_at": created,
                    "published_at": published,
                }
            )
        await conn.execute(insert(outbox), rows)

    rules = [
        RetentionRule.inbox(TABLES, keep=timedelta(days=7)),
        RetentionRule.published_outbox(TABLES, keep=timedelta(days=7)),
    ]
    deleted = await purge_all(db.engine, rules, batch_size=2, clock=lambda: now)
    assert deleted == {"sample.opsbus_inbox": 5, "sample.opsbus_outbox": 4}

    async with db.engine.connect() as conn:
        kept_inbox = sorted((await conn.execute(select(inbox.c.event_id))).scalars())
        kept_outbox = sorted(e.rsplit("-", 1)[0] for e in (await conn.execute(select(outbox.c.event_id))).scalars())
    assert kept_inbox == ["new-0", "new-1", "new-2"]
    assert kept_outbox == ["new-published"] * 2 + ["old-unpublished"] * 2

    assert await purge_all(db.engine, rules, clock=lambda: now) == {"sample.opsbus_inbox": 0, "sample.opsbus_outbox": 0}
    # A row marked published just now is kept even by a short bound.
    async with db.engine.begin() as conn:
        await conn.execute(update(outbox).values(published_at=now))
    assert await purge_all(
        db.engine, [RetentionRule.published_outbox(TABLES, timedelta(minutes=1))], clock=lambda: now
    ) == {"sample.opsbus_outbox": 0}


# --- crash and restart of PostgreSQL ----------------------------------------------------------------
@pytest.mark.skipif(bool(os.environ.get("OPSBUS_TEST_DATABASE_URL")), reason="restarts the private PostgreSQL")
async def test_relay_survives_a_postgres_restart(
    db: Database, make_bus: MakeBus, postgres: PostgresServer | None
) -> None:
    """PostgreSQL restarts under a running relay: rows committed before and after are all published, once."""
    assert postgres is not None
    bus = await make_bus()
    await provision(bus)
    relay = OutboxRelay(
        db.engine, TABLES.outbox, bus.publisher, registry=CollectorRegistry(), options=RelayOptions(poll_interval=0.2)
    )
    await relay.start()
    try:
        before = [event(n) for n in range(10)]
        await commit_events(db, before)
        await wait_until(lambda: _is_zero(unpublished(db)), timeout=10, what="the first rows to be relayed")
        await asyncio.to_thread(postgres.stop, "fast")
        await asyncio.to_thread(postgres.start)
        after = [event(n) for n in range(10, 20)]
        for _ in range(50):  # the pool notices the dead connections; a commit may need a retry
            try:
                await commit_events(db, after)
                break
            except Exception:
                await asyncio.sleep(0.2)
        await wait_until(lambda: _is_zero(unpublished(db)), timeout=20, what="rows committed after the restart")
    finally:
        await relay.stop()
    ids = [h[MSG_ID] for _, _, h in await stream_messages(bus, "TEST")]
    assert sorted(ids) == sorted(e.id for e in before + after)


@pytest.mark.skipif(bool(os.environ.get("OPSBUS_TEST_DATABASE_URL")), reason="restarts the private PostgreSQL")
async def test_a_pooled_connection_idle_through_a_restart_is_pinged_and_replaced(
    db: Database, postgres: PostgresServer | None
) -> None:
    """No ping on every checkout (issue 18), but one idle longer than PING_IDLE_AFTER is checked: the first
    statement after a PostgreSQL restart succeeds instead of failing on the dead connection."""
    assert postgres is not None
    async with db.sessions() as session:
        before = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    await asyncio.to_thread(postgres.stop, "fast")
    await asyncio.to_thread(postgres.start)
    await asyncio.sleep(PING_IDLE_AFTER + 0.5)
    async with db.sessions() as session:
        after = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    assert after != before  # a new connection, made at checkout, not an error
