"""Console SSO in a real browser: Debian's Chromium (Playwright) follows "Sign in with SSO" from the console's
sign-in page to a real OIDC provider (oidc-provider), fills its login form, and lands back on the page it asked
for, signed in as the provider's user with the role and namespaces of its ID token. axe-core runs on the sign-in
page with SSO shown: no serious or critical violation.

The provider runs on the gateway's site (127.0.0.1) and on another site (`localhost`), as an identity provider is
in production: there the provider's redirect back to the callback is a cross-site top-level navigation, which
carries the SameSite=Lax flow cookie (a Strict one would stay behind and the sign-in would fail), and the session
cookie, SameSite=Strict, still rides on the console's own same-origin calls.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import BrowserContext

from tests.browser.harness import browser, require_console, sso_sign_in
from tests.integration.gateway_stack import GatewayStack
from tests.integration.oidc_provider import sso_gateway

pytestmark = [pytest.mark.integration, pytest.mark.browser]
__all__ = ["browser"]  # a fixture, from the harness


@pytest.fixture(params=["127.0.0.1", "localhost"], ids=["same-site-provider", "cross-site-provider"])
async def stack(
    request: pytest.FixtureRequest, database_url: str, nats_url: str
) -> AsyncIterator[tuple[GatewayStack, str]]:
    """The gateway on 127.0.0.1 and the provider's issuer URL, on the same site or on another one."""
    require_console()
    async for s, issuer in sso_gateway(database_url, nats_url, provider_host=request.param):
        yield s, issuer


async def test_sign_in_with_sso_lands_on_incidents_as_the_providers_user(
    stack: tuple[GatewayStack, str], browser: BrowserContext
) -> None:
    gateway, issuer = stack
    page = await browser.new_page()
    await sso_sign_in(page, gateway.url, issuer, "alice")  # by keyboard, from /incidents signed out

    await page.get_by_role("heading", name="Incidents").wait_for()
    await page.get_by_text("Signed in as alice@example.com (operator)").wait_for()
    assert await page.evaluate("() => document.cookie") == "", "the session cookie must be HttpOnly"
    # the gateway's cookies (a provider on 127.0.0.1 has its own there too: cookies ignore the port)
    cookies = {c["name"]: c for c in await browser.cookies(gateway.url) if c["name"].startswith("opsbus_")}
    assert set(cookies) == {"opsbus_session"}, cookies  # the flow cookie is gone once used
    assert (cookies["opsbus_session"]["sameSite"], cookies["opsbus_session"]["httpOnly"]) == ("Strict", True)
    session = await page.request.get(f"{gateway.url}/v1/session")
    assert session.status == 200
    ident = (await session.json())["identity"]
    assert (ident["id"], ident["role"], ident["namespaces"]) == ("alice", "operator", ["payments"])
