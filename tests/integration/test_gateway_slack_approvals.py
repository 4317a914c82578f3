"""Approve and reject from Slack's buttons: the gateway's `/v1/integrations/slack/interactions` with the real
healer, both in-process through their real wiring on real NATS JetStream and PostgreSQL, the healer acting on
the sandbox apiserver (as in tests/integration/test_gateway_approvals.py). The test plays Slack (the signed
form-encoded click, `tests/integration/slack_clicks.py`) and the watcher (crash-looping pods, a policy that
needs approval before deleting one).

Shown: a click signed with the app's secret by a mapped operator approves one step and rejects another, through
the API's own path: the healer deletes the approved pod (planned -> approved -> started) and leaves the
rejected one; the decision events name the mapped identity, and each decision is one entry of the healer's,
with that identity as the actor and `channel: slack` with the Slack user id; the message is updated through the
click's response_url without its buttons. A replayed click changes nothing (one decision event, one entry).
A forged or stale signature, an unsigned or malformed body are 4xx problem+json; an unknown Slack user, a
mapped viewer and an operator of another namespace are told why in an ephemeral reply, audited as denied, and
the step stays pending and the pod untouched.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
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
from tests.integration.gateway_stack import GatewayStack
from tests.integration.slack_clicks import (
    APPROVE,
    REJECT,
    SlackStandIn,
    click_body,
    signed,
    slack_settings,
    slack_stand_in,
)
from tests.integration.test_gateway_approvals import POLICY, pending_ids, stack, wait_pending

pytestmark = [pytest.mark.integration, pytest.mark.cluster]
__all__ = ["api_client", "cluster", "sandbox", "stack", "start_healer"]  # fixtures shared with other tests

PATH = "/v1/integrations/slack/interactions"
ALICE, VICTOR, OLGA, MALLORY = "U0ALICE", "U0VICTOR", "U0OLGA", "U0MALLORY"


@pytest.fixture
async def urls() -> AsyncIterator[SlackStandIn]:
    async for u in slack_stand_in():
        yield u


def approvers(ns: str) -> dict[str, dict[str, Any]]:
    return {
        ALICE: {"identity": "alice@example.com", "role": "operator", "namespaces": [ns]},
        VICTOR: {"identity": "victor@example.com", "role": "viewer", "namespaces": [ns]},
        OLGA: {"identity": "olga@example.com", "role": "operator", "namespaces": ["someone-else"]},
    }


async def post(stack: GatewayStack, body: bytes, headers: dict[str, str]) -> httpx.Response:
    async with stack.client() as c:
        return await c.post(PATH, content=body, headers=headers)


def reply(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def problem(response: httpx.Response, code: int) -> str:
    assert response.status_code == code, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    detail: str = response.json()["detail"]
    return detail


async def audit_entries(stack: GatewayStack, admin: str, count: int, **params: str) -> list[dict[str, Any]]:
    async with stack.client(admin) as c:
        deadline = time.monotonic() + 15
        while True:
            items: list[dict[str, Any]] = (await c.get("/v1/audit", params=params)).json()["items"]
            if len(items) >= count or time.monotonic() > deadline:
                return items
            await asyncio.sleep(0.2)


async def fire(cluster: Cluster, bus: Bus, pods: dict[str, Any]) -> None:
    """Play the watcher: each pod's crash-loop alert (after the healer started: it provisions the streams)."""
    for app, pod in pods.items():
        fired = alert("KubePodCrashLooping", cluster.namespace, pod=pod.metadata.name, workload=app)
        obj = ObjectRef(kind="Pod", namespace=cluster.namespace, name=pod.metadata.name)
        await bus.publisher.publish(envelope(fired, obj))


async def steps_by_pod(stack: GatewayStack, token: str, count: int) -> dict[str, tuple[str, int]]:
    await wait_pending(stack, token, count)
    async with stack.client(token) as c:
        items = (await c.get("/v1/recoveries/pending")).json()["items"]
    return {p["action"]["target"]["name"]: (p["recovery_id"], p["step"]) for p in items}


async def approved_carried_out_rejected_not(
    cluster: Cluster, bus: Bus, approved: tuple[str, Any], rejected: tuple[str, Any], approver: str
) -> None:
    """The healer carries out the approved recovery (its pod replaced, planned -> approved -> started, one approval
    by `approver`) and not the rejected one (planned -> rejected, its pod untouched). Each is (recovery id, pod)."""
    (rid_a, first), (rid_b, second) = approved, rejected

    def replaced() -> Any:
        now = cluster.pods(first.metadata.labels["app"])
        return now if now and all(p.metadata.uid != first.metadata.uid for p in now) else None

    await asyncio.to_thread(wait_until, "the approved pod replaced", replaced, 60)
    events = await wait_for_events(bus, "recovery.>", lambda es: "started" in types(es, rid_a), 60)
    assert types(events, rid_a)[:3] == ["planned", "approved", "started"]
    assert types(events, rid_a).count("approved") == 1
    assert types(await stream(bus, "recovery.>"), rid_b) == ["planned", "rejected"]
    [decision] = [e for e in events if e.type.endswith(".approved.v1")]
    assert decision.data["approver"]["id"] == approver
    assert [p.metadata.uid for p in cluster.pods(second.metadata.labels["app"])] == [second.metadata.uid]


