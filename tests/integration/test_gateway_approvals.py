"""Approve and reject through the gateway with the real healer: both in-process through their real wiring on
real NATS JetStream and PostgreSQL, the healer acting on the sandbox apiserver (as in
tests/cluster/test_healer_remediation.py). The test plays the watcher: two crash-looping pods, a policy that
needs approval before deleting one.

Shown: the pending step is listed only to callers of its namespace; another tenant's operator gets 404 and a
viewer 403; an approval makes the healer delete the pod (recovery planned -> approved -> started), a rejection
with its reason leaves the pod alone (recovery rejected); a decided step cannot be decided again; each
decision is one audit entry, written by the healer in the decision's transaction with the gateway's caller
(the API key, the request id) as its actor. When that entry cannot be written (a trigger on the healer's
outbox refuses `audit.recorded` rows, as in tests/integration/test_atomic_audit.py) the decision is not
recorded: the API answers 5xx problem+json, the step is still pending and untouched, and the same request
then succeeds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from opsbus.common.bus import Bus
from opsbus.common.events import ObjectRef
from opsbus.common.settings import DatabaseSettings
from opsbus.common.store import Database
from opsbus.healer import store as healer_store
from tests.cluster.conftest import api_client, cluster, sandbox
from tests.cluster.kube import Cluster, wait_until
from tests.cluster.test_healer_remediation import (
    StartHealer,
    alert,
    crashlooping_pod,
    envelope,
    start_healer,
    stream,
    types,
    wait_for_events,
)
from tests.integration.gateway_stack import GatewayStack, gateway_stack
from tests.integration.test_atomic_audit import assert_failed, audit_refused, count, outbox_audits

pytestmark = [pytest.mark.integration, pytest.mark.cluster]
__all__ = ["api_client", "cluster", "sandbox", "start_healer"]  # fixtures shared with the cluster tests

POLICY = """
policies:
  - name: careful-crashloop
    match: {alertname: KubePodCrashLooping}
    cooldown: 0s
    approval: {required_for: [delete_pod], expires_after: 10m}
    ladder:
      - {action: delete_pod, params: {grace_period_seconds: 0}, verify: pod_replaced, timeout: 60s}
