"""Notification identity and the routed-alert invariant, against real NATS, PostgreSQL and a webhook on 127.0.0.1.

* A flush replayed after a crash (the group row back in its state before the flush) yields the same id and
  body: nothing is queued twice, nothing is sent twice, and the replay is counted.
* A conflict that is not such a replay (same identity, different body) is logged, counted and raised.
* Every routed alert ends, per integration, delivered / dead / muted / not sent with its reason, and the
  housekeeping check reports an alert left in none of those states past the bound.
* Migration 0003 gives existing groups an epoch and goes down and up again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import delete, insert, select, text

from opsbus.common.bus import Bus
from opsbus.common.settings import DatabaseSettings
from opsbus.common.store import Database, current_revision, downgrade, upgrade
from opsbus.notifier import store
from opsbus.notifier.accounting import NotificationConflictError
from opsbus.notifier.executing import Notifier
from tests.integration.notifier_stack import (
    MakeBus,
    Receiver,
    Stack,
    alert_fired,
    make_publisher,
    notifier_db,
    notifier_stack,
    wait_for,
    webhook_receiver,
    yaml_config,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async for r in webhook_receiver():
        yield r


@pytest.fixture
async def stack(database_url: str, nats_url: str) -> AsyncIterator[Stack]:
    async for s in notifier_stack(database_url, nats_url):
        yield s


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    async for d in notifier_db(database_url):
        yield d


@pytest.fixture
async def publisher_bus(make_bus: MakeBus) -> Bus:
    return await make_publisher(make_bus)


def sample(stack: Stack, name: str, **labels: str) -> float:
    value = stack.running[0][0].registry.get_sample_value(name, labels or None)
    return value or 0.0


async def group_rows(db: Database) -> list[dict[str, Any]]:
    async with db.sessions() as session:
        return [dict(r._mapping) for r in (await session.execute(select(store.groups))).all()]


async def notification_rows(db: Database) -> list[Any]:
    async with db.sessions() as session:
        return list((await session.execute(select(store.notifications))).all())


async def outcomes(db: Database) -> list[tuple[str, str, str | None]]:
    t = store.alert_outcomes
    async with db.sessions() as session:
        rows = (await session.execute(select(t.c.integration, t.c.state, t.c.reason).order_by(t.c.routed_at))).all()
    return [(r.integration, r.state, r.reason) for r in rows]


async def put_back(db: Database, row: dict[str, Any]) -> None:
    """The group row as it was before the flush, due now: what a flush replayed after a crash reads."""
    async with db.sessions.begin() as session:
        await session.execute(delete(store.groups))
        await session.execute(insert(store.groups).values(**{**row, "next_flush_at": text("now()")}))


async def first_flush_snapshot(
    stack: Stack, db: Database, publisher_bus: Bus, receiver: Receiver
) -> tuple[Notifier, dict[str, Any]]:
    """Publish one alert into a group due in 2 s; return once it is delivered, with the pre-flush row saved."""
    notifier = await stack.start(yaml_config(receiver.url(), group_wait="2s"))
    await publisher_bus.publisher.publish(alert_fired())

    async def grouped() -> bool:
        return bool(await group_rows(db))

    await wait_for(grouped)
    snapshot = (await group_rows(db))[0]

    async def sent() -> bool:
        return len(receiver.requests) == 1

    await wait_for(sent)
    return notifier, snapshot


async def test_a_replayed_flush_after_a_crash_queues_and_sends_nothing_twice(
    stack: Stack, receiver: Receiver, publisher_bus: Bus, db: Database
) -> None:
    notifier, snapshot = await first_flush_snapshot(stack, db, publisher_bus, receiver)
    await put_back(db, snapshot)

    async def replayed() -> bool:
        return sample(stack, "opsbus_notifier_flush_replays_total") == 1.0

    await wait_for(replayed)
    await asyncio.sleep(0.5)
    assert len(receiver.requests) == 1
    assert [r.status for r in await notification_rows(db)] == ["delivered"]
    assert sample(stack, "opsbus_notifier_notification_conflicts_total", receiver="team") == 0.0
    assert sample(stack, "opsbus_notifier_notifications_total", receiver="team") == 1.0
    assert await outcomes(db) == [("webhook/0", "delivered", "delivered on attempt 1")]
    assert (await notifier.check_invariant()).count == 0


async def test_a_conflict_that_is_not_a_replay_is_logged_counted_and_raised(
    stack: Stack, receiver: Receiver, publisher_bus: Bus, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    notifier, row = await first_flush_snapshot(stack, db, publisher_bus, receiver)
    await notifier.stop()  # flush by hand below
    alerts = {fp: {**a, "title": "a different notification"} for fp, a in row["alerts"].items()}
    await put_back(db, {**row, "alerts": alerts})
    with pytest.raises(NotificationConflictError):
        await notifier.flush_due()
    assert sample(stack, "opsbus_notifier_notification_conflicts_total", receiver="team") == 1.0
    assert any("conflicts with a different notification" in r.getMessage() for r in caplog.records)
    assert len(await notification_rows(db)) == 1  # the stored one is untouched, nothing was overwritten
    [group] = await group_rows(db)  # kept, retried after group_interval
    assert group["seq"] == row["seq"] and group["next_flush_at"] > row["next_flush_at"]
    assert sample(stack, "opsbus_notifier_notifications_total", receiver="team") == 1.0


async def test_an_alert_the_notifier_does_not_tell_in_time_is_reported_then_cleared(
    stack: Stack, receiver: Receiver, publisher_bus: Bus, db: Database
) -> None:
    notifier = await stack.start(
        yaml_config(receiver.url(), group_wait="1s"), unaccounted_after_seconds=0.5, invariant_check_seconds=0.2
    )
    await notifier.stop()  # the flush loop is down: the alert is routed and nobody tells it
    await publisher_bus.publisher.publish(alert_fired())

    async def routed() -> bool:
        return [s for _, s, _ in await outcomes(db)] == ["routed"]

    await wait_for(routed)
    await asyncio.sleep(1.7)  # group_wait (1 s) plus the bound (0.5 s) have passed
    found = await notifier.check_invariant()
    assert found.count == 1 and found.sample[0][2:] == ("webhook/0", "routed")
    assert sample(stack, "opsbus_notifier_unaccounted_alerts") == 1.0

    await notifier.start()  # the loop is back: the alert is told and the gauge goes back to 0

    async def cleared() -> bool:
        return sample(stack, "opsbus_notifier_unaccounted_alerts") == 0.0 and len(receiver.requests) == 1

    await wait_for(cleared)
    assert [s for _, s, _ in await outcomes(db)] == ["delivered"]


async def test_fired_and_resolved_before_the_first_flush_is_deliberately_not_sent_with_its_reason(
    stack: Stack, receiver: Receiver, publisher_bus: Bus, db: Database
) -> None:
    from opsbus.common.events.examples import example_events  # noqa: PLC0415
    from opsbus.common.events.payloads import AlertResolved  # noqa: PLC0415

    notifier = await stack.start(yaml_config(receiver.url(), group_wait="1s"))
    await publisher_bus.publisher.publish(alert_fired())
    await publisher_bus.publisher.publish(example_events()[AlertResolved.event_type])

    async def settled() -> bool:
        return [s for _, s, _ in await outcomes(db)] == ["not_sent", "not_sent"]

    await wait_for(settled)
    fired, resolved = await outcomes(db)
    assert fired[2] is not None and fired[2].startswith("superseded by event")
    assert resolved[2] is not None and resolved[2].startswith("not told: ")
    assert receiver.requests == []
    assert (await notifier.check_invariant()).count == 0


async def test_migration_0003_gives_existing_groups_an_epoch_and_goes_down_and_up(database_url: str) -> None:
    settings = DatabaseSettings.model_validate({"url": database_url})
    await upgrade(settings, store.MIGRATIONS, store.SCHEMA, "0002")
    database = Database.from_settings(settings)
    try:
        async with database.engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO notifier.groups (key, route_id, receiver, labels, options, created_at, "
                    "next_flush_at, seq, alerts) VALUES ('0:{}', '0', 'team', '{}', '{}', now(), now(), 3, '{}')"
                )
            )
        await upgrade(settings, store.MIGRATIONS, store.SCHEMA, "0003")
        async with database.engine.connect() as conn:
            epoch = (await conn.execute(text("SELECT epoch FROM notifier.groups"))).scalar_one()
        assert len(epoch) == 36  # a UUID: the group's next ids are new ones
        await downgrade(settings, store.MIGRATIONS, store.SCHEMA, "0002")
        assert await current_revision(settings, store.SCHEMA) == "0002"
        await upgrade(settings, store.MIGRATIONS, store.SCHEMA)
        async with database.engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM notifier.alert_outcomes"))).scalar_one() == 0
            assert (await conn.execute(text("SELECT seq FROM notifier.groups"))).scalar_one() == 3
    finally:
        await database.close()
