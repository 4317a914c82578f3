"""Deferral, never a drop: the healer's executor against a real PostgreSQL, with an injected clock.

The cluster is the one port replaced here (a recorder of the writes the healer makes, with a fixed snapshot):
what is proven is what the healer stores, decides and announces (recoveries, their transitions, the outbox's
events and audit entries), across executors that stand for replicas and restarts. The same scenarios against
the sandbox apiserver through the service wiring are in tests/cluster/test_healer_deferred.py.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from opsbus.common.events import Envelope, ObjectRef
from opsbus.common.events.payloads import (
    AlertAnnotations,
    AlertFired,
    AlertResolved,
    AlertSource,
    ResourceRef,
    Severity,
    WorkloadRef,
)
from opsbus.common.settings import DatabaseSettings
from opsbus.common.store import Database, upgrade
from opsbus.healer.cluster import KubeCluster
from opsbus.healer.domain.planning import AlertState, Guards, Snapshot
from opsbus.healer.executing import Executor
from opsbus.healer.store import MIGRATIONS, SCHEMA

pytestmark = pytest.mark.integration
CLUSTER = "it"
NS = "shop"
T0 = datetime.now(UTC).replace(microsecond=0)
POLICIES = """
policies:
  - name: restart
    match: {alertname: KubePodCrashLooping}
    cooldown: 30s
    escalate_after: {bound}
    ladder:
      - {action: rollout_restart, verify: none, timeout: 5s}
"""


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class RecordedCluster(KubeCluster):
    """The cluster port: every workload looks healthy enough to act on; restarts are recorded, in order."""

    def __init__(self) -> None:
        self.restarts: list[str] = []

    async def snapshot(self, target: ResourceRef, alert: AlertState) -> Snapshot:
        return Snapshot(target=target, resource_version="1", workload_pods_total=3)

    async def rollout_restart(self, ns: str, name: str, rv: str | None, now: datetime) -> None:
        self.restarts.append(name)

    def close(self) -> None:
        pass


Make = Callable[..., Awaitable[Executor]]


@pytest.fixture
async def make(database_url: str) -> AsyncIterator[Make]:
    await upgrade(DatabaseSettings.model_validate({"url": database_url}), MIGRATIONS, SCHEMA)
    made: list[tuple[Executor, Database]] = []

    async def build(
        clock: Clock, cluster: RecordedCluster, *, bound: str = "5m", guards: Guards | None = None
    ) -> Executor:
        db = Database.from_settings(
            DatabaseSettings.model_validate({"url": database_url}), application_name=f"healer-{len(made)}"
        )
        ex = Executor(
            db=db,
            cluster=cluster,
            guards=guards or Guards(),
            cluster_name=CLUSTER,
            clock=clock,
            owner=f"replica-{len(made)}",
        )
        await ex.load_policies(POLICIES.replace("{bound}", bound), author="test")
        made.append((ex, db))
        return ex

    yield build
    for ex, db in made:
        await ex.close()
        await db.close()


def fired(pod: str, workload: str = "web", severity: Severity = Severity.CRITICAL) -> Envelope:
    a = AlertFired(
        fingerprint=uuid.uuid4().hex[:16],
        alertname="KubePodCrashLooping",
        severity=severity,
        labels={"alertname": "KubePodCrashLooping", "namespace": NS, "pod": pod, "severity": severity.value},
        annotations=AlertAnnotations(summary="crash loop"),
        starts_at=T0 - timedelta(seconds=30),
        source=AlertSource.WATCHER,
        workload=WorkloadRef(kind="Deployment", namespace=NS, name=workload),
    )
    return Envelope.build(a, service="watcher", cluster=CLUSTER, obj=ObjectRef(kind="Pod", namespace=NS, name=pod))


def resolved(event: Envelope) -> Envelope:
    a = event.payload_as(AlertFired)
    r = AlertResolved(**a.model_dump(exclude={"ends_at"}), ends_at=T0, resolution="ok")
    return Envelope.build(r, service="watcher", cluster=CLUSTER, obj=event.object)


async def rows(ex: Executor, sql: str) -> list[dict[str, Any]]:
    async with ex.db.engine.connect() as conn:
        return [dict(r._mapping) for r in await conn.execute(text(sql))]


async def settle(ex: Executor, sql: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Wait for the background walks: until `sql` returns rows."""
    deadline = time.monotonic() + timeout
    while not (found := await rows(ex, sql)):
        assert time.monotonic() < deadline, f"nothing for: {sql}"
        await asyncio.sleep(0.05)
    return found


async def status(ex: Executor, event: Envelope) -> str:
    (row,) = await rows(ex, f"select status from healer.recoveries where alert_event_id = '{event.id}'")
    return str(row["status"])


