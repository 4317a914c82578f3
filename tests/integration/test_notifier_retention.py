"""The notifier's scheduled retention against real PostgreSQL: the running service deletes old delivery-log
rows, finished notifications, ended silences, abandoned groups and stale firing alerts, and keeps everything
recent or still in flight (a pending notification is never deleted, however old)."""

# ruff: noqa: F811 - the fixtures are imported from test_notifier_delivery and named as parameters

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Table, insert, select

from opsbus.common.store import Database
from opsbus.notifier import store
from tests.integration.test_notifier_delivery import (  # noqa: F401 - fixtures
    Receiver,
    Stack,
    db,
    receiver,
    stack,
    wait_for,
    yaml_config,
)

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=40)
RECENT = NOW - timedelta(hours=1)


def _log(n: str, at: datetime) -> dict[str, Any]:
    return {
        "notification_id": n,
        "integration": "webhook/0",
        "receiver": "team",
        "channel": "webhook",
        "attempt": 1,
        "outcome": "delivered",
        "latency_ms": 1.0,
        "at": at,
    }


def _notification(n: str, status: str, created: datetime, finished: datetime | None) -> dict[str, Any]:
    return {
        "notification_id": n,
        "integration": "webhook/0",
        "group_key": f"g-{n}",
        "seq": 1,
        "epoch": "e1",
        "receiver": "team",
        "channel": "webhook",
        "status": status,
        "attempts": 1,
        "next_attempt_at": NOW + timedelta(days=365),  # never due: the running service leaves it alone
        "body": {},
        "created_at": created,
        "finished_at": finished,
    }


def _group(key: str, updated: datetime) -> dict[str, Any]:
    return {
        "key": key,
        "route_id": "0",
        "receiver": "team",
        "labels": {},
        "options": {},
        "created_at": updated,
        "next_flush_at": NOW + timedelta(days=365),
        "seq": 1,
        "epoch": "e1",
        "log": None,
        "alerts": {},
        "updated_at": updated,
    }


def _silence(sid: str, ends: datetime) -> dict[str, Any]:
    return {
        "id": sid,
        "matchers": ['namespace="x"'],
        "starts_at": ends - timedelta(hours=1),
        "ends_at": ends,
        "created_by": "alice",
        "comment": "c",
        "created_at": ends,
        "updated_at": ends,
    }


async def _keys(db: Database, table: Table, column: str) -> set[str]:
    async with db.sessions() as session:
        return {str(v) for v in (await session.execute(select(table.c[column]))).scalars()}


async def test_the_running_service_purges_old_rows_and_keeps_recent_and_in_flight_ones(
    stack: Stack, receiver: Receiver, db: Database
) -> None:
    await stack.start(yaml_config(receiver.url()), retention_interval_seconds=0.2, stale_alert_retention_days=60)
    async with db.sessions.begin() as session:
        await session.execute(insert(store.delivery_log), [_log("old", OLD), _log("recent", RECENT)])
        await session.execute(
            insert(store.notifications),
            [
                _notification("old-delivered", "delivered", OLD, OLD),
                _notification("old-dead", "dead", OLD, OLD),
                _notification("old-pending", "pending", OLD, None),
                _notification("recent-delivered", "delivered", RECENT, RECENT),
            ],
        )
        await session.execute(insert(store.groups), [_group("old", OLD), _group("recent", RECENT)])
        await session.execute(insert(store.silences), [_silence("old", OLD), _silence("recent", RECENT)])
        await session.execute(
            insert(store.firing_alerts),
            [
                {"fingerprint": "forty-days", "labels": {}, "updated_at": OLD},
                {"fingerprint": "ninety-days", "labels": {}, "updated_at": NOW - timedelta(days=90)},
            ],
        )

    async def state() -> tuple[set[str], ...]:
        return (
            await _keys(db, store.delivery_log, "notification_id"),
            await _keys(db, store.notifications, "notification_id"),
            await _keys(db, store.groups, "key"),
            await _keys(db, store.silences, "id"),
            await _keys(db, store.firing_alerts, "fingerprint"),
        )

    # firing alerts have their own, longer bound (60 days here): 40 days unseen still inhibits
    expected = ({"recent"}, {"old-pending", "recent-delivered"}, {"recent"}, {"recent"}, {"forty-days"})

    async def purged() -> bool:  # a run may have been under way while the rows were inserted: wait for all
        return await state() == expected

    await wait_for(purged, timeout=20)
    await asyncio.sleep(0.5)  # a few more runs: what is kept stays
    assert await state() == expected
