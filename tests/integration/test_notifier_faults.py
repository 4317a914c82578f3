"""No notification is lost when the same fault repeats (issue 29), against real NATS, PostgreSQL and a webhook.

A group row is deleted when it empties and re-created by the next alert with the same group key. Before the
group epoch, the re-created group restarted its sequence, reused the ids of the first one and the insert of
every later notification was silently dropped: only the first fault of a workload was ever told. These tests
repeat one fault (and one recovery) many times on one workload and count what the receiver got.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from opsbus.common.bus import Bus
from opsbus.common.events import Envelope
from opsbus.common.events.examples import example_events
from opsbus.common.events.payloads import AlertFired, AlertResolved, RecoveryStarted, RecoverySucceeded
from opsbus.common.store import Database
from opsbus.notifier import store
from tests.integration.notifier_stack import (
    MakeBus,
    Receiver,
    Stack,
    make_publisher,
    notifier_db,
    notifier_stack,
    wait_for,
    webhook_receiver,
    yaml_config,
)

pytestmark = pytest.mark.integration

FAULTS = 20


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


def fresh(event_type: str) -> Envelope:
    """The example event of `event_type` as a new occurrence (new id), same workload and fingerprint."""
    return example_events()[event_type].model_copy(update={"id": str(uuid.uuid4())})


def fast_config(receiver: Receiver) -> str:
    return yaml_config(receiver.url(), group_wait="0s", group_interval="200ms")


def told(receiver: Receiver) -> list[tuple[str, str]]:
    """(status, notification id) of every POST the receiver got, in order."""
    bodies: list[dict[str, Any]] = [r.json() for r in receiver.requests]
    return [(b["status"], b["notificationId"]) for b in bodies]


async def publish_and_wait(bus: Bus, receiver: Receiver, event: Envelope, *, expected: int) -> None:
    await bus.publisher.publish(event)

    async def arrived() -> bool:
        return len(receiver.requests) >= expected

    try:
        await wait_for(arrived, timeout=20)
    except AssertionError:
        raise AssertionError(f"notification {expected} never arrived; the receiver got {told(receiver)}") from None


async def statuses(db: Database) -> list[str]:
    async with db.sessions() as session:
        return list((await session.execute(select(store.notifications.c.status))).scalars().all())


async def settle(db: Database, expected: int) -> None:
    """Wait until `expected` notification rows exist and none is still pending or being sent.

    The receiver counts a request as soon as it has read it, before it answers; the notifier records the outcome
    once the answer is back, in a transaction of its own. Reading the rows right after the last request arrived
    raced with that commit: under load the last row could still be `sending` when they were read (as it is every
    time when the receiver holds its last answer for 0.7 s)."""

    async def recorded() -> bool:
        found = await statuses(db)
        return len(found) >= expected and not {"pending", "sending"} & set(found)

    try:
        await wait_for(recorded, timeout=30)
    except AssertionError:
        raise AssertionError(f"the outcomes were never all recorded: {await statuses(db)}") from None


async def repeat_fault(bus: Bus, receiver: Receiver, faults: int) -> None:
    for n in range(faults):
        await publish_and_wait(bus, receiver, fresh(AlertFired.event_type), expected=2 * n + 1)
        await publish_and_wait(bus, receiver, fresh(AlertResolved.event_type), expected=2 * n + 2)


async def test_the_same_fault_twenty_times_gives_twenty_fired_and_twenty_resolved_notifications(
    stack: Stack, receiver: Receiver, publisher_bus: Bus, db: Database
) -> None:
    await stack.start(fast_config(receiver))
    await repeat_fault(publisher_bus, receiver, FAULTS)
    await settle(db, 2 * FAULTS)
    await asyncio.sleep(0.5)  # nothing more arrives
    got = told(receiver)
    assert [status for status, _ in got] == ["firing", "resolved"] * FAULTS
    assert len({nid for _, nid in got}) == 2 * FAULTS  # every one a new notification
    assert await statuses(db) == ["delivered"] * (2 * FAULTS)


async def test_recovery_notices_are_all_delivered(
    stack: Stack, receiver: Receiver, publisher_bus: Bus, db: Database
) -> None:
    await stack.start(fast_config(receiver))
    rounds = 10
    for n in range(rounds):
        for k, event_type in enumerate((RecoveryStarted.event_type, RecoverySucceeded.event_type)):
            await publish_and_wait(publisher_bus, receiver, fresh(event_type), expected=2 * n + k + 1)
    await settle(db, 2 * rounds)
    await asyncio.sleep(0.5)
    bodies = [r.json() for r in receiver.requests]
    names = [b["groupLabels"]["alertname"] for b in bodies]
    assert names == ["RecoveryStarted", "RecoverySucceeded"] * rounds
    assert len({b["notificationId"] for b in bodies}) == 2 * rounds
    assert await statuses(db) == ["delivered"] * (2 * rounds)


async def test_two_replicas_give_no_duplicate_and_no_loss(
    stack: Stack, receiver: Receiver, publisher_bus: Bus, db: Database
) -> None:
    config = fast_config(receiver)
    await stack.start(config)
    await stack.start(config)
    await repeat_fault(publisher_bus, receiver, FAULTS)
    await settle(db, 2 * FAULTS)
    await asyncio.sleep(1.0)
    got = told(receiver)
    assert [status for status, _ in got] == ["firing", "resolved"] * FAULTS
    assert len({nid for _, nid in got}) == len(got) == 2 * FAULTS
    assert await statuses(db) == ["delivered"] * (2 * FAULTS)