"""


@pytest.fixture
async def stack(database_url: str, nats_url: str) -> AsyncIterator[GatewayStack]:
    async for s in gateway_stack(database_url, nats_url):
        yield s


async def pending_ids(stack: GatewayStack, token: str) -> list[tuple[str, int]]:
    async with stack.client(token) as c:
        response = await c.get("/v1/recoveries/pending")
        assert response.status_code == 200, response.text
        return [(p["recovery_id"], p["step"]) for p in response.json()["items"]]


async def wait_pending(stack: GatewayStack, token: str, count: int) -> list[tuple[str, int]]:
    deadline = time.monotonic() + 60
    while True:
        found = await pending_ids(stack, token)
        if len(found) >= count:
            return found
        assert time.monotonic() < deadline, f"only {found} pending"
        await asyncio.sleep(0.3)


def status(response: Any, code: int) -> dict[str, Any]:
    assert response.status_code == code, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_approve_and_reject_through_the_gateway_with_the_real_healer(
    cluster: Cluster, start_healer: StartHealer, stack: GatewayStack, make_bus: Callable[..., Awaitable[Bus]]
) -> None:
    ns = cluster.namespace
    first = await crashlooping_pod(cluster, "first")
    second = await crashlooping_pod(cluster, "second")
    await start_healer(policies=POLICY)
    await stack.start()
    bus = await make_bus("watcher")
    for pod, app in ((first, "first"), (second, "second")):
        name = pod.metadata.name
        fired = alert("KubePodCrashLooping", ns, pod=name, workload=app)
        await bus.publisher.publish(envelope(fired, ObjectRef(kind="Pod", namespace=ns, name=name)))

    admin = await stack.key("admin")
    operator = await stack.key("operator", namespaces=[ns])
    viewer = await stack.key("viewer", namespaces=[ns])
    stranger = await stack.key("operator", namespaces=["someone-else"])
    pending = await wait_pending(stack, operator, 2)
    assert await pending_ids(stack, stranger) == []
    async with stack.client(operator) as c:
        items = (await c.get("/v1/recoveries/pending")).json()["items"]
    by_pod = {p["action"]["target"]["name"]: (p["recovery_id"], p["step"]) for p in items}
    assert set(by_pod) == {first.metadata.name, second.metadata.name} and len(pending) == 2
    (rid_a, step_a), (rid_b, step_b) = by_pod[first.metadata.name], by_pod[second.metadata.name]

    async with stack.client(stranger) as c:
        status(await c.post(f"/v1/recoveries/{rid_a}/steps/{step_a}/approve", json={}), 404)
        status(await c.post(f"/v1/recoveries/{rid_b}/steps/{step_b}/reject", json={"reason": "mine now"}), 404)
    async with stack.client(viewer) as c:
        status(await c.post(f"/v1/recoveries/{rid_a}/steps/{step_a}/approve", json={}), 403)
    async with stack.client(operator) as c:
        status(await c.post(f"/v1/recoveries/{rid_b}/steps/{step_b}/reject", json={}), 422)  # a reason is required
        approve = await c.post(
            f"/v1/recoveries/{rid_a}/steps/{step_a}/approve", json={"comment": "safe, it is stateless"}
        )
        assert status(approve, 200) == {"recovery_id": rid_a, "step": step_a, "status": "approved"}
        reject = await c.post(f"/v1/recoveries/{rid_b}/steps/{step_b}/reject", json={"reason": "debugging it live"})
        assert status(reject, 200)["status"] == "rejected"
        approved_id, rejected_id = approve.headers["x-request-id"], reject.headers["x-request-id"]
        # decided: no longer pending, so neither can be decided again
        status(await c.post(f"/v1/recoveries/{rid_a}/steps/{step_a}/approve", json={}), 404)
        status(await c.post(f"/v1/recoveries/{rid_b}/steps/{step_b}/approve", json={}), 404)
    assert await pending_ids(stack, operator) == []

    # the healer acts on the approval (the pod is replaced) and not on the rejection
    def replaced() -> Any:
        pods = cluster.pods("first")
        return pods if pods and all(p.metadata.uid != first.metadata.uid for p in pods) else None

    await asyncio.to_thread(wait_until, "the approved pod replaced", replaced, 60)
    events = await wait_for_events(bus, "recovery.>", lambda es: "started" in types(es, rid_a), 60)
    assert types(events, rid_a)[:3] == ["planned", "approved", "started"]
    assert types(await stream(bus, "recovery.>"), rid_b) == ["planned", "rejected"]
    assert [p.metadata.uid for p in cluster.pods("second")] == [second.metadata.uid]

    # One entry per decision, the healer's (the gateway writes none), naming the caller and its request.
    decisions = ("recovery.approve", "recovery.reject")
    async with stack.client(admin) as c:
        deadline = time.monotonic() + 15
        while True:
            mine = [e for a in decisions for e in (await c.get("/v1/audit", params={"action": a})).json()["items"]]
            if len(mine) >= 2 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1)  # an entry the gateway wrote after the call would have arrived by now
        mine = [e for a in decisions for e in (await c.get("/v1/audit", params={"action": a})).json()["items"]]
    assert sorted((e["service"], e["action"], e["actor"]["kind"]) for e in mine) == [
        ("healer", "recovery.approve", "apikey"),
        ("healer", "recovery.reject", "apikey"),
    ], mine
    by_action = {e["action"]: e for e in mine}
    assert by_action["recovery.approve"]["reason"] == "safe, it is stateless"
    assert by_action["recovery.reject"]["reason"] == "debugging it live"
    assert by_action["recovery.approve"]["target"]["name"] == first.metadata.name
    assert by_action["recovery.reject"]["target"]["name"] == second.metadata.name
    assert by_action["recovery.approve"]["request_id"] == approved_id
    assert by_action["recovery.reject"]["request_id"] == rejected_id


async def test_a_decision_whose_audit_fails_is_not_recorded(
    cluster: Cluster,
    start_healer: StartHealer,
    stack: GatewayStack,
    make_bus: Callable[..., Awaitable[Bus]],
    database_url: str,
) -> None:
    ns = cluster.namespace
    pod = await crashlooping_pod(cluster, "held")
    await start_healer(policies=POLICY)
    await stack.start()
    bus = await make_bus("watcher")
    name = pod.metadata.name
    fired = alert("KubePodCrashLooping", ns, pod=name, workload="held")
    await bus.publisher.publish(envelope(fired, ObjectRef(kind="Pod", namespace=ns, name=name)))
    operator = await stack.key("operator", namespaces=[ns])
    [(rid, step)] = await wait_pending(stack, operator, 1)

    db = Database.from_settings(DatabaseSettings.model_validate({"url": database_url, "pool_size": 2}))
    approvals, outbox = healer_store.Base.metadata.tables["healer.approvals"], healer_store.TABLES.outbox
    decided = outbox.c.event_type.in_(["io.opsbus.recovery.approved.v1", "io.opsbus.recovery.rejected.v1"])
    try:
        async with stack.client(operator) as c:
            async with audit_refused(db, healer_store.SCHEMA):
                assert_failed(await c.post(f"/v1/recoveries/{rid}/steps/{step}/approve", json={"comment": "go"}))
                assert_failed(await c.post(f"/v1/recoveries/{rid}/steps/{step}/reject", json={"reason": "no"}))
            # nothing of either decision remains: still pending, no decision event, no entry
            assert await pending_ids(stack, operator) == [(rid, step)]
            assert await count(db, approvals, approvals.c.recovery_id == rid, approvals.c.status == "pending") == 1
            assert await count(db, outbox, decided) == 0
            assert await outbox_audits(db, outbox, "recovery.approve") == []
            assert await outbox_audits(db, outbox, "recovery.reject") == []
            await asyncio.sleep(2)
            assert [p.metadata.uid for p in cluster.pods("held")] == [pod.metadata.uid]  # not acted on

            # without the injected failure the same request records the decision with its one entry
            approved = await c.post(f"/v1/recoveries/{rid}/steps/{step}/approve", json={"comment": "go"})
            assert status(approved, 200) == {"recovery_id": rid, "step": step, "status": "approved"}
            [entry] = await outbox_audits(db, outbox, "recovery.approve")
            assert entry["actor"]["kind"] == "apikey" and entry["request_id"] == approved.headers["x-request-id"]
            assert entry["reason"] == "go" and entry["target"]["name"] == name
            assert await count(db, outbox, decided) == 1
    finally:
        await db.close()

    def replaced() -> Any:
        pods = cluster.pods("held")
        return pods if pods and all(p.metadata.uid != pod.metadata.uid for p in pods) else None

    await asyncio.to_thread(wait_until, "the approved pod replaced", replaced, 60)
