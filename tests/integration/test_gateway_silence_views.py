"""The console's notification views through the gateway, with the real notifier (its real wiring, real NATS and
PostgreSQL, a real HTTP receiver): the preview of a silence names the firing alert it would mute, the delivery
log shows a failed attempt and its retry, and after the silence an incident's notification reads `muted`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from opsbus.common.bus import Bus
from opsbus.common.events.payloads import AlertFired
from opsbus.common.settings import DatabaseSettings
from opsbus.common.store import upgrade
from opsbus.notifier import store
from tests.integration.gateway_stack import GatewayStack, gateway_stack
from tests.integration.notifier_stack import (
    MakeBus,
    Receiver,
    Stack,
    alert_fired,
    make_publisher,
    webhook_receiver,
    yaml_config,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def stack(database_url: str, nats_url: str) -> AsyncIterator[GatewayStack]:
    async for s in gateway_stack(database_url, nats_url):
        yield s


@pytest.fixture
async def notifier(database_url: str, nats_url: str) -> AsyncIterator[Stack]:
    await upgrade(DatabaseSettings.model_validate({"url": database_url}), store.MIGRATIONS, store.SCHEMA)
    s = Stack(database_url, nats_url)
    yield s
    await s.stop_all()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async for r in webhook_receiver():
        yield r


@pytest.fixture
async def publisher_bus(make_bus: MakeBus) -> Bus:
    return await make_publisher(make_bus)


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


async def eventually(probe: Callable[[], Awaitable[Any]], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.1)


async def test_preview_deliveries_and_a_muted_notification_through_the_gateway(
    stack: GatewayStack, notifier: Stack, receiver: Receiver, publisher_bus: Bus
) -> None:
    receiver.script = [(503, {})]  # the first attempt fails, the retry is delivered
    notifier.env["HOOK_URL"] = receiver.url()
    await notifier.start(yaml_config("${HOOK_URL}", group_wait="0s", group_interval="1s"))
    await stack.start()
    operator = await stack.key("operator")
    scoped = await stack.key("operator", namespaces=["shop"])

    first = alert_fired()  # KubePodCrashLooping in payments, pod checkout-...-x2x4q
    await publisher_bus.publisher.publish(first)
    async with stack.client(operator) as c:

        async def delivered() -> list[dict[str, Any]]:
            items: list[dict[str, Any]] = ok(await c.get("/v1/notifications/deliveries"))["items"]
            return items if any(i["outcome"] == "delivered" for i in items) else []

        log = await eventually(delivered)
        assert [(i["outcome"], i["attempt"], i["status_code"]) for i in log] == [
            ("delivered", 2, 200),
            ("retry", 1, 503),
        ]
        assert log[0]["receiver"] == "team" and log[0]["notification_id"] == log[1]["notification_id"]
        retries = ok(await c.get("/v1/notifications/deliveries", params={"outcome": "retry"}))["items"]
        assert [i["attempt"] for i in retries] == [1]
        page = ok(await c.get("/v1/notifications/deliveries", params={"limit": 1}))
        assert len(page["items"]) == 1 and page["next_before"] == log[0]["id"]
        older = ok(await c.get("/v1/notifications/deliveries", params={"before": page["next_before"]}))["items"]
        assert [i["outcome"] for i in older] == ["retry"]

        matchers = ['namespace="payments"', 'alertname="KubePodCrashLooping"']
        preview = ok(await c.post("/v1/silences/preview", json={"matchers": matchers}))
        fingerprint = first.payload_as(AlertFired).fingerprint
        assert [a["fingerprint"] for a in preview["alerts"]] == [fingerprint] and preview["firing"] == 1
        other = ok(await c.post("/v1/silences/preview", json={"matchers": ['namespace="shop"']}))
        assert other == {"alerts": [], "firing": 1}
        assert ok(await c.post("/v1/silences/preview", json={"matchers": ["not a matcher"]}), 422)

    async with stack.client(scoped) as c:
        ok(await c.post("/v1/silences/preview", json={"matchers": matchers}), 403)  # another tenant's alerts
        ok(await c.get("/v1/notifications/deliveries"), 403)  # the log is not namespaced
        ok(await c.get(f"/v1/incidents/{first.id}/notifications"), 404)

    async with stack.client(operator) as c:
        notes = await eventually(
            lambda: _outcomes(c, first.id, "delivered"),
        )
        assert notes and notes[0]["receiver"] == "team"
        silence = ok(
            await c.post("/v1/silences", json={"matchers": matchers, "duration_seconds": 600, "comment": "deploying"}),
            201,
        )
        alert = first.payload_as(AlertFired)
        second_alert = alert.model_copy(
            update={"fingerprint": "9f3a9c2d41e07b66", "labels": {**alert.labels, "pod": "checkout-7d9f8b6c5-abcde"}}
        )
        second = first.model_copy(
            update={
                "id": "0195b2f0-9e21-7c4b-8a11-bbbbbbbbbbbb",
                "correlationid": "0195b2f0-9e21-7c4b-8a11-bbbbbbbbbbbb",
                "data": second_alert.model_dump(mode="json"),
            }
        )
        requests_before = len(receiver.requests)
        await publisher_bus.publisher.publish(second)
        muted = await eventually(lambda: _outcomes(c, second.id, "muted"))
        assert muted and silence["id"] in (muted[0]["reason"] or "")
        await asyncio.sleep(0.5)
        assert len(receiver.requests) == requests_before  # nothing more was sent


async def _outcomes(c: Any, incident_id: str, state: str) -> list[dict[str, Any]]:
    response = await c.get(f"/v1/incidents/{incident_id}/notifications")
    if response.status_code == 404:  # the gateway has not read the alert yet
        return []
    items: list[dict[str, Any]] = ok(response)["items"]
    return [i for i in items if i["state"] == state]
