"""The notifier end to end against real NATS, real PostgreSQL and a real HTTP receiver on 127.0.0.1.

Each test runs the service exactly as `python -m opsbus.notifier run` does (the runtime, its setup, its
shutdown), publishes events on the bus, and checks what a user sees: the POSTs the receiver got (signature
verified, evidence in the body), rows in the delivery log, `notify.*` and audit events through the outbox.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select

from opsbus.common.bus import Bus
from opsbus.common.events.examples import example_events
from opsbus.common.events.payloads import AlertFired, AlertResolved
from opsbus.common.rpc import call
from opsbus.common.store import Database
from opsbus.common.testing.servers import PostgresServer
from opsbus.notifier import store
from opsbus.notifier.domain.api import CreateSilenceRequest, SilenceView
from opsbus.notifier.domain.delivery import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from tests.integration.notifier_stack import (
    SECRET,
    MakeBus,
    Receiver,
    Stack,
    alert_fired,
    delivery_log,
    make_publisher,
    notifier_db,
    notifier_stack,
    outbox_events,
    wait_for,
    webhook_receiver,
    yaml_config,
)

# re-exported for the notifier's other integration tests, which import them from here
__all__ = [
    "Receiver",
    "Stack",
    "alert_fired",
    "db",
    "outbox_events",
    "publisher_bus",
    "receiver",
    "stack",
    "wait_for",
    "yaml_config",
]

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


# --- tests ------------------------------------------------------------------------------------------
async def test_alert_fired_is_delivered_once_after_group_wait_signed_with_evidence(
    stack: Stack, receiver: Receiver, publisher_bus: Bus, db: Database
) -> None:
    await stack.start(yaml_config(receiver.url(), group_wait="1s"))
    published = time.monotonic()
    await publisher_bus.publisher.publish(alert_fired())
    await wait_for(lambda: _count(receiver, 1))
    waited = receiver.requests[0].at - published
    assert 1.0 <= waited < 3.0, waited
    await asyncio.sleep(0.5)
    assert len(receiver.requests) == 1  # exactly one

    hit = receiver.requests[0]
    assert verify(
        SECRET,
        hit.headers[TIMESTAMP_HEADER.lower()],
        hit.body,
        hit.headers[SIGNATURE_HEADER.lower()],
        now=int(time.time()),
    )
    body = hit.json()
    assert body["status"] == "firing" and body["receiver"] == "team"
    alert = body["alerts"][0]
    assert "ERROR config: STRIPE_API_BASE is not set" in "\n".join(alert["evidence"]["logLines"])
    assert alert["reason"] == "CrashLoopBackOff"
    assert alert["links"]["trace"] is None or alert["links"]["trace"].startswith("https://jaeger.example.com/trace/")
    assert alert["links"]["incident"] == f"https://opsbus.example.com/v1/incidents/{alert_fired().id}"
    assert "STRIPE_API_BASE" in body["text"]
    assert hit.headers["x-opsbus-notification-id"] == body["notificationId"]

    async def delivered_event() -> bool:
        return len(await outbox_events(db, "io.opsbus.notify.delivered.v1")) == 1

    await wait_for(delivered_event)
    [event] = await outbox_events(db, "io.opsbus.notify.delivered.v1")
    assert event["data"]["notification_id"] == body["notificationId"]
    assert event["causationid"] == alert_fired().id
    assert [r.outcome for r in await delivery_log(db)] == ["delivered"]
    audits = await outbox_events(db, "io.opsbus.audit.recorded.v1")
    assert any(a["data"]["action"] == "notify.deliver" and a["data"]["outcome"] == "executed" for a in audits)
    assert receiver.url() not in json.dumps([*audits, event])  # the webhook URL never leaves the notifier


async def _count(receiver: Receiver, n: int) -> bool:
    return len(receiver.requests) >= n


async def test_429_with_retry_after_is_honoured_then_delivered_once(
    stack: Stack, receiver: Receiver, publisher_bus: Bus, db: Database
) -> None:
    receiver.script = [(429, {"Retry-After": "2"})]
    await stack.start(yaml_config(receiver.url(), group_wait="0s"))
    await publisher_bus.publisher.publish(alert_fired())
    await wait_for(lambda: _count(receiver, 2))
    first, second = receiver.requests
    assert second.at - first.at >= 2.0  # never earlier than the channel asked
    assert first.json()["notificationId"] == second.json()["notificationId"]
    await asyncio.sleep(0.5)
    assert len(receiver.requests) == 2
    log = await delivery_log(db)
    assert [(r.outcome, r.status_code, r.retry_after_seconds) for r in log] == [
        ("retry", 429, 2.0),
        ("delivered", 200, None),
    ]
    failed = await outbox_events(db, "io.opsbus.notify.failed.v1")
    assert [f["data"]["final"] for f in failed] == [False]


async def test_always_failing_receiver_is_dead_lettered_with_notify_failed(
    stack: Stack, receiver: Receiver, publisher_bus: Bus, db: Database
) -> None:
    receiver.default = (503, {})
    await stack.start(yaml_config(receiver.url(), group_wait="0s"), max_attempts=3)
    await publisher_bus.publisher.publish(alert_fired())

    async def dead() -> bool:
        async with db.sessions() as session:
            status = (await session.execute(select(store.notifications.c.status))).scalars().all()
        return list(status) == ["dead"]

    await wait_for(dead)
    assert len(receiver.requests) == 3
    assert [r.outcome for r in await delivery_log(db)] == ["retry", "retry", "dead"]
    failed = await outbox_events(db, "io.opsbus.notify.failed.v1")
    assert [(f["data"]["attempt"], f["data"]["final"]) for f in failed] == [(1, False), (2, False), (3, True)]
    assert failed[-1]["data"]["error"].startswith("HTTP 503")
    audits = await outbox_events(db, "io.opsbus.audit.recorded.v1")
    assert any(a["data"]["outcome"] == "failed" and "dead letter" in a["data"]["reason"] for a in audits)


async def test_restart_between_group_creation_and_flush_sends_exactly_once(
    stack: Stack, receiver: Receiver, publisher_bus: Bus, db: Database
) -> None:
    config = yaml_config(receiver.url(), group_wait="3s")
    await stack.start(config)
    await publisher_bus.publisher.publish(alert_fired())

    async def grouped() -> bool:
        async with db.sessions() as session:
            return bool((await session.execute(select(func.count()).select_from(store.groups))).scalar_one())

    await wait_for(grouped)
    await stack.stop(0)  # the group is pending in PostgreSQL, nothing sent yet
    assert receiver.requests == []
    await stack.start(config)
    await wait_for(lambda: _count(receiver, 1))
    await asyncio.sleep(1.0)
    assert len(receiver.requests) == 1
    # the event is not processed twice after the restart (inbox), and the sent group is not re-sent
    await publisher_bus.publisher.publish(alert_fired())
    await asyncio.sleep(1.0)
    assert len(receiver.requests) == 1


async def test_postgres_restart_between_send_and_record_does_not_send_twice(
    stack: Stack, receiver: Receiver, publisher_bus: Bus, db: Database, postgres: PostgresServer | None
) -> None:
    """The receiver has the notification, then PostgreSQL goes away before the notifier can record it: the
    outcome is recorded once the database is back, and the lease never expires into a second send."""
    if postgres is None:
        pytest.skip("needs the PostgreSQL started by the fixtures (OPSBUS_TEST_DATABASE_URL is set)")
    restarted = asyncio.Event()

    async def database_goes_away() -> None:
        receiver.before_answer = None
        await asyncio.to_thread(postgres.stop)

        async def back_later() -> None:
            await asyncio.sleep(2.0)
            await asyncio.to_thread(postgres.start)
            restarted.set()

        tasks.append(asyncio.create_task(back_later()))

    tasks: list[asyncio.Task[None]] = []
    receiver.before_answer = database_goes_away
    await stack.start(yaml_config(receiver.url(), group_wait="0s"), lease_seconds=6.0)
    await publisher_bus.publisher.publish(alert_fired())
    await wait_for(lambda: _count(receiver, 1), timeout=20)
    await asyncio.wait_for(restarted.wait(), timeout=60)
    await asyncio.gather(*tasks)

    async def recorded() -> bool:
        return [r.outcome for r in await delivery_log(db)] == ["delivered"]

    await wait_for(recorded, timeout=20)
    await asyncio.sleep(8.0)  # past the 6 s lease: a send left unrecorded would be repeated by now
    assert len(receiver.requests) == 1
    assert [r.outcome for r in await delivery_log(db)] == ["delivered"]


async def test_two_instances_deliver_once(stack: Stack, receiver: Receiver, publisher_bus: Bus, db: Database) -> None:
    config = yaml_config(receiver.url(), group_wait="1s")
    await stack.start(config)
    await stack.start(config)
    fired = alert_fired()
    await publisher_bus.publisher.publish(fired)
    second = fired.model_copy(update={"id": "0195b2f0-9e21-7c4b-8a11-aaaaaaaaaaaa"})  # same alert, redelivered
    await publisher_bus.publisher.publish(second)
    await wait_for(lambda: _count(receiver, 1))
    await asyncio.sleep(1.5)
    assert len(receiver.requests) == 1
    async with db.sessions() as session:
        assert (await session.execute(select(func.count()).select_from(store.notifications))).scalar_one() == 1


async def test_silenced_alert_is_not_delivered_and_the_audit_says_why(
    stack: Stack, receiver: Receiver, publisher_bus: Bus, db: Database
) -> None:
    await stack.start(yaml_config(receiver.url(), group_wait="0s"))
    silence = await call(
        publisher_bus.nc,
        "notifier",
        "create_silence",
        CreateSilenceRequest(
            matchers=['namespace="payments"', 'alertname=~"KubePod.*"'],
            duration_seconds=3600,
            created_by="alice",
            comment="checkout migration",
        ),
        SilenceView,
    )
    assert silence.state == "active"
    await publisher_bus.publisher.publish(alert_fired())

    async def suppressed() -> list[dict[str, Any]]:
        audits = await outbox_events(db, "io.opsbus.audit.recorded.v1")
        return [a for a in audits if a["data"]["action"] == "notify.suppress"]

    async def any_suppressed() -> bool:
        return bool(await suppressed())

    await wait_for(any_suppressed)
    await asyncio.sleep(0.5)
    assert receiver.requests == []
    [entry] = await suppressed()
    assert entry["data"]["outcome"] == "skipped"
    assert entry["data"]["reason"] == f"silenced by {silence.id} (alice: checkout migration)"
    assert any(
        a["data"]["action"] == "notify.silence.create" for a in await outbox_events(db, "io.opsbus.audit.recorded.v1")
    )


async def test_resolved_before_group_wait_is_never_sent(
    stack: Stack, receiver: Receiver, publisher_bus: Bus, db: Database
) -> None:
    await stack.start(yaml_config(receiver.url(), group_wait="2s"))
    events = example_events()
    await publisher_bus.publisher.publish(events[AlertFired.event_type])
    await publisher_bus.publisher.publish(events[AlertResolved.event_type])
    await asyncio.sleep(3.0)
    assert receiver.requests == []
    async with db.sessions() as session:
        assert (await session.execute(select(func.count()).select_from(store.groups))).scalar_one() == 0