async def lifeline(ex: Executor, event: Envelope) -> list[str]:
    moves = await rows(
        ex,
        "select t.transition from healer.transitions t join healer.recoveries r on r.id = t.recovery_id "
        f"where r.alert_event_id = '{event.id}' order by t.id",
    )
    return [m["transition"] for m in moves]


async def outbox(ex: Executor, event_type: str) -> list[dict[str, Any]]:
    found = await rows(ex, f"select body from healer.opsbus_outbox where event_type = '{event_type}' order by id")
    return [json.loads(bytes(r["body"])) for r in found]


async def second_pod_deferred(ex: Executor) -> tuple[Envelope, Envelope]:
    """Two pods of `web` crash: the first alert restarts it, the second (0 s later) meets the cooldown."""
    first, second = fired("web-1"), fired("web-2")
    await ex.on_alert_fired(first)
    await settle(ex, "select 1 from healer.recoveries where status = 'resolved'")
    await ex.on_alert_fired(second)
    await settle(ex, "select 1 from healer.recoveries where status = 'deferred'")
    return first, second


async def test_a_cooldown_defers_the_second_pod_and_it_is_acted_on_when_due(make: Make) -> None:
    clock, kube = Clock(), RecordedCluster()
    ex = await make(clock, kube)
    first, second = fired("web-1"), fired("web-2")
    await ex.on_alert_fired(first)
    await settle(ex, "select 1 from healer.recoveries where status = 'resolved'")
    await ex.on_alert_fired(second)  # same workload, 0 s later: the cooldown says "not now"
    await settle(ex, "select 1 from healer.recoveries where status = 'deferred'")
    assert kube.restarts == ["web"]
    (deferred,) = await rows(ex, "select due_at, deferred_by from healer.recoveries where status = 'deferred'")
    assert deferred["deferred_by"] == "cooldown" and deferred["due_at"] == T0 + timedelta(seconds=30)
    audit = [a for a in await outbox(ex, "io.opsbus.audit.recorded.v1") if a["data"]["action"] == "recovery.defer"]
    assert len(audit) == 1 and audit[0]["data"]["outcome"] == "skipped"
    assert "deferred until" in audit[0]["data"]["reason"] and "cooldown" in audit[0]["data"]["reason"]

    assert await ex.wake_deferred() == []  # not due yet
    clock.now = T0 + timedelta(seconds=30)
    (rid,) = await ex.wake_deferred()
    await settle(ex, f"select 1 from healer.recoveries where id = '{rid}' and status = 'resolved'")
    assert kube.restarts == ["web", "web"]  # the deferred pod was not forgotten
    assert await lifeline(ex, second) == ["plan", "defer", "due", "apply", "verify"]
    assert await lifeline(ex, first) == ["plan", "apply", "verify"]
    queue = await ex.deferral_queue()
    assert (queue.depth, queue.oldest_seconds) == (0, 0.0)


async def test_a_deferral_longer_than_the_freshness_bound_is_still_acted_on_when_due(make: Make) -> None:
    """A 20-minute cooldown outlasts the 15-minute freshness bound: the deferred alert, still firing, is acted on
    when due; it is not closed as a stale no-op (the cooldown would have become a silent drop)."""
    clock, kube = Clock(), RecordedCluster()
    ex = await make(clock, kube, bound="1h")
    await ex.load_policies(POLICIES.replace("{bound}", "1h").replace("cooldown: 30s", "cooldown: 20m"), author="test")
    first, second = fired("web-1"), fired("web-2")
    await ex.on_alert_fired(first)
    await settle(ex, "select 1 from healer.recoveries where status = 'resolved'")
    await ex.on_alert_fired(second)
    await settle(ex, "select 1 from healer.recoveries where status = 'deferred'")

    clock.now = T0 + timedelta(minutes=20)  # the alert is now older than the 900 s freshness bound
    (rid,) = await ex.wake_deferred()
    await settle(ex, f"select 1 from healer.recoveries where id = '{rid}' and status in ('resolved', 'closed')")
    assert await lifeline(ex, second) == ["plan", "defer", "due", "apply", "verify"]
    assert kube.restarts == ["web", "web"]


async def test_an_alert_resolving_while_deferred_is_closed_with_a_reason_and_no_action(make: Make) -> None:
    clock, kube = Clock(), RecordedCluster()
    ex = await make(clock, kube)
    _, second = await second_pod_deferred(ex)
    clock.now = T0 + timedelta(seconds=5)
    assert (await ex.deferral_queue()).depth == 1 and (await ex.deferral_queue()).oldest_seconds == 5.0

    await ex.on_alert_resolved(resolved(second))
    assert await ex.wake_deferred() == []  # closed before its due time, not planned
    assert await status(ex, second) == "closed"
    assert await lifeline(ex, second) == ["plan", "defer", "clear"]
    clock.now = T0 + timedelta(minutes=10)
    assert await ex.wake_deferred() == []
    assert kube.restarts == ["web"]
    reasons = [a["data"]["reason"] for a in await outbox(ex, "io.opsbus.audit.recorded.v1")]
    assert any("resolved while deferred" in r and "nothing done" in r for r in reasons), reasons
    assert not await outbox(ex, "io.opsbus.recovery.escalated.v1")


