"""How the real gateway reads credentials (NATS, PostgreSQL, uvicorn): `Authorization: Bearer`, `X-API-Key`,
other schemes, then the rate limit and the role check, all in the one authentication dependency."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.integration.gateway_stack import GatewayStack, gateway_stack

pytestmark = pytest.mark.integration


@pytest.fixture
async def stack(database_url: str, nats_url: str) -> AsyncIterator[GatewayStack]:
    async for s in gateway_stack(database_url, nats_url):
        yield s


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["request_id"] == response.headers["x-request-id"]
    return body


async def test_credentials_are_read_from_bearer_or_api_key_header_and_nothing_else(stack: GatewayStack) -> None:
    await stack.start()
    viewer = await stack.key("viewer", namespaces=["payments"])
    async with httpx.AsyncClient(base_url=stack.url, timeout=10.0) as c:
        for headers in (
            {"Authorization": f"Bearer {viewer}"},
            {"Authorization": f"bearer   {viewer}"},  # the scheme is case-insensitive, blanks before the token ignored
            {"X-API-Key": viewer},
            {"Authorization": "Basic dXNlcjpwYXNz", "X-API-Key": viewer},  # not a bearer: the key header counts
        ):
            who = await c.get("/v1/whoami", headers=headers)
            assert who.status_code == 200, (headers, who.text)
            assert who.json()["role"] == "viewer" and who.json()["namespaces"] == ["payments"]
        for headers in (
            {},
            {"Authorization": "Bearer"},
            {"Authorization": f"Basic {viewer}"},
            {"Authorization": viewer},
            {"X-API-Key": ""},
        ):
            refused = await c.get("/v1/whoami", headers=headers)
            assert problem(refused, 401)["detail"].startswith("authentication required"), headers
            assert refused.headers["www-authenticate"] == 'Bearer realm="opsbus"'
        unknown = await c.get("/v1/audit", headers={"X-API-Key": "opsb_0000000000_" + "A" * 43})
        assert "unknown" in problem(unknown, 401)["detail"]
        not_a_jwt = await c.get("/v1/audit", headers={"Authorization": "Bearer not.a.jwt"})
        problem(not_a_jwt, 401)


async def test_role_is_checked_after_authentication_and_before_the_handler(stack: GatewayStack) -> None:
    await stack.start()
    viewer = await stack.key("viewer", namespaces=["payments"])
    operator = await stack.key("operator", namespaces=["payments"])
    async with stack.client(viewer) as c:
        assert (await c.get("/v1/audit")).status_code == 200
        # an operator's call (even with a body the handler would refuse) is 403 for a viewer, not 422
        assert "needs operator" in problem(await c.post("/v1/deployments", json={}), 403)["detail"]
        assert "needs admin" in problem(await c.get("/v1/keys"), 403)["detail"]
    async with stack.client(operator) as c:
        problem(await c.post("/v1/deployments", json={}), 422)
        problem(await c.get("/v1/keys"), 403)


async def test_rate_limit_is_charged_per_caller_on_every_authenticated_request(stack: GatewayStack) -> None:
    await stack.start(rate_per_second=0.5, rate_burst=3)
    first, second = await stack.key("viewer"), await stack.key("viewer")
    async with stack.client(first) as c:
        statuses = [(await c.get(path)).status_code for path in ("/v1/whoami", "/v1/audit", "/v1/whoami")]
        assert statuses == [200, 200, 200]
        limited = await c.get("/v1/audit")
        assert "rate limit" in problem(limited, 429)["detail"]
        assert int(limited.headers["retry-after"]) >= 1
    async with stack.client(second) as c:  # another key has its own bucket
        assert (await c.get("/v1/whoami")).status_code == 200
    async with httpx.AsyncClient(base_url=stack.url, timeout=10.0) as anonymous:
        # no credential: 401 before any bucket is looked at (the limit is per authenticated caller)
        problem(await anonymous.get("/v1/whoami"), 401)
