"""The gateway as the console's server and backend-for-frontend, on the real gateway (uvicorn, NATS,
PostgreSQL): the console's files with their security and cache headers, client routes falling back to
index.html while the API keeps its own 404s; API-key sign-in to an HttpOnly SameSite=Strict cookie that
authenticates exactly as the key (same role, revoked with it), CSRF on every mutating call made with the
cookie, sign-out, and every sign-in, failed sign-in and sign-out in the audit trail."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.integration.gateway_stack import GatewayStack, gateway_stack

pytestmark = pytest.mark.integration


@pytest.fixture
async def stack(database_url: str, nats_url: str) -> AsyncIterator[GatewayStack]:
    async for s in gateway_stack(database_url, nats_url):
        yield s


@pytest.fixture
def built(tmp_path: Path) -> Path:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text('<!doctype html><script type="module" src="/assets/app-1a2b.js"></script>')
    (tmp_path / "assets" / "app-1a2b.js").write_text("console.log('opsbus')")
    (tmp_path.parent / "secret.txt").write_text("not to be served")
    return tmp_path


async def test_an_unbuilt_console_says_so(stack: GatewayStack, tmp_path: Path) -> None:
    await stack.start(console={"assets_dir": str(tmp_path)})
    async with stack.client() as c:
        response = await c.get("/")
    assert response.status_code == 404
    assert "console not built: run make console" in response.text
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


async def test_the_console_is_served_with_strict_headers_and_client_routes_fall_back(
    stack: GatewayStack, built: Path
) -> None:
    await stack.start(console={"assets_dir": str(built)})
    async with stack.client() as c:
        for path in ("/", "/incidents/abc?status=firing", "/approvals"):
            page = await c.get(path)
            assert page.status_code == 200, path
            assert "/assets/app-1a2b.js" in page.text
            assert page.headers["cache-control"] == "no-cache"
            csp = page.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
            assert page.headers["x-content-type-options"] == "nosniff"
            assert page.headers["x-frame-options"] == "DENY"
        asset = await c.get("/assets/app-1a2b.js")
        assert asset.status_code == 200 and asset.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert asset.headers["content-type"].startswith("text/javascript")
        assert (await c.get("/assets/nope.js")).status_code == 404
        assert (await c.get("/assets/%2e%2e/%2e%2e/secret.txt")).status_code == 404
        unknown = await c.get("/v1/no-such-thing")
        assert unknown.status_code == 404 and unknown.headers["content-type"].startswith("application/problem+json")


async def audit_actions(stack: GatewayStack, token: str, action: str, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 20
    async with stack.client(token) as c:
        while True:
            items: list[dict[str, Any]] = (await c.get("/v1/audit", params={"action": action})).json()["items"]
            if len(items) >= count:
                return items
            assert time.monotonic() < deadline, f"only {items} for {action}"
            await asyncio.sleep(0.2)


async def test_a_secure_cookie_by_default(stack: GatewayStack) -> None:
    await stack.start()
    token = await stack.key("viewer")
    async with stack.client() as c:
        response = await c.post("/v1/session", json={"api_key": token})
    assert response.status_code == 201, response.text
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("__Host-opsbus_session=")
    for attribute in ("HttpOnly", "Secure", "SameSite=strict", "Path=/"):
        assert attribute.lower() in cookie.lower(), cookie
    assert token not in response.text


async def test_sign_in_with_an_api_key_csrf_sign_out_and_the_audit_trail(stack: GatewayStack) -> None:
    await stack.start(key_cache_seconds=0, console={"insecure_loopback_cookie": True})
    admin = await stack.key("admin")
    viewer_key = await stack.key("viewer", namespaces=["payments"])
    async with stack.client() as c:
        refused = await c.post("/v1/session", json={"api_key": "opsb_0123456789_" + "x" * 43})
        assert refused.status_code == 401 and "set-cookie" not in refused.headers

        signed = await c.post("/v1/session", json={"api_key": admin})
        assert signed.status_code == 201, signed.text
        assert "Secure" not in signed.headers["set-cookie"]  # http://127.0.0.1 in development only
        csrf = signed.json()["csrf_token"]
        assert signed.json()["identity"]["role"] == "admin"
        assert (await c.get("/v1/whoami")).json()["role"] == "admin"
        assert (await c.get("/v1/session")).json()["csrf_token"] == csrf

        body = {"name": "made-in-console", "role": "viewer", "namespaces": ["payments"]}
        forged = await c.post("/v1/keys", json=body)
        assert forged.status_code == 403 and "CSRF" in forged.json()["detail"]
        wrong = await c.post("/v1/keys", json=body, headers={"X-CSRF-Token": "guess"})
        assert wrong.status_code == 403
        made = await c.post("/v1/keys", json=body, headers={"X-CSRF-Token": csrf})
        assert made.status_code == 201, made.text

        assert (await c.delete("/v1/session")).status_code == 403  # signing out needs the token too
        assert (await c.delete("/v1/session", headers={"X-CSRF-Token": csrf})).status_code == 204
        assert (await c.get("/v1/whoami")).status_code == 401

    async with stack.client() as viewer:
        assert (await viewer.post("/v1/session", json={"api_key": viewer_key})).status_code == 201
        who = (await viewer.get("/v1/whoami")).json()
        assert (who["role"], who["namespaces"]) == ("viewer", ["payments"])
        async with stack.client(admin) as c:
            key_id = (await c.get("/v1/whoami", headers={"Authorization": f"Bearer {viewer_key}"})).json()["id"]
            assert (await c.delete(f"/v1/keys/{key_id}")).status_code == 200
        assert (await viewer.get("/v1/whoami")).status_code == 401  # the session dies with its key

    signins = await audit_actions(stack, admin, "console.signin", 3)
    assert sorted(e["outcome"] for e in signins) == ["denied", "executed", "executed"]
    assert "unknown, expired or revoked" in next(e for e in signins if e["outcome"] == "denied")["reason"]
    signouts = await audit_actions(stack, admin, "console.signout", 1)
    assert signouts[0]["actor"]["kind"] == "apikey"


async def test_a_session_expires_after_its_lifetime(stack: GatewayStack) -> None:
    await stack.start(console={"insecure_loopback_cookie": True, "session_ttl_seconds": 3600})
    assert stack.gateway is not None
    sessions = stack.gateway.ctx.sessions
    token = await stack.key("operator")
    async with stack.client() as c:
        signed = await c.post("/v1/session", json={"api_key": token})
        assert signed.status_code == 201, signed.text
        expires = datetime.fromisoformat(signed.json()["expires_at"])
        assert timedelta(minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=1)
        assert (await c.get("/v1/whoami")).status_code == 200

        sessions.clock = lambda: expires + timedelta(seconds=1)  # the gateway's clock past the session's end
        gone = await c.get("/v1/session")
        assert gone.status_code == 401 and gone.headers["content-type"].startswith("application/problem+json")
        assert (await c.get("/v1/whoami")).status_code == 401
