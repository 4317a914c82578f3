"""SSO sign-in to the console through a real OIDC provider (oidc-provider on 127.0.0.1) and the real gateway
(uvicorn, NATS, PostgreSQL): the authorization code flow with PKCE run by the gateway, driven with httpx the way a
browser would (redirects followed, the provider's login and consent forms posted); the ID token's claims become
the session's role and namespaces; a forged or missing state is a 400 problem and an audited failed sign-in."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest

from tests.integration.gateway_stack import GatewayStack
from tests.integration.oidc_provider import sso_gateway
from tests.integration.test_console_gateway import audit_actions

pytestmark = pytest.mark.integration


@pytest.fixture
async def stack(database_url: str, nats_url: str) -> AsyncIterator[GatewayStack]:
    async for s, _ in sso_gateway(database_url, nats_url):
        yield s


def _form(page: httpx.Response) -> tuple[str, dict[str, str]]:
    action = re.search(r'<form[^>]*action="([^"]+)"', page.text)
    assert action, page.text[:500]
    fields = dict(re.findall(r'<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"', page.text))
    return urljoin(str(page.url), action.group(1)), fields


async def sso_sign_in(c: httpx.AsyncClient, login: str, next_path: str = "/incidents") -> httpx.Response:
    """Through the provider's login and consent pages as a browser would; the last answer (the console's page)."""
    page = await c.get("/v1/session/oidc/login", params={"next": next_path})
    assert page.status_code == 200 and "<form" in page.text, page.text[:300]
    url, fields = _form(page)
    page = await c.post(url, data={**fields, "login": login, "password": "anything"})
    if "consent" in page.text.lower() or "authorize" in page.text.lower():
        url, fields = _form(page)
        page = await c.post(url, data=fields)
    return page


async def test_sso_sign_in_opens_a_session_with_the_token_claims(stack: GatewayStack) -> None:
    async with stack.client() as c:
        assert (await c.get("/v1/session/methods")).json() == {"api_key": True, "oidc": True}
        start = await c.get("/v1/session/oidc/login")
        assert start.status_code == 302
        query = parse_qs(urlsplit(start.headers["location"]).query)
        assert query["code_challenge_method"] == ["S256"] and query["code_challenge"][0]
        assert query["state"][0] and query["nonce"][0] and query["client_id"] == ["opsbus-console"]
        flow_cookie = start.headers["set-cookie"]
        assert "httponly" in flow_cookie.lower() and "samesite=lax" in flow_cookie.lower()
        assert query["state"][0] not in flow_cookie.split(";")[0] or "." in flow_cookie  # sealed, signed
    async with httpx.AsyncClient(base_url=stack.url, follow_redirects=True, timeout=20.0) as browser:
        landed = await sso_sign_in(browser, "alice")
        assert landed.url.path == "/incidents", landed.url
        session = await browser.get("/v1/session")
        assert session.status_code == 200, session.text
        ident = session.json()["identity"]
        assert (ident["kind"], ident["id"], ident["role"]) == ("user", "alice", "operator")
        assert ident["namespaces"] == ["payments"] and ident["display_name"] == "alice@example.com"
        assert "opsbus_oidc" not in browser.cookies  # the flow cookie is gone once used
    admin = await stack.key("admin")
    signins = await audit_actions(stack, admin, "console.signin", 1)
    assert any("signed in with SSO" in e["reason"] and e["actor"]["id"] == "alice" for e in signins), signins


async def test_a_forged_or_missing_state_is_refused_and_audited(stack: GatewayStack) -> None:
    async with httpx.AsyncClient(base_url=stack.url, timeout=20.0) as browser:
        missing = await browser.get("/v1/session/oidc/callback", params={"state": "x", "code": "y"})
        assert missing.status_code == 400
        assert missing.headers["content-type"].startswith("application/problem+json")
        assert "flow cookie" in missing.json()["detail"]
        await browser.get("/v1/session/oidc/login")  # a real flow cookie in this browser
        forged = await browser.get("/v1/session/oidc/callback", params={"state": "forged", "code": "y"})
        assert forged.status_code == 400 and "state does not match" in forged.json()["detail"]
        assert forged.headers["content-type"].startswith("application/problem+json")
        tampered = browser.cookies["opsbus_oidc"][:-2] + "xx"
        browser.cookies.set("opsbus_oidc", tampered)
        bad = await browser.get("/v1/session/oidc/callback", params={"state": "s", "code": "y"})
        assert bad.status_code == 400 and "not this gateway's" in bad.json()["detail"]
        assert (await browser.get("/v1/session")).status_code == 401
    admin = await stack.key("admin")
    refused = await audit_actions(stack, admin, "console.signin", 3)
    reasons = [e["reason"] for e in refused if e["outcome"] == "denied"]
    assert any("SSO sign-in refused" in r and "state does not match" in r for r in reasons), reasons
    assert any("flow cookie" in r for r in reasons), reasons


async def test_an_account_without_an_opsbus_role_gets_no_session(stack: GatewayStack) -> None:
    async with httpx.AsyncClient(base_url=stack.url, follow_redirects=True, timeout=20.0) as browser:
        landed = await sso_sign_in(browser, "norole")
        assert landed.status_code == 403 and "opsbus_role" in landed.json()["detail"]
        assert (await browser.get("/v1/session")).status_code == 401
