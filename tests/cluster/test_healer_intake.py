"""The healer's intake does not wait for verifications: with ONE alert taken in at a time, a second alert's action
is applied while the first recovery is still waiting for its alert to resolve. Before, the alert consumer's slot was
held for the whole ladder, so under a wave of faults each new action queued behind earlier verifications (the MTTR
benchmark showed it: alert -> action p50 1.7 s -> 5 s as the machine got busier). Sandbox, real NATS JetStream,
real PostgreSQL, the real healer service.
"""

# ruff: noqa: F401, F811 - `start_healer` is the fixture imported from the shared healer harness below

from __future__ import annotations

import asyncio

import pytest

from opsbus.common.bus import Bus
from opsbus.healer.cluster import RESTARTED_AT
from tests.cluster.kube import Cluster, wait_until
from tests.cluster.test_healer_failover import POLICIES, MakeBus, deployed, resolve, rows, stuck, until
from tests.cluster.test_healer_remediation import StartHealer, start_healer, types, wait_for_events

pytestmark = pytest.mark.cluster


def restarted(cluster: Cluster, app: str) -> bool | None:
    return RESTARTED_AT in (cluster.deployment(app).spec.template.metadata.annotations or {}) or None


async def test_a_second_alert_is_acted_on_while_the_first_recovery_is_still_verifying(
    cluster: Cluster, start_healer: StartHealer, make_bus: MakeBus, database_url: str
) -> None:
    await deployed(cluster, "one")
    await deployed(cluster, "two")
    await start_healer(policies=POLICIES, options={"alert_concurrency": 1})
    bus: Bus = await make_bus("watcher")
    first, first_event = stuck(cluster, "one")
    second, second_event = stuck(cluster, "two")

    await bus.publisher.publish(first_event)
    await asyncio.to_thread(wait_until, "the first restart applied", lambda: restarted(cluster, "one"), 60)
    # The first recovery now waits (up to 180 s) for its alert to resolve; the second alert is not held back.
    await bus.publisher.publish(second_event)
    await asyncio.to_thread(wait_until, "the second restart applied", lambda: restarted(cluster, "two"), 60)
    await until(  # both verifying, neither finished
        "both recoveries verifying",
        lambda: rows(
            database_url, "select 1 from healer.recoveries having count(*) filter (where status = 'verifying') = 2"
        ),
        10,
    )
    attempts = await rows(database_url, "select status from healer.attempts")
    assert [r["status"] for r in attempts] == ["started", "started"]

    await resolve(bus, cluster, first, "one")
    await resolve(bus, cluster, second, "two")
    recovery = await wait_for_events(bus, "recovery.>", lambda es: types(es).count("succeeded") == 2, 60)
    assert sorted(types(recovery)) == sorted(["planned", "started", "succeeded"] * 2)
    await until(
        "both recoveries succeeded and their leases released",
        lambda: rows(
            database_url,
            "select 1 from healer.recoveries having count(*) filter "
            "(where status = 'resolved' and lease_owner is null) = 2",
        ),
        30,
    )