async def test_still_deferred_past_the_bound_escalates_exactly_once_with_its_history(make: Make) -> None:
    clock, kube = Clock(), RecordedCluster()
    ex = await make(clock, kube, bound="20s")  # the cooldown (30 s) outlasts the bound
    _, second = await second_pod_deferred(ex)

    clock.now = T0 + timedelta(seconds=20)
    assert await ex.wake_deferred() == []  # escalated, not planned
    assert await status(ex, second) == "escalated"
    for _ in range(3):  # later rounds, another replica: nothing more
        clock.now += timedelta(minutes=1)
        assert await ex.wake_deferred() == []
    (escalated,) = await outbox(ex, "io.opsbus.recovery.escalated.v1")
    data = escalated["data"]
    assert data["alert_fingerprint"] == second.payload_as(AlertFired).fingerprint
    assert "not acted on within 20s" in data["reason"] and "cooldown" in data["reason"]
    assert "history: 3 transitions" in data["reason"], data["reason"]
    assert await lifeline(ex, second) == ["plan", "defer", "overdue"]
    assert kube.restarts == ["web"]


async def test_a_deferral_due_while_the_healer_is_down_is_carried_out_by_one_replica_after_restart(
    make: Make,
) -> None:
    clock, kube = Clock(), RecordedCluster()
    dead = await make(clock, kube)
    _, second = await second_pod_deferred(dead)
    await dead.close()  # the replica is gone; its deferral is a row, not a sleeping task

    clock.now = T0 + timedelta(minutes=2)  # due long ago (30 s), within the 5 min bound
    a, b = await make(clock, kube), await make(clock, kube)  # two replicas start together
    woken = await asyncio.gather(a.wake_deferred(), b.wake_deferred(), a.wake_deferred(), b.wake_deferred())
    assert sorted(len(w) for w in woken) == [0, 0, 0, 1]  # one replica took it
    await settle(a, "select 1 from healer.recoveries where status = 'resolved' having count(*) = 2")
    assert kube.restarts == ["web", "web"]  # carried out once
    assert await lifeline(a, second) == ["plan", "defer", "due", "apply", "verify"]


async def test_a_rate_limited_storm_is_woken_in_order_of_severity_and_nothing_is_dropped(make: Make) -> None:
    clock, kube = Clock(), RecordedCluster()
    ex = await make(clock, kube, guards=Guards(rate_limit_actions=1, rate_limit_window=60))
    await ex.on_alert_fired(fired("a-1", "a"))
    await settle(ex, "select 1 from healer.recoveries where status = 'resolved'")
    storm = [
        fired("b-1", "b", Severity.INFO),
        fired("c-1", "c", Severity.WARNING),
        fired("d-1", "d", Severity.CRITICAL),
        fired("e-1", "e", Severity.WARNING),
    ]
    for event in storm:
        await ex.on_alert_fired(event)
    # the walks that deferred have ended (a lease still being released locks the row: skipped for a round)
    await settle(
        ex, "select 1 from healer.recoveries where status = 'deferred' and lease_owner is null having count(*) = 4"
    )
    order: list[str] = []
    for minute in range(1, 6):  # one action a window (60 s, inclusive): the limit works through the queue
        clock.now = T0 + timedelta(seconds=61 * minute)
        for rid in await ex.wake_deferred():  # each walk ends (acted and verified, or deferred again) first
            await settle(
                ex,
                f"select 1 from healer.recoveries where id = '{rid}' and status not in ('acting', 'verifying') "
                "and lease_owner is null",
            )
        order = kube.restarts[1:]
        if len(order) == len(storm):
            break
    assert order == ["d", "c", "e", "b"]  # critical, then warnings (oldest first), then info
    assert kube.restarts[0] == "a"
    finals = await rows(ex, "select status from healer.recoveries")
    assert sorted(r["status"] for r in finals) == ["resolved"] * 5


async def test_the_healer_migrations_build_what_its_models_describe(make: Make) -> None:
    """Autogenerate finds nothing to do at head (0002: lifecycle states, due times, transitions)."""
    from alembic.autogenerate import compare_metadata  # noqa: PLC0415
    from alembic.runtime.migration import MigrationContext  # noqa: PLC0415
    from sqlalchemy.engine import Connection  # noqa: PLC0415

    from opsbus.healer.store import Base  # noqa: PLC0415

    ex = await make(Clock(), RecordedCluster())

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

    async with ex.db.engine.connect() as conn:
        assert await conn.run_sync(diff) == []
