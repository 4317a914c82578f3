"""The analyzer takes changes in batches (one transaction per batch), against a real NATS and PostgreSQL.

A burst of changes waiting on the stream when a replica starts is taken in together: every change reaches the
timeline once, and the open incident of their namespace is diagnosed again once for the lot, its revision caused
by the change the new top cause rests on (not by whichever came last). A change the timeline cannot hold fails
alone: it goes to the DLQ with the reason, and the rest of its batch is recorded.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from opsbus.analyzer import store
from opsbus.common.bus import Bus
from opsbus.common.bus.consuming import DLQ_REASON
from opsbus.common.events import Envelope
from opsbus.common.events.payloads import ChangeKind, ChangeOrigin, ChangeRecorded, DiagnosisRevised, WorkloadRef
from opsbus.common.events.payloads.diagnosis import CauseKind, DiagnosisOutcome
from opsbus.common.settings import DatabaseSettings
from opsbus.common.store import Database
from tests.integration.analyzer_stack import (
    CLUSTER,
    NS,
    AnalyzerStack,
    alert_event,
    bus,
    change_event,
    last_event,
    stack,
    wait_recorded,
)

pytestmark = pytest.mark.integration
__all__ = ["bus", "stack"]  # fixtures shared through analyzer_stack


def replica_change(at: datetime, i: int, *, summary: str | None = None) -> Envelope:
    """A replica change of another workload of the namespace: on the timeline, never a cause of web's crash."""
    w = WorkloadRef(kind="Deployment", namespace=NS, name=f"worker-{i}")
    payload = ChangeRecorded(
        kinds=(ChangeKind.REPLICAS,),
        object=w.as_resource_ref(),
        workload=w,
        summary=summary or f"replicas 2 -> 3 of worker-{i}",
        origin=ChangeOrigin.OBSERVED,
        observed_at=at,
    )
    return Envelope.build(payload, service="watcher", cluster=CLUSTER, obj=w.as_object_ref(), time=at)


async def _count(stack: AnalyzerStack, table: str, ids: list[str]) -> int:
    db = Database.from_settings(DatabaseSettings.model_validate({"url": stack.database_url}))
    t = store.timeline if table == "timeline" else store.TABLES.inbox
    try:
        async with db.sessions() as s:
            return int((await s.execute(select(func.count()).where(t.c.event_id.in_(ids)))).scalar_one())
    finally:
        await db.close()


async def test_a_burst_is_taken_in_together_and_revises_the_incident_once(stack: AnalyzerStack, bus: Bus) -> None:
    await stack.start()
    now = datetime.now(UTC)
    alert = alert_event(now, reason="CrashLoopBackOff")
    await bus.publisher.publish(alert)
    made = await last_event(bus, "DIAGNOSIS", f"diagnosis.made.{CLUSTER}.{NS}")
    assert made.correlationid == alert.id
    await stack.stop_all()

    # While no replica runs, 150 changes arrive; one of them (the 40th) is the env change that explains the crash.
    burst = [replica_change(now - timedelta(seconds=60), i) for i in range(150)]
    cause = change_event(now - timedelta(seconds=30), kinds=(ChangeKind.ENV,))
    burst.insert(40, cause)
    for e in burst:
        await bus.publisher.publish(e)
    await stack.start()
    await wait_recorded(stack, *burst, timeout=30)
    ids = [e.id for e in burst]
    assert await _count(stack, "timeline", ids) == len(burst)
    assert await _count(stack, "inbox", ids) == len(burst)  # each claimed once

    revised_event = await last_event(bus, "DIAGNOSIS", f"diagnosis.revised.{CLUSTER}.{NS}")
    revised = revised_event.payload_as(DiagnosisRevised)
    assert revised.revision == 2 and revised.outcome is DiagnosisOutcome.EXPLAINED
    assert revised.causes[0].kind is CauseKind.ROLLOUT and revised.causes[0].evidence[0].ref == cause.id
    assert revised_event.causationid == cause.id and revised_event.correlationid == alert.id
    assert cause.id in revised.reason and "changes taken in together" in revised.reason, revised.reason
    await asyncio.sleep(1.0)  # the later batches change nothing in the ranking: no other revision
    again = await last_event(bus, "DIAGNOSIS", f"diagnosis.revised.{CLUSTER}.{NS}")
    assert again.id == revised_event.id


async def test_a_change_the_timeline_cannot_hold_fails_alone(stack: AnalyzerStack, bus: Bus) -> None:
    now = datetime.now(UTC)
    good = [replica_change(now - timedelta(seconds=5), i) for i in range(30)]
    # a NUL character (valid JSON, a valid event) that PostgreSQL's jsonb refuses to store
    bad = replica_change(now - timedelta(seconds=5), 99, summary="replicas 2 -> 3 of worker-99\x00")
    batch = [*good[:15], bad, *good[15:]]
    for e in batch:
        await bus.publisher.publish(e)
    await stack.start()  # the 31 changes are waiting: they are fetched and handed in together
    await wait_recorded(stack, *good, timeout=30)
    subject = f"dlq.change.recorded.{CLUSTER}.{NS}"
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        try:
            dead = await bus.js.get_last_msg("DLQ", subject)
            break
        except Exception:
            assert asyncio.get_running_loop().time() < deadline, "the bad change never reached the DLQ"
            await asyncio.sleep(0.1)
    assert dead.headers is not None and "the timeline refused it (22" in dead.headers[DLQ_REASON], dead.headers
    assert await _count(stack, "timeline", [bad.id]) == 0
