"""The console's language follows the browser (Debian's Chromium through Playwright, the real gateway on real NATS
and PostgreSQL): a browser set to Simplified Chinese gets the sign-in page and the console in Chinese (the page's
`lang` is zh-CN), one set to English gets English; a language chosen with the switch wins over the browser's and
is kept across a reload. axe-core on the Chinese pages: no serious or critical violation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.browser.harness import chromium, no_serious_violations, require_console
from tests.integration.gateway_stack import GatewayStack, gateway_stack

pytestmark = [pytest.mark.integration, pytest.mark.browser]


@pytest.fixture
async def stack(database_url: str, nats_url: str) -> AsyncIterator[GatewayStack]:
    require_console()
    async for s in gateway_stack(database_url, nats_url):
        await s.start(console={"insecure_loopback_cookie": True})
        yield s


async def test_the_language_follows_the_browser_and_a_choice_is_kept(stack: GatewayStack, tmp_path: Path) -> None:
    token = await stack.key("viewer")
    async for chinese in chromium(tmp_path / "zh", locale="zh-CN"):
        page = await chinese.new_page()
        await page.goto(f"{stack.url}/signin")
        await page.get_by_label("API 密钥").wait_for()
        assert await page.evaluate("() => document.documentElement.lang") == "zh-CN"
        await no_serious_violations(page, "sign-in, a browser in Chinese")
        await page.get_by_label("API 密钥").fill(token)
        await page.keyboard.press("Enter")
        await page.get_by_role("link", name="事件", exact=True).wait_for()
        await no_serious_violations(page, "overview, a browser in Chinese")

        await page.get_by_label("语言").select_option("en")  # the operator's choice wins over the browser's
        await page.get_by_role("link", name="Incidents", exact=True).wait_for()
        await page.reload()
        await page.get_by_role("link", name="Incidents", exact=True).wait_for()
        assert await page.evaluate("() => document.documentElement.lang") == "en"

    async for english in chromium(tmp_path / "en", locale="en-US"):
        page = await english.new_page()
        await page.goto(f"{stack.url}/signin")
        await page.get_by_label("API key").wait_for()
        assert await page.evaluate("() => document.documentElement.lang") == "en"
