"""Approve and reject through the gateway with the real healer: both in-process through their real wiring on
real NATS JetStream and PostgreSQL, the healer acting on the sandbox apiserver (as in
tests/cluster/test_healer_remediation.py). The test plays the watcher: two crash-looping pods, a policy that
needs approval before deleting one.

Shown: the pending step is listed only to callers of its namespace; another tenant's operator gets 404 and a
viewer 403; an approval makes the healer delete the pod (recovery planned -> approved -> started), a rejection
with its reason leaves the pod alone (recovery rejected); a decided step cannot be decided again; both
decisions are in the gateway's audit trail with the approver.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from opsbus.common.bus import Bus
from opsbus.common.events import ObjectRef
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
        approved = status(
            await c.post(f"/v1/recoveries/{rid_a}/steps/{step_a}/approve", json={"comment": "safe, it is stateless"}),
            200,
        )
        assert approved == {"recovery_id": rid_a, "step": step_a, "status": "approved"}
        rejected = status(
            await c.post(f"/v1/recoveries/{rid_b}/steps/{step_b}/reject", json={"reason": "debugging it live"}), 200
        )
        assert rejected["status"] == "rejected"
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

    async with stack.client(admin) as c:
        deadline = time.monotonic() + 15
        while True:
            audit = (await c.get("/v1/audit", params={"service": "gateway"})).json()["items"]
            mine = {e["action"]: e for e in audit if e["service"] == "gateway" and e["action"].startswith("recovery.")}
            if len(mine) == 2 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
    assert mine["recovery.approve"]["reason"] == "safe, it is stateless"
    assert mine["recovery.reject"]["reason"] == "debugging it live"
    assert mine["recovery.approve"]["target"]["name"] == first.metadata.name
    assert mine["recovery.approve"]["actor"]["kind"] == "apikey"
