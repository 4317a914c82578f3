"""Policies and silences in a real browser (Debian's Chromium through Playwright) against the real gateway on real
NATS and PostgreSQL, with the healer's real policy endpoints (its policy store, validation and pure planner:
`tests/integration/healer_policies.py`; the rest of the healer needs a cluster).

* Edit a policy with an error: the healer's issue shows at its line in the editor and in the list; fix it,
  preview it on past incidents (the version in force beside the edit), save it, roll it back.

axe-core runs on each page in English and in Chinese: no serious or critical violation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import BrowserContext, Page, expect

from opsbus.common.bus import Bus
from tests.browser.harness import both_languages, browser, require_console, sign_in
from tests.integration.gateway_stack import GatewayStack, gateway_stack
from tests.integration.healer_policies import POLICIES, crashing, policy_endpoints

pytestmark = [pytest.mark.integration, pytest.mark.browser]
__all__ = ["browser"]  # a fixture, from the harness


@pytest.fixture
async def stack(database_url: str, nats_url: str) -> AsyncIterator[GatewayStack]:
    require_console()
    async for s in gateway_stack(database_url, nats_url):
        await s.start(key_cache_seconds=0, console={"insecure_loopback_cookie": True})
        yield s


@pytest.fixture
async def bus(make_bus: Any) -> Bus:
    made: Bus = await make_bus("watcher")
    await made.ensure_streams()
    return made


async def edit_line(page: Page, line: str, replacement: str) -> None:
    """Replace line `line` in the CodeMirror editor with the keyboard: click it, End, select its text back to the
    indentation with Shift+Left, type the new text (the indentation stays)."""
    await page.locator(".cm-line", has_text=line.strip()).click()
    await page.keyboard.press("End")
    for _ in line.strip():
        await page.keyboard.press("Shift+ArrowLeft")
    await page.keyboard.type(replacement.strip())


async def test_edit_with_an_error_fix_preview_save_and_roll_back(
    stack: GatewayStack, browser: BrowserContext, bus: Bus, database_url: str
) -> None:
    async with policy_endpoints(bus.nc, database_url):
        for pod in ("web-1", "web-2"):
            await bus.publisher.publish(crashing("shop", pod))
        token = await stack.key("admin")
        page = await browser.new_page()
        await sign_in(page, stack.url, token)
        await page.get_by_role("link", name="Policies").click()
        await expect(page.get_by_text("Version 1 in force", exact=True)).to_be_visible()
        await page.locator(".cm-content").wait_for()  # CodeMirror's chunk has loaded
        await both_languages(page, "policies")

        # an error: the healer names the line, the editor marks it
        await edit_line(page, "        timeout: 5m", "        timeout: soon")
        await page.get_by_role("button", name="Validate").click()
        bad_line = POLICIES.splitlines().index("        timeout: 5m") + 1
        issue = page.get_by_role("button", name=f"Line {bad_line}:")
        await expect(issue).to_be_visible()
        await expect(issue).to_contain_text("duration")  # the healer's own check, not a YAML syntax error
        marked = page.locator(".cm-line", has=page.locator(".cm-lintRange-error"))
        await expect(marked).to_have_text("        timeout: soon")
        await both_languages(page, "policies with an issue")

        # fixed, and a real change: restart the workload instead of deleting the pod
        await edit_line(page, "        timeout: soon", "        timeout: 10m")
        await edit_line(page, "      - action: delete_pod", "      - action: rollout_restart")
        await page.get_by_role("button", name="Validate").click()
        await expect(page.get_by_text("Valid: 1 policies (crashloop).")).to_be_visible()
        await expect(page.get_by_role("button", name=f"Line {bad_line}:")).to_have_count(0)
        diff = page.get_by_role("figure", name="4 changed lines against version 1.")
        await expect(diff).to_contain_text("+       - action: rollout_restart")  # the diff against version 1

        await page.get_by_role("button", name="Preview").click()
        await expect(page.get_by_text("2 of 2 incidents would be handled differently.")).to_be_visible()
        table = page.get_by_role("table", name="Preview on past incidents")
        row = table.locator("tbody tr").first
        await expect(row).to_contain_text("crashloop step 1: delete_pod")
        await expect(row).to_contain_text("crashloop step 1: rollout_restart")
        await both_languages(page, "policies with a preview")

        await page.get_by_label("Comment").fill("restart crash-looping workloads")
        await page.get_by_role("button", name="Save version").click()
        await expect(page.get_by_text("Saved as version 2.")).to_be_visible()
        await expect(page.get_by_text("Version 2 in force", exact=True)).to_be_visible()

        # rolled back with the keyboard: focus the history's button, Enter
        await page.get_by_role("button", name="Roll back to version 1").focus()
        await page.keyboard.press("Enter")
        await expect(page.get_by_text("Rolled back: version 1 is in force again as version 3.")).to_be_visible()
        async with stack.client(token) as c:
            answer = (await c.get("/v1/policies")).json()
        assert answer["version"] == 3 and answer["document"] == POLICIES
