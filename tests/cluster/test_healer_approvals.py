"""Approvals arriving as events (`recovery.approved` / `recovery.rejected` published by the gateway or a
team's tool), not only through the request-reply endpoints: applied once, repeats ignored, contradictions
recorded, unknown recoveries dead-lettered with the reason. Sandbox, NATS JetStream and PostgreSQL are real.
"""

# ruff: noqa: F401, F811 - `start_healer` is the fixture imported from the shared healer harness below

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from opsbus.common.bus import Bus
from opsbus.common.events import Envelope, ObjectRef
from opsbus.common.events.payloads import Actor, ActorKind, RecoveryApproved, RecoveryRejected, ResourceRef
from opsbus.healer.cluster import RESTARTED_AT
from tests.cluster.kube import Cluster, wait_until
from tests.cluster.test_healer_remediation import (
    CLUSTER,
    StartHealer,
    alert,
    envelope,
    start_healer,
    stream,
    types,
    wait_for_events,
)

pytestmark = pytest.mark.cluster
POLICIES = """
policies:
  - name: restart-with-approval
    match: {alertname: RolloutStuck}
    approval: {required_for: [rollout_restart], expires_after: 10m}
    ladder:
      - {action: rollout_restart, verify: workload_available, timeout: 90s}
"""
ALICE = Actor(kind=ActorKind.USER, id="alice")
MakeBus = Callable[..., Awaitable[Bus]]


def decision(payload: RecoveryApproved | RecoveryRejected, target: dict[str, Any]) -> Envelope:
    ref = ResourceRef.model_validate(target)
    return Envelope.build(payload, service="gateway", cluster=CLUSTER, obj=ref.as_object_ref())


async def test_recovery_approved_event_runs_the_step_once_and_later_decisions_are_recorded_not_applied(
    cluster: Cluster, start_healer: StartHealer, make_bus: MakeBus
) -> None:
    cluster.create_deployment("web", replicas=1)
    await asyncio.to_thread(wait_until, "web rolled out", lambda: cluster.rollout_complete("web"), 120)
    generation = cluster.deployment("web").metadata.generation
    await start_healer(policies=POLICIES)
    bus = await make_bus("gateway")
    await bus.publisher.publish(
        envelope(
            alert("RolloutStuck", cluster.namespace, workload="web"),
            ObjectRef(kind="Deployment", namespace=cluster.namespace, name="web"),
        )
    )
    asked = await wait_for_events(bus, "recovery.>", lambda es: any(e.data.get("approval") for e in es), 60)
    ask = next(e.data for e in asked if e.data.get("approval"))
    rid, target = ask["recovery_id"], ask["action"]["target"]
    await asyncio.sleep(1)
    assert cluster.deployment("web").metadata.generation == generation  # nothing before the approval

    expires = datetime.now(UTC) + timedelta(minutes=5)
    approve = RecoveryApproved(recovery_id=rid, step=1, approver=ALICE, reason="go", expires_at=expires)
    await bus.publisher.publish(decision(approve, target))
    done = await wait_for_events(bus, "recovery.>", lambda es: "succeeded" in types(es, rid), 120)
    assert done[-1].data["verification"]["passed"] is True
    assert RESTARTED_AT in cluster.deployment("web").spec.template.metadata.annotations

    # The same approval again (another event id: a retry by the gateway), then a contradicting rejection.
    await bus.publisher.publish(decision(approve, target))
    reject = RecoveryRejected(recovery_id=rid, step=1, approver=Actor(kind=ActorKind.USER, id="bob"), reason="no")
    await bus.publisher.publish(decision(reject, target))
    audit = await wait_for_events(
        bus, "audit.recorded.>", lambda es: any("ignored reject" in e.data["reason"] for e in es), 60
    )
    ignored = [e.data for e in audit if "ignored" in e.data["reason"]]
    assert len(ignored) == 1 and ignored[0]["actor"]["id"] == "bob" and "already approved" in ignored[0]["reason"]
    await asyncio.sleep(2)
    seen = types(await stream(bus, "recovery.>"), rid)
    assert seen.count("started") == 1 and seen.count("succeeded") == 1
    # The healer's own announcement plus the two from the gateway; no second restart.
    assert seen.count("approved") == 3 and seen.count("rejected") == 1
    assert cluster.deployment("web").metadata.generation == generation + 1

    # An approval for a recovery the healer never planned: dead-lettered with the reason.
    ghost = RecoveryApproved(recovery_id="no-such-recovery", step=1, approver=ALICE, expires_at=expires)
    await bus.publisher.publish(decision(ghost, target))
    sub = await bus.js.pull_subscribe("dlq.>", durable=None)
    try:
        (msg,) = await sub.fetch(1, timeout=30)
    finally:
        await sub.unsubscribe()
    assert msg.headers is not None
    assert "no approval request for recovery no-such-recovery" in msg.headers["Opsbus-Dlq-Reason"]
