"""A batch of fired alerts is taken in by one PostgreSQL transaction, and a failed batch loses nothing.

The healer's executor against a real PostgreSQL, with an injected clock (the fixtures of
`test_healer_deferrals`; the cluster port records writes). What is proven is what the healer stores: which
alerts became which recoveries, with which transitions and audit entries, that every row of a batch was
written by the same transaction (PostgreSQL's `xmin`), and that a batch whose transaction fails leaves
nothing behind and is stored once when redelivered.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest

from opsbus.common.events import Envelope, ObjectRef
from opsbus.common.events.payloads import AlertAnnotations, AlertFired, AlertSource, Severity
from opsbus.healer.domain.planning import FreezeWindow, Guards
from opsbus.healer.executing import Executor
from tests.integration.test_healer_deferrals import (
    CLUSTER,
    NS,
    T0,
    Clock,
    Make,
    RecordedCluster,
    fired,
    lifeline,
    make,
    outbox,
    rows,
    status,
)

pytestmark = pytest.mark.integration
__all__ = ["make"]  # the fixture, shared with the deferral tests
FREEZE_END = T0 + timedelta(minutes=2)
FREEZE = Guards(freeze_windows=(FreezeWindow("change-freeze", start=T0 - timedelta(hours=1), end=FREEZE_END),))


def unmatched(pod: str) -> Envelope:
    a = AlertFired(
        fingerprint=uuid.uuid4().hex[:16],
        alertname="KubeDiskAlmostFull",
        severity=Severity.WARNING,
        labels={"alertname": "KubeDiskAlmostFull", "namespace": NS, "pod": pod},
        annotations=AlertAnnotations(summary="disk"),
        starts_at=T0,
        source=AlertSource.WATCHER,
    )
    return Envelope.build(a, service="watcher", cluster=CLUSTER, obj=ObjectRef(kind="Pod", namespace=NS, name=pod))


async def audit(ex: Executor, action: str) -> list[dict[str, Any]]:
    entries = await outbox(ex, "io.opsbus.audit.recorded.v1")
    return [e for e in entries if e["data"]["action"] == action]


async def test_one_batch_is_one_transaction_joined_closed_and_deferred_at_intake(make: Make) -> None:
    clock, kube = Clock(), RecordedCluster()
    ex = await make(clock, kube, guards=FREEZE)
    other = unmatched("db-0")
    stale = fired("cache-1", workload="cache").model_copy(update={"time": T0 - timedelta(hours=1)})
    lead, *members = (fired(f"api-{i}", workload="api") for i in range(3))

    await ex.intake.take_in([other, stale, lead, *members])

    # every row of the batch, in every table, was written by one transaction
    xmins = set()
    for table in ("alerts", "recoveries", "transitions", "attempts", "opsbus_outbox"):
        xmins |= {r["x"] for r in await rows(ex, f"select xmin::text as x from healer.{table}")}
    assert len(xmins) == 1

    # no policy: audited, no recovery
    (nomatch,) = await audit(ex, "recovery.match")
    assert nomatch["causationid"] == other.id and "no remediation policy matches" in nomatch["data"]["reason"]
    assert not await rows(ex, f"select 1 from healer.recoveries where alert_event_id = '{other.id}'")
    # stale: closed, a reasoned no-op, a skipped attempt
    assert await status(ex, stale) == "closed" and await lifeline(ex, stale) == ["plan", "skip"]
    (noop,) = await audit(ex, "recovery.plan")
    assert noop["causationid"] == stale.id and "freshness bound" in noop["data"]["reason"]
    (skipped,) = await rows(ex, "select status, message from healer.attempts")
    assert skipped["status"] == "skipped"
    # one incident of `api`: its lead deferred by the freeze window until the window ends, its members joined
    (deferred,) = await rows(
        ex, f"select id, due_at, deferred_by from healer.recoveries where alert_event_id = '{lead.id}'"
    )
    assert deferred["deferred_by"] == "freeze_window" and deferred["due_at"] == FREEZE_END
    assert await lifeline(ex, lead) == ["plan", "defer"]
    (defer,) = await audit(ex, "recovery.defer")
    assert defer["causationid"] == lead.id and "change-freeze" in defer["data"]["reason"]
    for m in members:
        assert await status(ex, m) == "deferred" and await lifeline(ex, m) == ["join"]
        (row,) = await rows(
            ex, f"select incident_id, deferred_by from healer.recoveries where alert_event_id = '{m.id}'"
        )
        assert (row["incident_id"], row["deferred_by"]) == (deferred["id"], "incident")
    assert len(await audit(ex, "recovery.group")) == 2
    assert kube.restarts == []

    # the freeze ends: the lead is planned again with every guard and acts once for the whole incident
    clock.now = FREEZE_END
    assert await ex.wake_deferred() == [deferred["id"]]
    for _ in range(200):
        if await status(ex, lead) == "resolved":
            break
        await asyncio.sleep(0.05)
    assert kube.restarts == ["api"]


async def test_a_failed_batch_stores_nothing_and_its_redelivery_is_stored_once(make: Make) -> None:
    clock, kube = Clock(), RecordedCluster()
    ex = await make(clock, kube, guards=FREEZE)
    batch = [fired(f"web-{i}", workload=f"web-{i}") for i in range(3)] + [unmatched("db-1")]
    async with ex.db.engine.begin() as conn:
        await conn.exec_driver_sql(
            "create function healer.refuse() returns trigger language plpgsql as "
            "$$ begin raise exception 'outbox refused (test)'; end $$"
        )
        await conn.exec_driver_sql(
            "create trigger refuse before insert on healer.opsbus_outbox for each row execute function healer.refuse()"
        )

    outcomes = await asyncio.gather(*(ex.on_alert_fired(e) for e in batch), return_exceptions=True)

    assert all(isinstance(o, Exception) and "outbox refused" in str(o) for o in outcomes), outcomes
    for table in ("alerts", "recoveries", "transitions", "opsbus_outbox"):
        assert not await rows(ex, f"select 1 from healer.{table}"), table

    async with ex.db.engine.begin() as conn:
        await conn.exec_driver_sql("drop trigger refuse on healer.opsbus_outbox")
    for _ in range(2):  # redelivered, then redelivered again (an ack lost): stored once
        await asyncio.gather(*(ex.on_alert_fired(e) for e in batch))
    assert len(await rows(ex, "select 1 from healer.alerts")) == 4
    assert [r["deferred_by"] for r in await rows(ex, "select deferred_by from healer.recoveries")] == [
        "freeze_window"
    ] * 3
    assert len(await audit(ex, "recovery.defer")) == 3
    assert len(await audit(ex, "recovery.match")) == 1
    assert len(await rows(ex, "select 1 from healer.transitions")) == 6
