"""Scenario 9 (issue 25): a pod crash-loops under a policy whose pod deletion needs a person's approval -> the
page goes out once by DingTalk (an ActionCard) and once by SMS (Alibaba Cloud), to the providers' stand-ins ->
the step waiting for approval reaches Slack with Approve and Reject buttons -> the on-call engineer's click,
signed as Slack signs it, reaches the gateway's interaction endpoint -> the healer deletes the pod, the alert
resolves, and the audit trail says who approved, from Slack. Every service is its own process on the sandbox."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from opsbus.common.api.chat import ACTION_APPROVE
from tests.cluster.kube import wait_until
from tests.e2e.conftest import SLACK_APPROVER, SMS_TO, logs_of
from tests.e2e.platform import Platform
from tests.e2e.providers import StandIns
from tests.integration.slack_clicks import APPROVE, click_body, signed

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]


def approve_buttons(stand_ins: StandIns, recovery_id: str) -> list[dict[str, Any]]:
    """The Approve buttons of the Slack messages naming this recovery."""
    return [
        e
        for m in stand_ins.slack.messages
        for b in m["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e.get("action_id") == ACTION_APPROVE and e["value"].startswith(f"{recovery_id}:")
    ]


async def test_a_crash_pages_once_by_dingtalk_and_sms_and_heals_after_a_slack_approval(
    platform: Platform, stand_ins: StandIns
) -> None:
    kube = platform.kube
    app = "approval-slack"
    kube.create_deployment(app, replicas=1)
    pods = await asyncio.to_thread(wait_until, f"{app} running", lambda: kube.running_pods(app, 1), 120)
    victim = pods[0].metadata.name
    await asyncio.to_thread(kube.chaos, "crashloop", f"pod/{victim}")
    fired = await platform.wait_event("alert.fired", alertname="KubePodCrashLooping", pod=victim, timeout=90)

    try:
        plan = await platform.approval_asked(fired.id)
    except BaseException:
        print(logs_of(platform.stack, "healer"))
        raise
    assert plan["action"]["kind"] == "delete_pod" and plan["action"]["target"]["name"] == victim
    rid, step = str(plan["recovery_id"]), int(plan["step"])

    # the page: one DingTalk card and one SMS; the plan reaches Slack with its buttons
    async def paged() -> bool:
        buttons = approve_buttons(stand_ins, rid)
        return bool(stand_ins.chat.hits and stand_ins.sms.sent and buttons)

    try:
        await platform.until("the page and the Slack notice", paged, 60, lambda: str(stand_ins.chat.hits))
    except BaseException:
        print(logs_of(platform.stack, "notifier"))
        raise
    [button] = approve_buttons(stand_ins, rid)
    assert button["value"] == f"{rid}:{step}"
    await asyncio.sleep(3)  # a second card or message would have arrived by now
    [card] = [h for h in stand_ins.chat.hits if h.provider == "dingtalk"]
    assert card.body["msgtype"] == "actionCard" and "KubePodCrashLooping" in json.dumps(card.body, ensure_ascii=False)
    [(provider, sms)] = stand_ins.sms.sent
    assert provider == "aliyun" and sms["PhoneNumbers"] == SMS_TO
    assert [p.metadata.name for p in kube.pods(app)] == [victim], "acted on before anyone approved"

    # the on-call engineer clicks Approve; Slack signs the request
    click = click_body(SLACK_APPROVER, APPROVE, rid, step, response_url=stand_ins.slack.url("e2e"))
    async with httpx.AsyncClient(base_url=platform.stack.gateway_url, timeout=10.0) as slack:
        answer = await slack.post("/v1/integrations/slack/interactions", content=click, headers=signed(click))
    assert answer.status_code == 200, answer.text
    assert "approved by oncall@example.com" in answer.json()["blocks"][-1]["elements"][0]["text"]

    # the recovery is carried out in the cluster
    await platform.wait_event("recovery.succeeded", recovery_id=rid, timeout=120)
    await asyncio.to_thread(
        wait_until,
        f"{victim} replaced",
        lambda: victim not in {p.metadata.name for p in kube.pods(app)} and kube.running_pods(app, 1),
        90,
    )
    approved = await platform.wait_event("recovery.approved", recovery_id=rid, timeout=10)
    assert approved.data["approver"]["id"] == "oncall@example.com"
    await platform.wait_event("alert.resolved", fingerprint=fired.data["fingerprint"], timeout=90)

    # the audit trail says who approved, from Slack
    async def audited() -> dict[str, Any] | None:
        rows = (await platform.api("/v1/audit", action="recovery.approve", limit=100))["items"]
        return next((r for r in rows if r["details"].get("recovery_id") == rid), None)

    entry = await platform.until("the approval's audit entry", audited, 30, lambda: "no entry")
    assert (entry["actor"]["kind"], entry["actor"]["id"]) == ("user", "oncall@example.com")
    assert entry["details"]["channel"] == "slack" and entry["details"]["channel_user"] == SLACK_APPROVER
    assert entry["target"]["name"] == victim
    assert stand_ins.slack.posts["e2e"][0]["replace_original"] is True  # the buttons replaced by the decision
    assert len(stand_ins.chat.hits) == 1 and len(stand_ins.sms.sent) == 1, "the page went out again"
