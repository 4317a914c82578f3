"""The console's change timeline, audit search, event explorer and keys pages in a real browser (Debian's Chromium
through Playwright) against the real gateway on real NATS and PostgreSQL, in one journey on one stack and one
browser: an admin finds an action in the audit search with the keyboard and exports it (the CSV downloaded holds
it), creates a key and sees its secret once, follows `alert.>` live in the event explorer (an undecodable entry
is shown as such and the tail goes on), opens a change on the timeline; axe-core finds no serious or critical
violation on any of the four pages, in English and in Chinese."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import BrowserContext, Page

from opsbus.common.audit import Auditor
from opsbus.common.bus import Bus
from opsbus.common.events import Envelope
from opsbus.common.events.payloads import ChangeKind, ChangeOrigin, ChangeRecorded, FieldChange, WorkloadRef
from opsbus.common.events.payloads.audit import AuditOutcome
from opsbus.common.events.payloads.common import ResourceRef
from tests.browser.harness import (
    browser,
    crash_alert,
    no_serious_violations,
    require_console,
    sign_in,
    tab_to,
)
from tests.integration.gateway_stack import GatewayStack, gateway_stack

pytestmark = [pytest.mark.integration, pytest.mark.browser]
__all__ = ["browser"]  # a fixture, from the harness
IMAGE = "spec.template.spec.containers[app].image"
PAGES = {"/audit": "audit", "/keys": "keys", "/events?pattern=alert.%3E": "events", "/changes": "changes"}


@pytest.fixture
async def stack(database_url: str, nats_url: str) -> AsyncIterator[GatewayStack]:
    require_console()
    async for s in gateway_stack(database_url, nats_url):
        await s.start(
            key_cache_seconds=0,
            console={"insecure_loopback_cookie": True, "jaeger_url": "http://127.0.0.1:16686"},
        )
        yield s


@pytest.fixture
async def bus(make_bus: Any) -> Bus:
    made: Bus = await make_bus("services")
    return made


async def _history(bus: Bus) -> None:
    """What the platform would have recorded: actions of several actors, and a change to a workload."""
    auditor = Auditor(service="deployer", cluster="prod", sink=bus.publisher.publish)
    for n in range(60):
        await auditor.record(
            action="recovery.delete_pod",
            target=ResourceRef(kind="Pod", namespace="payments", name=f"api-{n}"),
            outcome=AuditOutcome.EXECUTED,
            reason="crash loop",
        )
    await auditor.record(
        action="deploy.abort",
        target=ResourceRef(kind="Deployment", namespace="payments", name="checkout"),
        outcome=AuditOutcome.EXECUTED,
        reason="canary error rate 7% above 2%",
    )
    workload = WorkloadRef(kind="Deployment", namespace="payments", name="checkout")
    change = ChangeRecorded(
        kinds=(ChangeKind.IMAGE,),
        object=workload.as_resource_ref(),
        workload=workload,
        diff=(
            FieldChange(path="spec.template.spec.containers[app].image", before="checkout:1.41", after="checkout:1.42"),
        ),
        summary="Deployment payments/checkout: image app checkout:1.41 -> checkout:1.42",
        origin=ChangeOrigin.OBSERVED,
        observed_at=datetime.now(UTC) - timedelta(minutes=10),
    )
    await bus.publisher.publish(Envelope.build(change, service="watcher", cluster="prod", obj=workload.as_object_ref()))


async def _axe_everywhere(page: Page, base: str, language: str) -> None:
    for path, name in PAGES.items():
        await page.goto(f"{base}{path}")
        await page.locator("main h1").wait_for()
        await page.get_by_role("status").first.wait_for()
        await no_serious_violations(page, f"{name} ({language})")


async def test_audit_search_export_keys_events_and_changes_in_both_languages(
    stack: GatewayStack, browser: BrowserContext, bus: Bus
) -> None:
    await _history(bus)
    token = await stack.key("admin")
    page = await browser.new_page()
    await sign_in(page, stack.url, token)

    # the audit search, by keyboard: Audit in the navigation, actor and action, Enter
    await tab_to(page, "Audit")
    await page.keyboard.press("Enter")
    await page.get_by_role("heading", name="Audit trail").wait_for()
    await page.get_by_label("Actor").focus()
    await page.keyboard.type("deployer")
    await page.keyboard.press("Tab")
    await page.keyboard.type("deploy.abort")
    await page.keyboard.press("Enter")
    row = page.locator("tr", has_text="canary error rate 7% above 2%")
    await row.wait_for(timeout=15_000)
    assert "Deployment/payments/checkout" in await row.inner_text()
    assert await page.locator("tbody tr").count() == 1
    assert "action=deploy.abort" in page.url and "actor=deployer" in page.url  # bookmarkable
    await no_serious_violations(page, "audit search")
    async with page.expect_download() as waiting:
        await page.get_by_role("link", name="Export CSV").click()
    download = await waiting.value
    text = await asyncio.to_thread(Path(await download.path()).read_text)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["action"], r["target_name"], r["actor_id"]) for r in rows] == [("deploy.abort", "checkout", "deployer")]

    # everything, then the older entries by keyset
    await page.goto(f"{stack.url}/audit?actor=deployer")
    await page.get_by_text("50 entries shown").wait_for(timeout=15_000)
    await page.get_by_role("button", name="Older entries").click()
    await page.get_by_text("61 entries shown").wait_for(timeout=15_000)
    await page.get_by_text("End of the trail for this search.").wait_for()

    # a key, its secret shown once
    await page.goto(f"{stack.url}/keys")
    await page.get_by_label("Name", exact=True).fill("ci-web")
    await page.get_by_label("Namespaces", exact=True).fill("web")
    await page.get_by_role("button", name="Create key").click()
    secret = await page.get_by_label("The new API key").input_value()
    assert secret.startswith("opsb_")
    await no_serious_violations(page, "keys with a new secret")
    await page.get_by_role("button", name="I have stored it").click()
    await page.locator("tr", has_text="ci-web").wait_for()
    assert secret not in await page.content()

    # the live tail: an undecodable entry is shown as such, the next event still arrives
    await page.goto(f"{stack.url}/events?pattern=alert.%3E")
    await page.locator('[data-testid="tail-state"][data-state="live"]').wait_for(timeout=15_000)
    await bus.js.publish("alert.fired.prod.payments", b"\xff\xfe not json")
    alert = crash_alert("payments", "api-7")
    await bus.publisher.publish(alert)
    await page.locator('[data-kind="undecodable"]').wait_for(timeout=15_000)
    await page.get_by_text(alert.id).first.wait_for(timeout=15_000)
    await no_serious_violations(page, "event explorer")
    await page.get_by_role("button", name="Pause").click()
    await page.locator('[data-testid="tail-state"][data-state="paused"]').wait_for()
    paused_alert = crash_alert("payments", "api-8")
    await bus.publisher.publish(paused_alert)
    await page.get_by_role("button", name="Resume").click()
    await page.get_by_text(paused_alert.id).first.wait_for(timeout=15_000)  # nothing lost while paused

    # the change timeline of the namespace: the change opens its diff
    await page.goto(f"{stack.url}/changes?namespace=payments")
    change = page.get_by_role("button", name="Deployment payments/checkout: image app", exact=False).first
    await change.wait_for(timeout=15_000)
    await change.focus()
    await page.keyboard.press("Enter")
    await page.get_by_test_id("change-detail").get_by_role("cell", name="checkout:1.42", exact=True).wait_for()
    await no_serious_violations(page, "change timeline")

    await _axe_everywhere(page, stack.url, "English")
    await page.get_by_label("Language").select_option("zh-CN")
    await page.get_by_role("link", name="审计", exact=True).wait_for()
    await _axe_everywhere(page, stack.url, "Chinese")
    await page.goto(f"{stack.url}/audit")
    await page.get_by_role("heading", name="审计记录").wait_for()
