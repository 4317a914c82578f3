"""Opsgenie, Telegram, Discord, Google Chat and Webex against stand-ins of their APIs on 127.0.0.1
(tests/integration/web_providers.py). Per channel: delivery in the provider's format with the incident link; the
provider's rate limit is retryable after the wait it names; a refused credential is final and names no secret;
the resolve message (Opsgenie closes the alert it opened, by alias). Then inside the real notifier: rate limited
once then delivered, refused for good and dead-lettered after one attempt."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from opsbus.common.bus import Bus
from opsbus.common.store import Database
from opsbus.notifier.channels import Outcome
from opsbus.notifier.channels.opsgenie import alias
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
from tests.integration.web_providers import PROVIDERS, SECRETS, WebProviders, web_providers

pytestmark = pytest.mark.integration
WAIT = {"opsgenie": 1.0, "telegram": 3.0, "discord": 2.0, "googlechat": None, "webex": 2.0}


@pytest.fixture
async def providers() -> AsyncIterator[WebProviders]:
    async for p in web_providers():
        yield p


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async for c in http_client():
        yield c


async def send(client: httpx.AsyncClient, provider: str, config: dict[str, Any], status: str = "firing") -> Outcome:
    return await channel_for(client, {f"{provider}_configs": [config]}).send(traced(notification(status)))


def said(provider: str, body: dict[str, Any]) -> str:
    """What the message says, wherever the provider keeps it."""
    if provider == "opsgenie":
        return str(body.get("message", "")) + str(body.get("description", "")) + str(body.get("details", ""))
    if provider == "discord":
        embed = body["embeds"][0]
        return str(embed["title"]) + str(embed["description"]) + str(embed["url"])
    return str(body["markdown"] if provider == "webex" else body["text"])


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_delivered_in_the_providers_format(
    provider: str, providers: WebProviders, client: httpx.AsyncClient
) -> None:
    outcome = await send(client, provider, providers.integration(provider))
    assert outcome.delivered, outcome
    [hit] = providers.hits
    text = said(provider, hit.body)
    assert "KubePodCrashLooping" in text and f"{GATEWAY}/v1/incidents/" in text
    if provider == "opsgenie":
        assert hit.path == "/v2/alerts" and hit.body["priority"] == "P1" and hit.body["alias"].startswith("opsbus-")
    if provider == "discord":
        assert hit.body["allowed_mentions"] == {"parse": []} and hit.body["embeds"][0]["color"] == 0xD93F0B


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_the_providers_rate_limit_is_retryable(
    provider: str, providers: WebProviders, client: httpx.AsyncClient
) -> None:
    providers.script = ["limited"]
    limited = await send(client, provider, providers.integration(provider))
    assert (limited.delivered, limited.retryable, limited.status_code) == (False, True, 429)
    assert limited.retry_after == WAIT[provider]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_refused_credential_is_final_and_names_no_secret(
    provider: str, providers: WebProviders, client: httpx.AsyncClient
) -> None:
    wrong = providers.wrong_credential(provider)
    refused = await send(client, provider, providers.integration(provider, **wrong))
    assert (refused.delivered, refused.retryable) == (False, False), refused
    for secret in (*SECRETS, *wrong.values()):
        assert secret not in (refused.error or ""), refused.error


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_the_resolve_message(provider: str, providers: WebProviders, client: httpx.AsyncClient) -> None:
    assert (await send(client, provider, providers.integration(provider))).delivered
    assert (await send(client, provider, providers.integration(provider), status="resolved")).delivered
    fired, resolved = providers.hits
    if provider == "opsgenie":  # the alert it opened is closed, found by its alias
        assert resolved.path == f"/v2/alerts/{fired.body['alias']}/close"
        assert fired.body["alias"] == alias(notification("resolved"))
    else:
        assert "RESOLVED" in said(provider, resolved.body)


# --- inside the real notifier ---------------------------------------------------------------------------------
@pytest.fixture
async def stack(database_url: str, nats_url: str) -> AsyncIterator[Stack]:
    async for s in notifier_stack(database_url, nats_url):
        yield s


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    async for d in notifier_db(database_url):
        yield d


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_in_the_notifier_retried_then_delivered_and_a_refusal_dead_lettered(
    provider: str, providers: WebProviders, stack: Stack, db: Database, make_bus: MakeBus
) -> None:
    publisher: Bus = await make_publisher(make_bus)
    integration = {**providers.integration(provider), "max_attempts": 3}
    await stack.start(f"""
route: {{receiver: team, group_by: [alertname], group_wait: 0s, group_interval: 1m, repeat_interval: 4h}}
receivers:
  - name: team
    {provider}_configs: [{json.dumps(integration)}]
""")
    providers.script = ["limited"]
    await publisher.publisher.publish(named_alert("First"))

    async def delivered() -> bool:
        return await statuses(db) == ["delivered"]

    await wait_for(delivered, timeout=30.0)
    assert [r.outcome for r in await delivery_log(db)] == ["retry", "delivered"]

    providers.script = ["refused"]  # the provider refuses the credential (rotated, revoked)
    await publisher.publisher.publish(named_alert("Second"))

    async def one_dead() -> bool:
        return sorted(await statuses(db)) == ["dead", "delivered"]

    await wait_for(one_dead, timeout=30.0)
    assert len(providers.hits) == 3  # no retry of a refusal
