"""SMS through Alibaba Cloud (Dysmsapi `SendSms`) and Twilio, against stand-ins of their APIs on 127.0.0.1
(tests/integration/sms_providers.py recomputes Alibaba's RPC signature and checks Twilio's credentials, E.164
numbers and senders). Per provider: delivery of a short text (severity, what, where, link) or of template
parameters; a provider rate limit is retryable; a refusal is final and names no secret; the resolve message;
numbers that are not E.164 are refused when the configuration is read. Then inside the real notifier: each
recipient is its own delivery, and an SMS flood is held back per recipient by the default rate limit."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from opsbus.common.bus import Bus
from opsbus.common.store import Database
from opsbus.notifier.channels import Outcome
from opsbus.notifier.domain.config import ReceiverConfig
from tests.integration.notifier_channel_harness import channel_for, http_client, notification
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
from tests.integration.sms_providers import SECRETS, SmsProviders, receiver, sms_providers

pytestmark = pytest.mark.integration
PROVIDERS = ["aliyun_sms", "twilio"]
CN = "+8613800000000"


@pytest.fixture
async def providers() -> AsyncIterator[SmsProviders]:
    async for p in sms_providers():
        yield p


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async for c in http_client():
        yield c


async def send(client: httpx.AsyncClient, config: dict[str, Any], status: str = "firing") -> Outcome:
    return await channel_for(client, config).send(notification(status))


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_delivered_short_with_a_link(provider: str, providers: SmsProviders, client: httpx.AsyncClient) -> None:
    assert await send(client, receiver(provider, providers, [CN])) == Outcome(
        True, 201 if provider == "twilio" else 200
    )
    [(_, form)] = providers.sent
    if provider == "aliyun_sms":
        assert form["PhoneNumbers"] == CN and form["SignName"] == "运维平台"
        params = json.loads(form["TemplateParam"])
        assert params["status"] == "FIRING" and params["alert"] == "KubePodCrashLooping"
        assert params["link"].startswith("https://opsbus.example.com/v1/incidents/")
    else:
        assert form["To"] == CN and form["From"] == "+15005550006"
        assert form["Body"].startswith("[FIRING] critical KubePodCrashLooping")
        assert len(form["Body"]) <= 300 and "https://opsbus.example.com/v1/incidents/" in form["Body"]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_the_resolve_message_in_chinese(
    provider: str, providers: SmsProviders, client: httpx.AsyncClient
) -> None:
    config = {"language": "zh-CN", **receiver(provider, providers, [CN])}
    assert (await send(client, config, status="resolved")).delivered
    [(_, form)] = providers.sent
    said = json.loads(form["TemplateParam"])["status"] if provider == "aliyun_sms" else form["Body"]
    assert "已恢复" in said


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_provider_rate_limit_is_retryable(
    provider: str, providers: SmsProviders, client: httpx.AsyncClient
) -> None:
    providers.aliyun_script = ["isv.BUSINESS_LIMIT_CONTROL"]
    providers.twilio_script = [(429, 20429)]
    limited = await send(client, receiver(provider, providers, [CN]))
    assert (limited.delivered, limited.retryable) == (False, True)
    assert limited.retry_after == (60.0 if provider == "aliyun_sms" else 1.0)


@pytest.mark.parametrize(
    ("provider", "wrong", "said"),
    [
        ("aliyun_sms", {"access_key_secret": "notTheSecret0123456789"}, "SignatureDoesNotMatch"),
        ("twilio", {"auth_token": "notTheToken0123456789"}, "20003"),
    ],
)
async def test_a_refusal_is_final_and_names_no_secret(
    provider: str, wrong: dict[str, str], said: str, providers: SmsProviders, client: httpx.AsyncClient
) -> None:
    refused = await send(client, receiver(provider, providers, [CN], **wrong))
    assert (refused.delivered, refused.retryable) == (False, False)
    assert said in (refused.error or "")
    for secret in (*SECRETS, *wrong.values()):
        assert secret not in (refused.error or "")


@pytest.mark.parametrize("provider", PROVIDERS)
def test_numbers_must_be_e164(provider: str, providers: SmsProviders) -> None:
    with pytest.raises(ValidationError, match=r"not E\.164 numbers .*13800000000"):
        ReceiverConfig.model_validate({"name": "x", **receiver(provider, providers, ["13800000000"])})


# --- inside the real notifier ---------------------------------------------------------------------------------
@pytest.fixture
async def stack(database_url: str, nats_url: str) -> AsyncIterator[Stack]:
    async for s in notifier_stack(database_url, nats_url):
        yield s


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    async for d in notifier_db(database_url):
        yield d


async def test_each_recipient_is_its_own_delivery_and_a_flood_is_held_back_per_recipient(
    providers: SmsProviders, stack: Stack, db: Database, make_bus: MakeBus
) -> None:
    publisher: Bus = await make_publisher(make_bus)
    config = receiver("twilio", providers, [CN, "+14155550100"], rate_limit={"per_second": 0.01, "burst": 2})
    twilio = json.dumps(config["twilio_configs"][0])
    await stack.start(f"""
route: {{receiver: oncall, group_by: [alertname], group_wait: 0s, group_interval: 1m, repeat_interval: 4h}}
receivers:
  - name: oncall
    twilio_configs: [{twilio}]
""")
    for n in range(4):  # four different alerts at once: a flood
        await publisher.publisher.publish(named_alert(f"Flood{n}"))

    async def four_sent() -> bool:
        return len(providers.sent) >= 4

    await wait_for(four_sent)
    await wait_for(lambda: _settled(db))
    sent_to = sorted(form["To"] for _, form in providers.sent)
    assert sent_to == sorted([CN, CN, "+14155550100", "+14155550100"])  # two each: the burst, then held back
    assert sorted(await statuses(db)).count("delivered") == 4
    assert sorted(await statuses(db)).count("pending") == 4  # not dropped: sent when the rate allows
    assert [r.outcome for r in await delivery_log(db)].count("delivered") == 4


async def _settled(db: Database) -> bool:
    return len(await statuses(db)) == 8
