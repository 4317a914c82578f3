"""Silences, routing and the delivery log in a real browser (Debian's Chromium through Playwright) against the real
gateway and the real notifier (its real wiring, as `tests/integration/notifier_stack.py` runs it) on real NATS and
PostgreSQL, with a real HTTP receiver behind the notifier's webhook.

* Silence an incident from its page: the silence form is prefilled with the incident's labels, its preview names
  the incident's alert, and the notifier, flushing the alert's group after the silence exists, mutes the
  notification instead of sending it: the incident's notifications read "muted (silenced by <the silence>)" and
  the receiver got nothing for it. Expired from the list by keyboard, the silence lets the notification go out.
* While the notifier holds the group: the delivery log (reached by keyboard) shows an earlier alert's failed
  attempt and its retry, filtered by outcome in the URL; the routing page shows the tree in force.

axe-core runs on each page in English and in Chinese: no serious or critical violation."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import BrowserContext, expect

from opsbus.common.bus import Bus
from opsbus.common.events.payloads import AlertFired
from opsbus.common.settings import DatabaseSettings
from opsbus.common.store import upgrade
from opsbus.notifier import store
from tests.browser.harness import both_languages, browser, crash_alert, require_console, sign_in, tab_to
from tests.integration.gateway_stack import GatewayStack, gateway_stack
from tests.integration.notifier_stack import Receiver, Stack, webhook_receiver

pytestmark = [pytest.mark.integration, pytest.mark.browser]
__all__ = ["browser"]  # a fixture, from the harness

#: how long the notifier holds a new `payments` group before its first notification: the time the operator has
#: to silence the incident from the console (the journey takes a few seconds; the budget allows for a loaded CI)
PAYMENTS_GROUP_WAIT_S = 30

ROUTES = f"""
route:
  receiver: team
  group_by: [alertname, namespace]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 4h
  routes:
    - matchers: ['namespace="payments"']
      group_wait: {PAYMENTS_GROUP_WAIT_S}s
receivers:
  - name: team
    webhook_configs:
      - url: ${{HOOK_URL}}
        secret: ${{HOOK_SECRET}}
