"""DingTalk (钉钉), WeCom (企业微信) and Feishu (飞书) against stand-ins of their robot APIs on 127.0.0.1
(tests/integration/chat_providers.py checks the credential, the signature, the schema and the size limits, and
answers with the provider's own codes).

Per channel, built from receiver configuration exactly as the service builds it: delivery in the provider's
format with buttons to the incident and the trace; a rate-limit code is retryable after the provider's window;
a refusal (a wrong signing secret, an invalid key) is final and names no secret; a resolve message, in Chinese
for a `language: zh-CN` receiver. Then each channel inside the real notifier (NATS, PostgreSQL): a rate limit
retried then delivered once, a permanent refusal dead-lettered without a retry, and a robot that stays rate
limited dead-lettered after the last attempt.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from opsbus.common.bus import Bus
from opsbus.common.store import Database
from opsbus.notifier.channels import Outcome
from tests.integration.chat_providers import SECRETS, ChatProviders, Reply, chat_providers, receiver
from tests.integration.notifier_channel_harness import GATEWAY, channel_for, http_client, notification, traced
from tests.integration.notifier_stack import (
    MakeBus,
    Stack,
    delivery_log,
    make_publisher,
    named_alert,
    notifier_db,
    notifier_stack,
    statuses,
    wait_for,
)

pytestmark = pytest.mark.integration
PROVIDERS = ["dingtalk", "wecom", "feishu"]
RATE_LIMIT = {"dingtalk": (130101, 60.0), "wecom": (45009, 60.0), "feishu": (11232, 1.0)}


@pytest.fixture
async def providers() -> AsyncIterator[ChatProviders]:
    async for p in chat_providers():
        yield p


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async for c in http_client():
        yield c


async def send(client: httpx.AsyncClient, config: dict[str, Any], status: str = "firing") -> Outcome:
    return await channel_for(client, config).send(traced(notification(status)))


def text_of(provider: str, body: dict[str, Any]) -> str:
    if provider == "dingtalk":
        return str((body.get("actionCard") or body["markdown"])["text"])
    if provider == "wecom":
        return str((body.get("markdown") or body["text"])["content"])
    return str(body["card"]["header"]["title"]["content"]) + str(body["card"]["elements"][0]["content"])


# --- each channel on its own ----------------------------------------------------------------------------------
@pytest.mark.parametrize("provider", PROVIDERS)
async def test_delivered_signed_in_the_providers_format(
    provider: str, providers: ChatProviders, client: httpx.AsyncClient
) -> None:
    outcome = await send(client, receiver(provider, providers))
    assert outcome == Outcome(True, 200)
    [hit] = providers.hits
    text = text_of(provider, hit.body)
    assert "KubePodCrashLooping" in text and "STRIPE_API_BASE is not set" in text  # title and evidence
    incident = f"{GATEWAY}/v1/incidents/"
    if provider == "dingtalk":
        assert hit.body["msgtype"] == "actionCard"
        buttons = hit.body["actionCard"]["btns"]
        assert buttons[0]["actionURL"].startswith(incident)
        assert buttons[1]["actionURL"].endswith("/trace/4bf92f3577b34da6a3ce929d0e0e4736")
    elif provider == "feishu":
        [action] = [e for e in hit.body["card"]["elements"] if e["tag"] == "action"]
        assert action["actions"][0]["url"].startswith(incident)
        assert action["actions"][1]["url"].endswith("/trace/4bf92f3577b34da6a3ce929d0e0e4736")
        assert hit.body["card"]["header"]["template"] == "red"
    else:
        assert hit.body["msgtype"] == "markdown" and incident in text and "/trace/4bf92f3577b34da6" in text


async def test_dingtalk_mentions_are_markdown_and_wecom_mobiles_are_text(
    providers: ChatProviders, client: httpx.AsyncClient
) -> None:
    assert (await send(client, receiver("dingtalk", providers, at_mobiles=["13800000000"]))).delivered
    assert (await send(client, receiver("wecom", providers, mention_mobiles=["13800000000"]))).delivered
    assert (await send(client, receiver("wecom", providers, mention_user_ids=["zhangsan"]))).delivered
    dingtalk, wecom_text, wecom_markdown = (h.body for h in providers.hits)
    assert dingtalk["msgtype"] == "markdown" and dingtalk["at"]["atMobiles"] == ["13800000000"]
    assert dingtalk["markdown"]["text"].endswith("@13800000000")
    assert wecom_text["msgtype"] == "text" and wecom_text["text"]["mentioned_mobile_list"] == ["13800000000"]
    assert wecom_markdown["markdown"]["content"].endswith("<@zhangsan>")


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_rate_limit_code_is_retryable_after_the_providers_window(
    provider: str, providers: ChatProviders, client: httpx.AsyncClient
) -> None:
    code, window = RATE_LIMIT[provider]
    providers.script = [Reply(code), Reply(code, retry_after="7")]
    limited = await send(client, receiver(provider, providers))
    assert (limited.delivered, limited.retryable, limited.retry_after) == (False, True, window)
    assert str(code) in (limited.error or "")
    told = await send(client, receiver(provider, providers))
    assert told.retry_after == 7.0  # a Retry-After header, when the provider sends one, wins


@pytest.mark.parametrize(
    ("provider", "wrong", "code"),
    [
        ("dingtalk", {"secret": "SECnotTheRobotsSecret"}, "310000"),
        ("wecom", {"url": "key=not-the-key"}, "93000"),
        ("feishu", {"secret": "notTheBotsSecret"}, "19021"),
    ],
)
async def test_a_refusal_is_final_and_names_no_secret(
    provider: str, wrong: dict[str, str], code: str, providers: ChatProviders, client: httpx.AsyncClient
) -> None:
    if "url" in wrong:
        wrong = {"url": providers.url(provider).split("key=")[0] + wrong["url"]}
    refused = await send(client, receiver(provider, providers, **wrong))
    assert (refused.delivered, refused.retryable) == (False, False)
    assert code in (refused.error or "")
    for secret in (*SECRETS, *wrong.values()):
        assert secret not in (refused.error or "")


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_the_resolve_message_in_chinese_for_a_chinese_receiver(
    provider: str, providers: ChatProviders, client: httpx.AsyncClient
) -> None:
    assert (await send(client, {"language": "zh-CN", **receiver(provider, providers)}, status="resolved")).delivered
    [hit] = providers.hits
    text = text_of(provider, hit.body)
    assert "[已恢复] KubePodCrashLooping" in text and "（已恢复）" in text  # noqa: RUF001
    if provider == "feishu":
        assert hit.body["card"]["header"]["template"] == "green"
        assert hit.body["card"]["elements"][1]["actions"][0]["text"]["content"] == "查看事件"


# --- inside the real notifier ---------------------------------------------------------------------------------
@pytest.fixture
async def stack(database_url: str, nats_url: str) -> AsyncIterator[Stack]:
    async for s in notifier_stack(database_url, nats_url):
        yield s


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    async for d in notifier_db(database_url):
        yield d


def yaml_for(provider: str, providers: ChatProviders, max_attempts: int) -> str:
    secret = {"dingtalk": "SECdingtalkSECRET0123456789", "feishu": "feishuSECRET0123456789"}.get(provider)
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
    {provider}_configs:
      - url: "{providers.url(provider)}"
        max_attempts: {max_attempts}
{f'        secret: "{secret}"' if secret else ""}
"""


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_in_the_notifier_retried_delivered_refused_and_dead_lettered(
    provider: str, providers: ChatProviders, stack: Stack, db: Database, make_bus: MakeBus
) -> None:
    code, _ = RATE_LIMIT[provider]
    publisher: Bus = await make_publisher(make_bus)
    await stack.start(yaml_for(provider, providers, max_attempts=3))

    providers.script = [Reply(code, retry_after="1")]  # rate limited once, then delivered
    await publisher.publisher.publish(named_alert("First"))

    async def delivered() -> bool:
        return await statuses(db) == ["delivered"]

    await wait_for(delivered)
    assert len(providers.hits) == 2 and providers.hits[1].at - providers.hits[0].at >= 1.0
    assert [r.outcome for r in await delivery_log(db)] == ["retry", "delivered"]

    providers.default = Reply(40035 if provider == "dingtalk" else 40008 if provider == "wecom" else 9499)
    await publisher.publisher.publish(named_alert("Second"))  # refused for good: one attempt

    async def one_dead() -> bool:
        return sorted(await statuses(db)) == ["dead", "delivered"]

    await wait_for(one_dead)
    assert len(providers.hits) == 3

    providers.default = Reply(code, retry_after="0")  # a robot that stays rate limited
    await publisher.publisher.publish(named_alert("Third"))

    async def two_dead() -> bool:
        return sorted(await statuses(db)) == ["dead", "dead", "delivered"]

    await wait_for(two_dead)
    assert len(providers.hits) == 6  # three attempts, then the dead letter
    assert [r.outcome for r in await delivery_log(db)][-4:] == ["dead", "retry", "retry", "dead"]
