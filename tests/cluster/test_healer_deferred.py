"""Deferrals against the sandbox apiserver, real NATS JetStream and PostgreSQL: the healer through its wiring.

The test plays the watcher (it publishes the alerts) and reads what the healer published, stored and changed in
the cluster. A deferral lives in PostgreSQL, not in a replica: one that comes due while no healer runs is carried
out after the restart, once, by one of two replicas; an alert that resolves while deferred is closed with the
reason and nothing is done to the cluster; a storm held back by the cluster-wide rate limit is worked through in
order of severity, and every alert of it is acted on.

The "not now" is a freeze window ending a few seconds after the alert (the same deferral as a cooldown or an
attempt budget, with a due time the test controls), and for the storm a rate limit of one action per window.
"""

# ruff: noqa: F401, F811 - `start_healer` is the fixture imported from the shared healer harness below

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from opsbus.common.bus import Bus
from opsbus.common.events import Envelope, ObjectRef
from opsbus.common.events.payloads import AlertFired, AlertResolved, Severity
from opsbus.healer.cluster import RESTARTED_AT
from tests.cluster.kube import Cluster
from tests.cluster.test_healer_failover import rows, until
from tests.cluster.test_healer_remediation import StartHealer, alert, envelope, start_healer, stream, types

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]
MakeBus = Callable[..., Awaitable[Bus]]
POLICIES = """
policies:
  - name: restart
    match: {alertname: RolloutStuck}
    cooldown: 0s
    ladder:
      - {action: rollout_restart, verify: none, timeout: 30s}
"""


def frozen_for(seconds: float) -> dict[str, Any]:
    """Healer options with a freeze window that began a minute ago and ends `seconds` from now."""
    now = datetime.now(UTC)
    end = now + timedelta(seconds=seconds)
    return {
        "freeze_windows": [
            {"name": "release", "start": (now - timedelta(minutes=1)).isoformat(), "end": end.isoformat()}
        ]
    }


def stuck(cluster: Cluster, app: str, severity: Severity = Severity.CRITICAL) -> tuple[AlertFired, Envelope]:
    fired = alert("RolloutStuck", cluster.namespace, workload=app)
    fired = fired.model_copy(update={"severity": severity, "labels": {**fired.labels, "severity": severity.value}})
    return fired, envelope(fired, ObjectRef(kind="Deployment", namespace=cluster.namespace, name=app))


def restarts(cluster: Cluster, app: str) -> int:
    """How many times the healer changed the Deployment's template (its generation past the first)."""
    return int(cluster.deployment(app).metadata.generation) - 1


async def deferred(database_url: str, event: Envelope) -> Any:
    found = await until(
        "the recovery deferred",
        lambda: rows(
            database_url,
            f"select id, due_at, deferred_by from healer.recoveries where alert_event_id = '{event.id}' "
            "and status = 'deferred'",
        ),
        30,
    )
    return found[0]


async def lifeline(database_url: str, rid: str) -> list[str]:
    moves = await rows(
        database_url, f"select transition from healer.transitions where recovery_id = '{rid}' order by id"
    )
    return [m["transition"] for m in moves]


async def test_a_deferral_due_while_the_healer_is_stopped_is_carried_out_after_restart_by_one_replica(
    cluster: Cluster, start_healer: StartHealer, make_bus: MakeBus, database_url: str
) -> None:
    cluster.create_deployment("web", replicas=1)
    first = await start_healer(policies=POLICIES, options=frozen_for(12))
    bus = await make_bus("watcher")
    _, event = stuck(cluster, "web")
    await bus.publisher.publish(event)
    row = await deferred(database_url, event)
    assert row["deferred_by"] == "freeze_window"

    first.request_shutdown()  # the only healer stops (its scheduler with it); the deferral comes due while none runs
    wait = (row["due_at"] - datetime.now(UTC)).total_seconds() + 1
    await asyncio.sleep(max(wait, 0))
    assert restarts(cluster, "web") == 0

    # Two replicas come up together: both schedulers see the due row, one carries it out.
    await asyncio.gather(*(start_healer(policies=POLICIES) for _ in range(2)))
    await until("the restart", lambda: asyncio.to_thread(restarts, cluster, "web"), 30)
    await asyncio.sleep(3)  # time for a second replica to (wrongly) act too
    assert restarts(cluster, "web") == 1
    assert RESTARTED_AT in (cluster.deployment("web").spec.template.metadata.annotations or {})
    assert await lifeline(database_url, row["id"]) == ["plan", "defer", "due", "apply", "verify"]
    attempts = await rows(database_url, f"select status from healer.attempts where recovery_id = '{row['id']}'")
    assert [a["status"] for a in attempts] == ["succeeded"]
    recovery = await stream(bus, "recovery.>")
    assert types(recovery, row["id"]) == ["planned", "started", "succeeded"]