"""


@pytest.fixture
async def stack(database_url: str, nats_url: str) -> AsyncIterator[GatewayStack]:
    require_console()
    async for s in gateway_stack(database_url, nats_url):
        await s.start(key_cache_seconds=0, console={"insecure_loopback_cookie": True})
        yield s


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async for r in webhook_receiver():
        yield r


@pytest.fixture
async def notifier(database_url: str, nats_url: str, receiver: Receiver) -> AsyncIterator[Stack]:
    await upgrade(DatabaseSettings.model_validate({"url": database_url}), store.MIGRATIONS, store.SCHEMA)
    s = Stack(database_url, nats_url)
    s.env["HOOK_URL"] = receiver.url()
    await s.start(ROUTES)
    yield s
    await s.stop_all()


@pytest.fixture
async def bus(make_bus: Any) -> Bus:
    made: Bus = await make_bus("watcher")
    await made.ensure_streams()
    return made


def fingerprints(receiver: Receiver) -> set[str]:
    """The fingerprints of every alert the receiver was told about."""
    return {a["fingerprint"] for r in receiver.requests for a in r.json().get("alerts", [])}


async def test_silence_an_incident_from_its_page_and_see_its_notification_muted(
    stack: GatewayStack, notifier: Stack, receiver: Receiver, browser: BrowserContext, bus: Bus
) -> None:
    receiver.script = [(503, {})]  # the first attempt of the first notification fails, its retry is delivered
    earlier = crash_alert("shop", "web-1")  # its group has no wait: told at once, before the journey
    await bus.publisher.publish(earlier)
    page = await browser.new_page()
    await sign_in(page, stack.url, await stack.key("operator"))
    await page.get_by_role("link", name="Incidents").click()
    await page.get_by_text("1 incidents").wait_for()

    incident = crash_alert("payments", "checkout-1")
    fired = time.monotonic()
    await bus.publisher.publish(incident)
    await page.get_by_role("link", name="KubePodCrashLooping: pod checkout-1 is crash-looping").click()
    await page.get_by_role("link", name="Silence this incident").click()

    # the form holds the incident's labels as matchers; the preview names its alert, not the other one firing
    await expect(page.get_by_text(f"Silencing incident {incident.id}")).to_be_visible()
    matchers = page.get_by_label("Matchers")
    for label in ('alertname="KubePodCrashLooping"', 'namespace="payments"', 'pod="checkout-1"'):
        await expect(matchers).to_contain_text(label)
    await page.get_by_role("button", name="Preview").click()
    await expect(page.get_by_text("1 of 2 firing alerts would be muted.")).to_be_visible()
    await expect(page.get_by_role("region", name="Firing alerts this silence would mute")).to_contain_text(
        'pod="checkout-1"'
    )
    await page.get_by_label("Comment").fill("checkout is being redeployed")
    await page.get_by_role("button", name="Create silence").click()
    created = page.get_by_role("status").filter(has_text="Silence ")
    await expect(created).to_contain_text("created until")
    silenced_after = time.monotonic() - fired
    assert silenced_after < PAYMENTS_GROUP_WAIT_S, f"the silence came {silenced_after:.0f} s after the alert"
    silence_id = (await created.inner_text()).split()[1]
    await both_languages(page, "silences, created from an incident")
    silences_page = page.url

    # while the notifier holds the group: the delivery log and the routing tree, reached by keyboard
    await tab_to(page, "Delivery log")
    await page.keyboard.press("Enter")
    attempts = page.get_by_role("table", name="Delivery attempts")
    await expect(attempts.locator("tbody tr")).to_have_count(2)
    await expect(attempts.locator("tbody tr").nth(0)).to_contain_text("Delivered")
    await expect(attempts.locator("tbody tr").nth(1)).to_contain_text("Failed, retried")
    await expect(attempts.locator("tbody tr").nth(1)).to_contain_text("503")
    await both_languages(page, "delivery log")
    await page.get_by_label("Outcome").select_option("retry")
    await expect(page).to_have_url(re.compile(r"/deliveries\?outcome=retry$"))
    await expect(attempts.locator("tbody tr")).to_have_count(1)
    await both_languages(page, "delivery log, retries only")

    await tab_to(page, "Routing")
    await page.keyboard.press("Enter")
    tree = page.get_by_role("list", name="Routing tree")
    await expect(tree).to_contain_text('namespace="payments" → ')
    await expect(page.get_by_role("heading", name="Version 1 in force")).to_be_visible()
    await both_languages(page, "routing")
    await page.goto(silences_page)

    # the notifier flushes the group once its wait is over: the notification is muted by that silence
    outcomes = page.get_by_test_id("incident-outcomes")
    muted = outcomes.locator('li[data-state="muted"]')
    await expect(muted).to_contain_text(f"silenced by {silence_id}", timeout=(PAYMENTS_GROUP_WAIT_S + 30) * 1000)
    await expect(muted).to_contain_text(re.compile(r"^team \(webhook\S*\): muted"))
    silences = page.get_by_role("table", name="Silences, active and pending first")
    await expect(silences).to_contain_text("checkout is being redeployed")
    await asyncio.sleep(1)  # a notification sent by mistake would have reached the receiver by now
    fingerprint = incident.payload_as(AlertFired).fingerprint
    assert fingerprint not in fingerprints(receiver)
    assert earlier.payload_as(AlertFired).fingerprint in fingerprints(receiver)

    # expired by keyboard: the alert still fires, so the notifier now tells it
    await page.get_by_role("button", name=f"Expire silence {silence_id}").focus()
    await page.keyboard.press("Enter")
    await expect(silences.locator("tbody tr").first).to_contain_text("Expired")
    await expect(outcomes.locator('li[data-state="delivered"]')).to_have_count(1, timeout=20_000)
    assert fingerprint in fingerprints(receiver)
