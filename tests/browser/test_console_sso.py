"""Console SSO in a real browser: Debian's Chromium (Playwright) follows "Sign in with SSO" from the console's
sign-in page to a real OIDC provider (oidc-provider on 127.0.0.1), fills its login form, and lands back on the
page it asked for, signed in as the provider's user with the role and namespaces of its ID token. axe-core runs
on the sign-in page with SSO shown: no serious or critical violation."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import BrowserContext

from tests.browser.harness import browser, no_serious_violations, require_console, tab_to
from tests.integration.gateway_stack import GatewayStack, gateway_stack
from tests.integration.oidc_provider import free_port, gateway_oidc, oidc_provider

pytestmark = [pytest.mark.integration, pytest.mark.browser]
__all__ = ["browser"]  # a fixture, from the harness


@pytest.fixture
async def stack(database_url: str, nats_url: str) -> AsyncIterator[tuple[GatewayStack, str]]:
    """The gateway and the provider's issuer URL."""
    require_console()
    port = free_port()  # the redirect URI registered at the provider names the gateway's port
    with oidc_provider(f"http://127.0.0.1:{port}/v1/session/oidc/callback") as issuer:
        async for s in gateway_stack(database_url, nats_url):
            await s.start(port=port, oidc=gateway_oidc(issuer), console={"insecure_loopback_cookie": True})
            yield s, issuer


async def test_sign_in_with_sso_lands_on_incidents_as_the_providers_user(
    stack: tuple[GatewayStack, str], browser: BrowserContext
) -> None:
    gateway, issuer = stack
    page = await browser.new_page()
    await page.goto(f"{gateway.url}/incidents")  # not signed in: sent to the sign-in page, to come back here
    await page.wait_for_url("**/signin?next=*")
    sso = page.get_by_role("link", name="Sign in with SSO")
    await sso.wait_for()
    await no_serious_violations(page, "sign-in with SSO")
    await tab_to(page, "Sign in with SSO")  # by keyboard
    await page.keyboard.press("Enter")

    await page.wait_for_url(f"{issuer}/**")  # the provider's login form
    await page.locator('input[name="login"]').fill("alice")
    await page.locator('input[name="password"]').fill("anything")
    await page.get_by_role("button", name="Sign-in").click()
    await page.get_by_role("button", name="Continue").click()  # the provider's consent

    await page.wait_for_url(f"{gateway.url}/incidents")
    await page.get_by_role("heading", name="Incidents").wait_for()
    await page.get_by_text("Signed in as alice@example.com (operator)").wait_for()
    assert await page.evaluate("() => document.cookie") == "", "the session cookie must be HttpOnly"
    session = await page.request.get(f"{gateway.url}/v1/session")
    assert session.status == 200
    ident = (await session.json())["identity"]
    assert (ident["id"], ident["role"], ident["namespaces"]) == ("alice", "operator", ["payments"])