async def test_an_alert_resolving_while_deferred_is_closed_with_a_reason_and_no_action(
    cluster: Cluster, start_healer: StartHealer, make_bus: MakeBus, database_url: str
) -> None:
    cluster.create_deployment("api", replicas=1)
    await start_healer(policies=POLICIES, options=frozen_for(60))
    bus = await make_bus("watcher")
    fired, event = stuck(cluster, "api")
    await bus.publisher.publish(event)
    row = await deferred(database_url, event)

    resolved = AlertResolved(**fired.model_dump(exclude={"ends_at"}), ends_at=datetime.now(UTC), resolution="ok")
    await bus.publisher.publish(envelope(resolved, event.object))
    await until(
        "the deferral closed",
        lambda: rows(database_url, f"select 1 from healer.recoveries where id = '{row['id']}' and status = 'closed'"),
        30,
    )
    assert await lifeline(database_url, row["id"]) == ["plan", "defer", "clear"]
    audit = [e.data for e in await stream(bus, "audit.recorded.>") if e.data["details"].get("recovery_id") == row["id"]]
    assert [(a["action"], a["outcome"]) for a in audit] == [("recovery.defer", "skipped")] * 2
    assert "the alert resolved while deferred by freeze_window: closed, nothing done" in audit[-1]["reason"]
    assert types(await stream(bus, "recovery.>"), row["id"]) == []  # nothing planned, started or escalated
    assert restarts(cluster, "api") == 0


async def test_a_rate_limited_storm_is_worked_through_in_severity_order_with_nothing_dropped(
    cluster: Cluster, start_healer: StartHealer, make_bus: MakeBus
) -> None:
    severities = [Severity.INFO, Severity.CRITICAL, Severity.WARNING, Severity.CRITICAL, Severity.INFO]
    apps = [f"s{i}" for i in range(len(severities))]
    for app in ["primer", *apps]:
        cluster.create_deployment(app, replicas=1)
    await start_healer(policies=POLICIES, options={"rate_limit_actions": 1, "rate_limit_window_seconds": 4})
    bus = await make_bus("watcher")
    # One action fills the window; the storm that follows meets the rate limit at once (deferred at intake).
    _, primer = stuck(cluster, "primer")
    await bus.publisher.publish(primer)
    await until("the primer's restart", lambda: asyncio.to_thread(restarts, cluster, "primer"), 30)
    storm = [stuck(cluster, app, sev)[1] for app, sev in zip(apps, severities, strict=True)]
    for event in storm:
        await bus.publisher.publish(event)

    started = time.monotonic()
    events = await wait_for_started(bus, len(apps) + 1, 120)
    order = [e.data["action"]["target"]["name"] for e in events if e.type.endswith("started.v1")]
    assert order[0] == "primer"
    assert sorted(order[1:]) == apps, order  # every alert of the storm acted on, once
    ranks = [[Severity.CRITICAL, Severity.WARNING, Severity.INFO].index(severities[apps.index(a)]) for a in order[1:]]
    assert ranks == sorted(ranks), (order, time.monotonic() - started)  # critical first, then warning, then info
    assert all(restarts(cluster, app) == 1 for app in apps)  # nothing dropped, nothing done twice
    audit = await stream(bus, "audit.recorded.>")
    deferrals = {e.data["target"]["name"] for e in audit if e.data["action"] == "recovery.defer"}
    assert deferrals == set(apps)  # each was deferred (rate limit), none skipped


async def wait_for_started(bus: Bus, count: int, timeout: float) -> list[Envelope]:
    deadline = time.monotonic() + timeout
    while True:
        events = await stream(bus, "recovery.>")
        if sum(e.type.endswith("started.v1") for e in events) >= count:
            return events
        assert time.monotonic() < deadline, f"only {types(events)} within {timeout}s"
        await asyncio.sleep(0.5)