async def test_a_signed_slack_click_approves_or_rejects_through_the_approval_path(
    cluster: Cluster,
    start_healer: StartHealer,
    stack: GatewayStack,
    urls: SlackStandIn,
    make_bus: Callable[..., Awaitable[Bus]],
) -> None:
    pods = {app: await crashlooping_pod(cluster, app) for app in ("first", "second")}
    first, second = pods["first"], pods["second"]
    await start_healer(policies=POLICY)
    bus = await make_bus("watcher")
    await fire(cluster, bus, pods)
    await stack.start(slack=slack_settings(approvers(cluster.namespace), urls))
    admin = await stack.key("admin")
    by_pod = await steps_by_pod(stack, admin, 2)
    (rid_a, step_a), (rid_b, step_b) = by_pod[first.metadata.name], by_pod[second.metadata.name]

    approve = click_body(ALICE, APPROVE, rid_a, step_a, response_url=urls.url("a"))
    approved = reply(await post(stack, approve, signed(approve)))
    line = approved["blocks"][-1]["elements"][0]["text"]
    assert approved["replace_original"] is True
    assert f"recovery {rid_a} step {step_a} approved by alice@example.com (<@{ALICE}>) from Slack" in line
    assert all(b["type"] != "actions" for b in approved["blocks"]), "the buttons are gone"
    reject = click_body(ALICE, REJECT, rid_b, step_b, response_url=urls.url("b"))
    rejected = reply(await post(stack, reject, signed(reject)))
    assert "rejected by alice@example.com" in rejected["blocks"][-1]["elements"][0]["text"]
    assert await pending_ids(stack, admin) == []

    # Slack delivers the same click again (within its 5 minutes): nothing is decided twice
    again = reply(await post(stack, approve, signed(approve)))
    assert again["response_type"] == "ephemeral" and "not waiting for a decision" in again["text"], again

    # the healer carries out the approval (the pod is replaced), not the rejection
    await approved_carried_out_rejected_not(cluster, bus, (rid_a, first), (rid_b, second), "alice@example.com")

    # one entry per decision, the healer's, naming the mapped person, the chat and the Slack user
    decisions = ("recovery.approve", "recovery.reject")
    [await audit_entries(stack, admin, 1, action=a) for a in decisions]
    await asyncio.sleep(1)  # a second entry for the replayed click would have arrived by now
    entries = [e for a in decisions for e in await audit_entries(stack, admin, 1, action=a)]
    assert len(entries) == 2, entries
    for entry in entries:
        assert entry["service"] == "healer" and entry["outcome"] == "executed"
        assert (entry["actor"]["kind"], entry["actor"]["id"]) == ("user", "alice@example.com")
        assert entry["details"]["channel"] == "slack" and entry["details"]["channel_user"] == ALICE
    assert {e["target"]["name"] for e in entries} == {first.metadata.name, second.metadata.name}

    # the messages were updated through their response_url: the decision in place of the buttons, then the replay
    for _ in range(100):  # posted after each answer; long since arrived, but bounded anyway
        if len(urls.posts.get("a", [])) >= 2:
            break
        await asyncio.sleep(0.1)
    assert urls.posts["a"] == [approved, again]
    assert urls.posts["b"] == [rejected]


async def test_forged_stale_malformed_or_unauthorized_clicks_decide_nothing(
    cluster: Cluster,
    start_healer: StartHealer,
    stack: GatewayStack,
    make_bus: Callable[..., Awaitable[Bus]],
) -> None:
    pod = await crashlooping_pod(cluster, "held")
    await start_healer(policies=POLICY)
    bus = await make_bus("watcher")
    await fire(cluster, bus, {"held": pod})
    await stack.start(slack=slack_settings(approvers(cluster.namespace)))
    admin = await stack.key("admin")
    [(rid, step)] = list((await steps_by_pod(stack, admin, 1)).values())
    body = click_body(ALICE, APPROVE, rid, step)

    assert "does not match" in problem(await post(stack, body, signed(body, secret="not-the-apps-secret")), 401)
    tampered = click_body(ALICE, APPROVE, rid, step).replace(b"U0ALICE", b"U0ALICF")
    assert "does not match" in problem(await post(stack, tampered, signed(body)), 401)
    stale = signed(body, at=time.time() - 301)
    assert "more than 300 s from now" in problem(await post(stack, body, stale), 401)
    unsigned = {"Content-Type": "application/x-www-form-urlencoded"}
    assert "are required" in problem(await post(stack, body, unsigned), 401)
    junk = b"payload=%7Bnot+json"
    assert "payload" in problem(await post(stack, junk, signed(junk)), 400)
    other = click_body(ALICE, "opsbus.something.else", rid, step)
    assert "unknown action" in problem(await post(stack, other, signed(other)), 400)

    refusals = {
        MALLORY: f"Slack user {MALLORY} is not an opsbus approver",
        VICTOR: "victor@example.com: role viewer may not do this: it needs operator",
        OLGA: f"no pending approval for recovery {rid} step {step} in your namespaces",
    }
    for user, why in refusals.items():
        click = click_body(user, APPROVE, rid, step)
        answer = reply(await post(stack, click, signed(click)))
        assert answer["response_type"] == "ephemeral" and answer["replace_original"] is False
        assert why in answer["text"], answer

    # nothing was decided: still pending, no decision event, the pod untouched; each refusal audited as denied
    assert await pending_ids(stack, admin) == [(rid, step)]
    assert types(await stream(bus, "recovery.>"), rid) == ["planned"]
    denied = await audit_entries(stack, admin, 3, action="recovery.approve", outcome="denied")
    assert sorted(e["details"]["channel_user"] for e in denied) == sorted(refusals), denied
    assert {e["actor"]["id"] for e in denied} == {f"slack:{MALLORY}", "victor@example.com", "olga@example.com"}
    assert all(e["service"] == "gateway" and e["details"]["channel"] == "slack" for e in denied)
    assert await audit_entries(stack, admin, 0, action="recovery.approve", outcome="executed") == []
    await asyncio.sleep(2)
    assert [p.metadata.uid for p in cluster.pods("held")] == [pod.metadata.uid]
