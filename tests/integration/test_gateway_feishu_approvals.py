"""Approve and reject from a Feishu/Lark card: the gateway's `/v1/integrations/feishu/card-actions` with the real
healer, both in-process through their real wiring on real NATS JetStream and PostgreSQL, the healer acting on the
sandbox apiserver (as tests/integration/test_gateway_slack_approvals.py does for Slack). The test plays Feishu (the
encrypted, signed `card.action.trigger` callback, tests/integration/feishu_clicks.py) and the watcher
(crash-looping pods, a policy that needs approval before deleting one).

Shown: Feishu's URL check is answered with its challenge; a click by a mapped operator approves one step and
rejects another through the API's own path: the healer deletes the approved pod (planned -> approved -> started)
and leaves the rejected one; each decision is one entry of the healer's with the mapped identity as the actor and
`channel: feishu` with the open_id; the answer replaces the card with who decided. The same callback sent again
is refused (409) and decides nothing. A forged or stale signature, a wrong verification token, a body encrypted
with another key, an unsigned or malformed request are 4xx problem+json; an unknown Feishu user, a mapped viewer
and an operator of another namespace get an error toast, are audited as denied, and the step stays pending.
Without an Encrypt Key the token and the timestamp still guard the endpoint; without a token nothing gets in.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from opsbus.common.bus import Bus
from tests.cluster.conftest import api_client, cluster, sandbox
from tests.cluster.kube import Cluster
from tests.cluster.test_healer_remediation import (
    StartHealer,
    crashlooping_pod,
    start_healer,
    stream,
    types,
)
from tests.integration.feishu_clicks import (
    APPROVE,
    REJECT,
    body_of,
    card_action,
    challenge,
    feishu_settings,
    signed,
)
from tests.integration.gateway_stack import GatewayStack
from tests.integration.test_gateway_approvals import POLICY, pending_ids, stack
from tests.integration.test_gateway_slack_approvals import (
    approved_carried_out_rejected_not,
    audit_entries,
    fire,
    problem,
    steps_by_pod,
)

pytestmark = [pytest.mark.integration, pytest.mark.cluster]
__all__ = ["api_client", "cluster", "sandbox", "stack", "start_healer"]  # fixtures shared with other tests

PATH = "/v1/integrations/feishu/card-actions"
ALICE, VICTOR, OLGA, MALLORY = "ou_alice7f3a", "ou_victor2b9c", "ou_olga5d1e", "ou_mallory9e8f"


def approvers(ns: str) -> dict[str, dict[str, Any]]:
    return {
        ALICE: {"identity": "alice@example.com", "role": "operator", "namespaces": [ns]},
        VICTOR: {"identity": "victor@example.com", "role": "viewer", "namespaces": [ns]},
        "olga5d1e": {"identity": "olga@example.com", "role": "operator", "namespaces": ["someone-else"]},  # user_id
    }


async def post(stack: GatewayStack, body: bytes, headers: dict[str, str]) -> httpx.Response:
    async with stack.client() as c:
        return await c.post(PATH, content=body, headers=headers)


def answer(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_signed_feishu_click_approves_or_rejects_through_the_approval_path(
    cluster: Cluster,
    start_healer: StartHealer,
    stack: GatewayStack,
    make_bus: Callable[..., Awaitable[Bus]],
) -> None:
    pods = {app: await crashlooping_pod(cluster, app) for app in ("first", "second")}
    first, second = pods["first"], pods["second"]
    await start_healer(policies=POLICY)
    bus = await make_bus("watcher")
    await fire(cluster, bus, pods)
    await stack.start(feishu=feishu_settings(approvers(cluster.namespace)))
    admin = await stack.key("admin")

    check = body_of(challenge())  # Feishu checking the callback URL (encrypted, as with an Encrypt Key)
    assert answer(await post(stack, check, {"Content-Type": "application/json"})) == {"challenge": "ajls384kdjx98XX"}

    by_pod = await steps_by_pod(stack, admin, 2)
    (rid_a, step_a), (rid_b, step_b) = by_pod[first.metadata.name], by_pod[second.metadata.name]
    approve = body_of(card_action(ALICE, APPROVE, rid_a, step_a))
    approved = answer(await post(stack, approve, signed(approve)))
    line = f"recovery {rid_a} step {step_a} approved by alice@example.com (<at id={ALICE}></at>) from Feishu"
    assert approved["toast"]["type"] == "success" and line in approved["toast"]["content"]
    card = approved["card"]["data"]
    assert approved["card"]["type"] == "raw" and line in card["elements"][0]["content"]
    assert all(e["tag"] != "action" for e in card["elements"]), "the buttons are gone"
    reject = body_of(card_action(ALICE, REJECT, rid_b, step_b), encrypt_key=None)  # signed, not encrypted
    rejected = answer(await post(stack, reject, signed(reject)))
    assert "rejected by alice@example.com" in rejected["toast"]["content"]
    assert await pending_ids(stack, admin) == []

    # the same callback again (a captured request replayed within the window): refused, nothing decided twice
    assert "already handled" in problem(await post(stack, approve, signed(approve)), 409)
    # a new click on a decided step: told, nothing decided
    again = body_of(card_action(ALICE, APPROVE, rid_a, step_a))
    told = answer(await post(stack, again, signed(again)))
    assert told["toast"]["type"] == "info" and "not waiting for a decision" in told["toast"]["content"], told

    # the healer carries out the approval (the pod is replaced), not the rejection
    await approved_carried_out_rejected_not(cluster, bus, (rid_a, first), (rid_b, second), "alice@example.com")

    # one entry per decision, the healer's, naming the mapped person, the chat and the Feishu open_id
    decisions = ("recovery.approve", "recovery.reject")
    [await audit_entries(stack, admin, 1, action=a) for a in decisions]
    await asyncio.sleep(1)  # a second entry for the replayed click would have arrived by now
    entries = [e for a in decisions for e in await audit_entries(stack, admin, 1, action=a, outcome="executed")]
    assert len(entries) == 2, entries
    for entry in entries:
        assert entry["service"] == "healer"
        assert (entry["actor"]["kind"], entry["actor"]["id"]) == ("user", "alice@example.com")
        assert entry["details"]["channel"] == "feishu" and entry["details"]["channel_user"] == ALICE
    assert {e["target"]["name"] for e in entries} == {first.metadata.name, second.metadata.name}


async def test_forged_stale_malformed_replayed_or_unauthorized_clicks_decide_nothing(
    cluster: Cluster,
    start_healer: StartHealer,
    stack: GatewayStack,
    make_bus: Callable[..., Awaitable[Bus]],
) -> None:
    pod = await crashlooping_pod(cluster, "held")
    await start_healer(policies=POLICY)
    bus = await make_bus("watcher")
    await fire(cluster, bus, {"held": pod})
    await stack.start(feishu=feishu_settings(approvers(cluster.namespace)))
    admin = await stack.key("admin")
    [(rid, step)] = list((await steps_by_pod(stack, admin, 1)).values())
    body = body_of(card_action(ALICE, APPROVE, rid, step))

    assert "does not match" in problem(await post(stack, body, signed(body, key="not-the-apps-key")), 401)
    tampered = body_of(card_action(MALLORY, APPROVE, rid, step))
    assert "does not match" in problem(await post(stack, tampered, signed(body)), 401)
    assert "more than 300 s from now" in problem(await post(stack, body, signed(body, at=time.time() - 301)), 401)
    assert "are required" in problem(await post(stack, body, {"Content-Type": "application/json"}), 401)
    other_key = body_of(card_action(ALICE, APPROVE, rid, step), encrypt_key="another-apps-key")
    assert "does not decrypt" in problem(await post(stack, other_key, signed(other_key)), 401)
    wrong_token = body_of(card_action(ALICE, APPROVE, rid, step, token="vt-of-another-app"))
    assert "verification token" in problem(await post(stack, wrong_token, signed(wrong_token)), 401)
    assert "not this app's" in problem(await post(stack, body_of(challenge("vt-of-another-app")), {}), 401)
    junk = b'{"not": "a callback"'
    assert "not JSON" in problem(await post(stack, junk, signed(junk)), 400)
    other = card_action(ALICE, APPROVE, rid, step)
    other["event"]["action"]["value"] = {"action": "opsbus.something.else", "step": f"{rid}:{step}"}
    other_body = body_of(other)
    assert "not an opsbus Approve/Reject" in problem(await post(stack, other_body, signed(other_body)), 400)

    refusals = {
        MALLORY: f"Feishu user {MALLORY} is not an opsbus approver",
        VICTOR: "victor@example.com: role viewer may not do this: it needs operator",
        "ou_olga5d1e": f"no pending approval for recovery {rid} step {step} in your namespaces",  # by user_id
    }
    for user, why in refusals.items():
        click = body_of(card_action(user, APPROVE, rid, step))
        told = answer(await post(stack, click, signed(click)))
        assert told["toast"]["type"] == "error" and why in told["toast"]["content"], told
        assert "card" not in told  # the card keeps its buttons for someone who may decide

    # nothing was decided: still pending, no decision event, the pod untouched; each refusal audited as denied
    assert await pending_ids(stack, admin) == [(rid, step)]
    assert types(await stream(bus, "recovery.>"), rid) == ["planned"]
    denied = await audit_entries(stack, admin, 3, action="recovery.approve", outcome="denied")
    assert sorted(e["details"]["channel_user"] for e in denied) == sorted(refusals), denied
    assert {e["actor"]["id"] for e in denied} == {f"feishu:{MALLORY}", "victor@example.com", "olga@example.com"}
    assert all(e["service"] == "gateway" and e["details"]["channel"] == "feishu" for e in denied)
    assert await audit_entries(stack, admin, 0, action="recovery.approve", outcome="executed") == []
    await asyncio.sleep(2)
    assert [p.metadata.uid for p in cluster.pods("held")] == [pod.metadata.uid]


async def test_without_an_encrypt_key_the_token_and_timestamp_guard_and_without_a_token_nothing_gets_in(
    stack: GatewayStack,
) -> None:
    await stack.start(feishu=feishu_settings({}, encrypt=False))
    plain = {"Content-Type": "application/json", "X-Lark-Request-Timestamp": str(int(time.time()))}
    check = body_of(challenge(), encrypt_key=None)
    assert answer(await post(stack, check, plain)) == {"challenge": "ajls384kdjx98XX"}
    encrypted = body_of(card_action(ALICE, APPROVE, "rcv-1", 1))
    assert "no encrypt_key" in problem(await post(stack, encrypted, plain), 400)
    wrong = body_of(card_action(ALICE, APPROVE, "rcv-1", 1, token="vt-of-another-app"), encrypt_key=None)
    assert "verification token" in problem(await post(stack, wrong, plain), 401)
    click = body_of(card_action(MALLORY, APPROVE, "rcv-1", 1), encrypt_key=None)
    stale = {**plain, "X-Lark-Request-Timestamp": str(int(time.time()) - 301)}
    assert "more than 300 s" in problem(await post(stack, click, stale), 401)
    told = answer(await post(stack, click, plain))  # authentic, but not an approver
    assert told["toast"]["type"] == "error" and "is not an opsbus approver" in told["toast"]["content"]
    assert "already handled" in problem(await post(stack, click, plain), 409)

    await stack.start()  # another gateway, no verification token: every request is refused
    assert "no verification token configured" in problem(await post(stack, check, plain), 401)
