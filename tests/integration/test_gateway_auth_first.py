"""Authentication before anything else, on the real gateway (uvicorn, NATS, PostgreSQL): every operation in
the gateway's own OpenAPI document answers 401 to a caller without credentials, whatever the body or the
parameters (malformed JSON is parsed by FastAPI before any dependency runs, so this is checked for real);
every credential that is not valid gets one answer that names no kind of credential."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from opsbus.gateway.auth import INVALID_CREDENTIAL
from tests.integration.gateway_stack import GatewayStack, gateway_stack

pytestmark = pytest.mark.integration

PUBLIC = {("get", "/healthz"), ("get", "/readyz"), ("get", "/metrics")}
RECEIVER = ("post", "/v1/alerts/alertmanager")  # its own credentials (Alertmanager's http_config)
SLACK = ("post", "/v1/integrations/slack/interactions")  # Slack's request signature (tests/.../slack_approvals)
FEISHU = ("post", "/v1/integrations/feishu/card-actions")  # Feishu's token and signature (.../feishu_approvals)
ZABBIX = ("post", "/v1/alerts/zabbix")  # the opsbus media type's bearer token (tests/.../test_gateway_zabbix.py)
SIGN_IN = ("post", "/v1/session")  # the console's sign-in: the API key is the body
# SSO: which sign-in methods exist, and the OIDC redirect pair (the provider authenticates; the callback checks the
# signed flow cookie and the ID token, and refuses anything else with 400: tests/integration/test_console_sso.py)
SSO = {("get", "/v1/session/methods"), ("get", "/v1/session/oidc/login"), ("get", "/v1/session/oidc/callback")}
JSON = {"content-type": "application/json"}
MALFORMED: list[tuple[str, bytes]] = [("malformed JSON", b'{"oops": '), ("wrong shape", b"[1, {}]")]


@pytest.fixture
async def stack(database_url: str, nats_url: str) -> AsyncIterator[GatewayStack]:
    async for s in gateway_stack(database_url, nats_url):
        yield s


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, (response.request.method, response.request.url, response.text)
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


def bad_request(c: httpx.AsyncClient, method: str, path: str, operation: dict[str, Any], body: bytes) -> httpx.Request:
    """`operation` with a nonsense value for every parameter and `body` as JSON."""
    url = re.sub(r"\{[^}]+\}", "%20not%20an%20id", path)
    params = {p["name"]: "\x7f" * 400 for p in operation.get("parameters", []) if p["in"] == "query"}
    headers = {p["name"]: "x" * 400 for p in operation.get("parameters", []) if p["in"] == "header"}
    if "requestBody" in operation:
        headers.update(JSON)
        return c.build_request(method.upper(), url, params=params, headers=headers, content=body)
    return c.build_request(method.upper(), url, params=params, headers=headers)


async def test_every_operation_answers_401_before_it_judges_the_request(stack: GatewayStack) -> None:
    await stack.start(alertmanager={"bearer_token": "am-token-for-tests"})
    async with httpx.AsyncClient(base_url=stack.url, timeout=10.0) as c:
        document = (await c.get("/v1/openapi.json")).json()
        operations = [(m, path, op) for path, item in document["paths"].items() for m, op in item.items()]
        unauthenticated = {(m, path) for m, path, op in operations if not op.get("security")}
        assert unauthenticated == {*PUBLIC, RECEIVER, SLACK, FEISHU, ZABBIX, SIGN_IN, *SSO}, (
            "a new operation without credentials: is it meant?"
        )
        checked = 0
        for method, path, operation in operations:
            if (method, path) in PUBLIC | SSO or (method, path) == SIGN_IN:
                continue
            for what, body in MALFORMED:
                response = await c.send(bad_request(c, method, path, operation, body))
                detail = problem(response, 401)["detail"]
                assert "credentials" in detail or "authentication required" in detail, (method, path, what)
                checked += 1
        assert checked >= 2 * 30  # every operation of the gateway, twice


async def test_the_alertmanager_receiver_checks_its_credentials_before_the_body(stack: GatewayStack) -> None:
    await stack.start(alertmanager={"username": "am", "password": "pw"})
    good = {"Authorization": "Basic " + base64.b64encode(b"am:pw").decode()}
    wrong = {"Authorization": "Basic " + base64.b64encode(b"am:nope").decode()}
    async with httpx.AsyncClient(base_url=stack.url, timeout=10.0) as c:
        for headers in ({}, wrong, {"Authorization": "Bearer am-token"}):
            for body in (b"{not json", b'{"version": "4"}', b"[]"):
                sent = await c.post("/v1/alerts/alertmanager", content=body, headers={**headers, **JSON})
                problem(sent, 401)
        # with its credentials the same bodies are judged: malformed JSON 400, a wrong payload 422
        assert problem(await c.post("/v1/alerts/alertmanager", content=b"{not json", headers={**good, **JSON}), 400)
        assert problem(await c.post("/v1/alerts/alertmanager", json={"version": "4"}, headers=good), 422)


async def test_authenticated_callers_still_learn_what_is_wrong_and_roles_come_before_bodies(
    stack: GatewayStack,
) -> None:
    await stack.start()
    viewer, operator = await stack.key("viewer"), await stack.key("operator")
    async with stack.client(operator) as c:
        malformed = await c.post("/v1/deployments", content=b"{", headers=JSON)
        assert problem(malformed, 400)["errors"][0]["detail"].startswith("malformed JSON")
    async with stack.client(viewer) as c:
        refused = await c.post("/v1/deployments", content=b"{", headers=JSON)
        assert "needs operator" in problem(refused, 403)["detail"]


async def test_every_invalid_credential_gets_one_answer_that_names_no_kind(stack: GatewayStack) -> None:
    """Unknown, malformed, revoked and refused JWT credentials are all "not valid", word for word: the answer
    does not tell a prober whether JWTs are enabled or what an API key looks like (issue 21)."""
    await stack.start()
    header = base64.urlsafe_b64encode(json.dumps({"alg": "RS256", "typ": "JWT"}).encode()).decode().rstrip("=")
    well_formed_jwt = f"{header}.eyJzdWIiOiJhIn0.c2lnbmF0dXJl"
    revoked = await stack.key("viewer")
    async with stack.client(await stack.key("admin")) as admin:
        key_id = (await admin.get("/v1/whoami", headers={"Authorization": f"Bearer {revoked}"})).json()["id"]
        assert (await admin.delete(f"/v1/keys/{key_id}")).status_code == 200
    cases = [
        {"X-API-Key": "garbage"},
        {"X-API-Key": "eyJhbGciOiJIUzI1NiJ9.e30.x"},  # a JWT in the key header is no key
        {"X-API-Key": "opsb_0000000000_" + "A" * 43},  # well-formed, unknown
        {"Authorization": "Bearer opsb_short"},
        {"Authorization": "Bearer garbage"},  # the defect: answered "JWT not enabled"
        {"Authorization": "Bearer not.a.jwt"},
        {"Authorization": f"Bearer {well_formed_jwt}"},  # JWTs are not enabled on this gateway
        {"Authorization": f"Bearer {revoked}"},
    ]
    async with httpx.AsyncClient(base_url=stack.url, timeout=10.0) as c:
        details = set()
        for headers in cases:
            refused = await c.get("/v1/whoami", headers=headers)
            body = problem(refused, 401)
            assert refused.headers["www-authenticate"] == 'Bearer realm="opsbus"'
            assert "JWT" not in body["detail"] and "opsb_" not in body["detail"], (headers, body)
            details.add(body["detail"])
    assert details == {INVALID_CREDENTIAL}
