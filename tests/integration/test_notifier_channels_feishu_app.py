"""The Feishu/Lark app bot against a stand-in of Feishu's open platform on 127.0.0.1
(tests/integration/feishu_app_providers.py: the tenant_access_token endpoint and im/v1/messages, checking the app
credentials, the bearer token, the chat, the card and the uuid, answering with Feishu's codes).

Built from receiver configuration exactly as the service builds it: a recovery step waiting for approval is sent
as an interactive card with Approve and Reject buttons whose values name the step (Feishu posts their clicks to
the gateway); the token is fetched once, reused, renewed when due and fetched again when the platform refuses
it; a rate limit is retryable after the platform's window, a refusal (a chat the bot is not in, a wrong app
secret) is final and names no secret; a resolve message in Chinese. Then inside the real notifier (NATS,
PostgreSQL): a rate limit retried then delivered once, a permanent refusal dead-lettered without a retry, and a
platform that stays rate limited dead-lettered after the last attempt.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from opsbus.common.api.chat import ACTION_APPROVE, ACTION_REJECT, parse_step_value
from opsbus.common.bus import Bus
from opsbus.common.events.examples import RECOVERY_ID, example_events
from opsbus.common.events.payloads import RecoveryPlanned
from opsbus.common.store import Database
from opsbus.notifier.channels import Outcome
from opsbus.notifier.channels.feishu_app import FeishuAppChannel
from opsbus.notifier.domain.grouping import Notification
from opsbus.notifier.domain.integrations import FeishuConfig
from opsbus.notifier.domain.notices import notice_from
from tests.integration.feishu_app_providers import (
    APP_SECRET,
    CHAT_ID,
    FeishuOpenPlatform,
    Reply,
    feishu_open_platform,
)
from tests.integration.notifier_channel_harness import GATEWAY, channel_for, notification, renderer
from tests.integration.notifier_stack import (
    MakeBus,
    Stack,
    delivery_log,
    make_publisher,
    named_alert,
    statuses,
    wait_for,
)
from tests.integration.test_notifier_channels_chat import client, db, stack

pytestmark = pytest.mark.integration
__all__ = ["client", "db", "stack"]  # fixtures shared with the other chat channels' tests


@pytest.fixture
async def platform() -> AsyncIterator[FeishuOpenPlatform]:
    async for p in feishu_open_platform():
        yield p


def approval_notification() -> Notification:
    """A recovery step waiting for approval (the catalogue's `recovery.planned`), as the notifier groups it."""
    notice = notice_from(example_events()[RecoveryPlanned.event_type])
    assert notice is not None and notice.approval is not None
    return dataclasses.replace(notification("firing"), alerts=(notice,))


def receiver(platform: FeishuOpenPlatform, **extra: Any) -> dict[str, Any]:
    return {"feishu_configs": [platform.config(**extra)]}


def buttons(card: dict[str, Any]) -> list[dict[str, Any]]:
    return [b for e in card["elements"] if e["tag"] == "action" for b in e["actions"]]


def assert_no_secret(outcome: Outcome) -> None:
    assert outcome.error
    assert APP_SECRET not in outcome.error and "t-0" not in outcome.error, outcome.error


async def test_an_approval_notice_is_a_card_with_approve_and_reject_naming_the_step(
    platform: FeishuOpenPlatform, client: httpx.AsyncClient
) -> None:
    outcome = await channel_for(client, receiver(platform)).send(approval_notification())
    assert outcome == Outcome(True, 200)
    [sent] = platform.messages
    assert platform.token_requests == 1 and sent.token.startswith("t-0001")
    assert (sent.body["receive_id"], sent.body["msg_type"], len(sent.body["uuid"])) == (CHAT_ID, "interactive", 32)
    assert sent.card["header"]["template"] == "red" and sent.card["config"]["update_multi"] is True
    decisions = [b for b in buttons(sent.card) if "value" in b]
    approve, reject = decisions
    assert (approve["value"]["action"], approve["type"], reject["value"]["action"], reject["type"]) == (
        ACTION_APPROVE,
        "primary",
        ACTION_REJECT,
        "danger",
    )
    assert parse_step_value(approve["value"]["step"]) == parse_step_value(reject["value"]["step"]) == (RECOVERY_ID, 2)
    assert approve["text"]["content"].startswith("Approve (until ") and "confirm" in approve
    assert "url" not in approve and "url" not in reject  # a button with a URL opens it and posts no callback
    assert any(b.get("url", "").startswith(f"{GATEWAY}/v1/incidents/") for b in buttons(sent.card))


async def test_a_plain_alert_and_a_resolved_one_carry_no_decision_buttons(
    platform: FeishuOpenPlatform, client: httpx.AsyncClient
) -> None:
    channel = channel_for(client, {"language": "zh-CN", **receiver(platform)})
    assert (await channel.send(notification("firing"))).delivered
    resolved = dataclasses.replace(approval_notification(), status="resolved")
    resolved = dataclasses.replace(
        resolved, alerts=tuple(a.model_copy(update={"status": "resolved"}) for a in resolved.alerts)
    )
    assert (await channel.send(resolved)).delivered
    firing, done = (m.card for m in platform.messages)
    assert all("value" not in b for b in buttons(firing) + buttons(done))
    assert done["header"]["template"] == "green"
    assert buttons(firing)[0]["text"]["content"] == "查看事件"


async def test_the_token_is_reused_renewed_when_due_and_fetched_again_when_refused(
    platform: FeishuOpenPlatform, client: httpx.AsyncClient
) -> None:
    now = [1000.0]
    config = FeishuConfig.model_validate(platform.config())
    channel = FeishuAppChannel(config, renderer(), client, clock=lambda: now[0])
    for _ in range(2):
        assert (await channel.send(notification())).delivered
    assert platform.token_requests == 1  # one token for both
    now[0] += 7200 - 1800  # under 30 minutes left: Feishu would hand out a new one
    assert (await channel.send(notification())).delivered
    assert platform.token_requests == 2
    platform.revoke()  # the platform no longer takes it (99991663): fetched again, sent once
    assert (await channel.send(notification())).delivered
    assert platform.token_requests == 3
    assert [m.token[:6] for m in platform.messages] == ["t-0001", "t-0001", "t-0002", "t-0003"]


async def test_a_rate_limit_is_retryable_after_the_platforms_window(
    platform: FeishuOpenPlatform, client: httpx.AsyncClient
) -> None:
    platform.script = [Reply(99991400, 429, reset="3"), Reply(230020, 400)]
    channel = channel_for(client, receiver(platform))
    limited = await channel.send(notification())
    assert (limited.delivered, limited.retryable, limited.retry_after, limited.status_code) == (False, True, 3.0, 429)
    assert "99991400" in (limited.error or "")
    frequency = await channel.send(notification())
    assert (frequency.retryable, frequency.retry_after) == (True, 1.0)
    assert "230020" in (frequency.error or "")
    assert (await channel.send(notification())).delivered


@pytest.mark.parametrize(
    ("wrong", "code"),
    [({"chat_id": "oc_not_a_chat_of_the_bot"}, "230002"), ({"app_secret": "not-the-apps-secret"}, "10014")],
)
async def test_a_refusal_is_final_and_names_no_secret(
    wrong: dict[str, str], code: str, platform: FeishuOpenPlatform, client: httpx.AsyncClient
) -> None:
    refused = await channel_for(client, receiver(platform, **wrong)).send(notification())
    assert (refused.delivered, refused.retryable) == (False, False)
    assert code in (refused.error or "")
    assert_no_secret(refused)
    assert "not-the-apps-secret" not in (refused.error or "")


def test_a_feishu_integration_is_one_bot_or_the_other() -> None:
    with pytest.raises(ValueError, match="needs `url`"):
        FeishuConfig.model_validate({"app_id": "cli_x", "chat_id": "oc_x"})
    with pytest.raises(ValueError, match="exclude each other"):
        FeishuConfig.model_validate(
            {"url": "https://open.feishu.cn/x", "app_id": "cli_x", "app_secret": "s", "chat_id": "c"}
        )
    assert "**" in repr(FeishuConfig.model_validate({"app_id": "a", "app_secret": APP_SECRET, "chat_id": "c"}))


# --- inside the real notifier ---------------------------------------------------------------------------------
def yaml_for(platform: FeishuOpenPlatform, max_attempts: int) -> str:
    config = platform.config()
    return f"""
route:
  receiver: team
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1m
  repeat_interval: 4h
receivers:
  - name: team
    language: zh-CN
    feishu_configs:
      - app_id: "{config["app_id"]}"
        app_secret: "{config["app_secret"]}"
        chat_id: "{config["chat_id"]}"
        api_url: "{config["api_url"]}"
        max_attempts: {max_attempts}
"""


async def test_in_the_notifier_retried_delivered_refused_and_dead_lettered(
    platform: FeishuOpenPlatform, stack: Stack, db: Database, make_bus: MakeBus
) -> None:
    publisher: Bus = await make_publisher(make_bus)
    await stack.start(yaml_for(platform, max_attempts=3))

    platform.script = [Reply(99991400, 429, reset="1")]  # rate limited once, then delivered
    await publisher.publisher.publish(named_alert("First"))

    async def delivered() -> bool:
        return await statuses(db) == ["delivered"]

    await wait_for(delivered)
    assert len(platform.messages) == 2 and platform.messages[1].at - platform.messages[0].at >= 1.0
    assert platform.messages[0].body["uuid"] == platform.messages[1].body["uuid"]  # one message for Feishu
    assert [r.outcome for r in await delivery_log(db)] == ["retry", "delivered"]

    platform.default = Reply(230002, 400)  # the bot was removed from the chat: refused for good, one attempt
    await publisher.publisher.publish(named_alert("Second"))

    async def one_dead() -> bool:
        return sorted(await statuses(db)) == ["dead", "delivered"]

    await wait_for(one_dead)
    assert len(platform.messages) == 3

    platform.default = Reply(99991400, 429, reset="0")  # a platform that stays rate limited
    await publisher.publisher.publish(named_alert("Third"))

    async def two_dead() -> bool:
        return sorted(await statuses(db)) == ["dead", "dead", "delivered"]

    await wait_for(two_dead)
    assert len(platform.messages) == 6  # three attempts, then the dead letter
    assert [r.outcome for r in await delivery_log(db)][-4:] == ["dead", "retry", "retry", "dead"]
    assert platform.token_requests == 1  # one token for all of them
    assert all(APP_SECRET not in (r.error or "") for r in await delivery_log(db))
