"""Editing the notification routes through the gateway with the real notifier (its real wiring, real NATS and
PostgreSQL): read the YAML and its version, validate with structured issues, put a new version (admin of every
namespace, optimistic concurrency), the routing tree in force follows, the history lists both versions and
the gateway audits the change."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from opsbus.common.settings import DatabaseSettings
from opsbus.common.store import upgrade
from opsbus.notifier import store
from tests.integration.gateway_stack import GatewayStack, gateway_stack
from tests.integration.test_notifier_delivery import Stack as NotifierStack
from tests.integration.test_notifier_delivery import yaml_config

pytestmark = pytest.mark.integration


@pytest.fixture
async def stack(database_url: str, nats_url: str) -> AsyncIterator[GatewayStack]:
    async for s in gateway_stack(database_url, nats_url):
        yield s


@pytest.fixture
async def notifier(database_url: str, nats_url: str) -> AsyncIterator[NotifierStack]:
    await upgrade(DatabaseSettings.model_validate({"url": database_url}), store.MIGRATIONS, store.SCHEMA)
    s = NotifierStack(database_url, nats_url)
    yield s
    await s.stop_all()


def ok(response: Any, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def problem(response: Any, status: int) -> dict[str, Any]:
    body = ok(response, status)
    assert response.headers["content-type"].startswith("application/problem+json")
    return body


async def test_routes_read_validate_put_with_versions_through_the_real_notifier(
    stack: GatewayStack, notifier: NotifierStack
) -> None:
    notifier.env["HOOK_URL"] = "http://127.0.0.1:9/hook"  # secrets are references: a literal URL is refused
    await notifier.start(yaml_config("${HOOK_URL}"))
    await stack.start()
    admin = await stack.key("admin")
    operator = await stack.key("operator")
    scoped_admin = await stack.key("admin", namespaces=["payments"])
    viewer_elsewhere = await stack.key("viewer", clusters=["staging"])

    async with stack.client(operator) as c:
        current = ok(await c.get("/v1/routes/config"))
        assert current["version"] == 1 and current["active"] is True and "${HOOK_URL}" in current["yaml"]
        assert ok(await c.get("/v1/routes"))["route"]["receiver"] == "team"

        changed = current["yaml"].replace("group_wait: 1s", "group_wait: 30s")
        assert changed != current["yaml"]
        broken = changed.replace("group_wait: 30s", "group_wait: soon")
        verdict = ok(await c.post("/v1/routes/validate", json={"yaml": broken}))
        assert verdict["valid"] is False and verdict["issues"] and verdict["issues"][0]["path"].startswith("route")
        assert ok(await c.post("/v1/routes/validate", json={"yaml": changed}))["valid"] is True
        update = {"yaml": changed, "expected_version": 1, "comment": "slower first page"}
        problem(await c.put("/v1/routes", json=update), 403)  # operators may not
    async with stack.client(scoped_admin) as c:
        problem(await c.put("/v1/routes", json=update), 403)  # nor an admin of some namespaces only
    async with stack.client(viewer_elsewhere) as c:
        problem(await c.get("/v1/routes/config"), 403)  # another cluster's viewer

    async with stack.client(admin) as c:
        problem(await c.put("/v1/routes", json={**update, "expected_version": 5}), 409)
        invalid = problem(await c.put("/v1/routes", json={**update, "yaml": broken}), 422)
        assert "group_wait" in invalid["detail"]
        problem(await c.put("/v1/routes", json={**update, "surprise": 1}), 422)
        put = ok(await c.put("/v1/routes", json=update))
        assert put["version"] == 2 and put["active"] is True and put["comment"] == "slower first page"
        assert ok(await c.get("/v1/routes/config"))["version"] == 2
        old = ok(await c.get("/v1/routes/config", params={"version": 1}))
        assert old["active"] is False and "group_wait: 1s" in old["yaml"]
        problem(await c.get("/v1/routes/config", params={"version": 99}), 404)
        versions = ok(await c.get("/v1/routes/versions"))["versions"]
        assert [v["version"] for v in versions] == [2, 1]
        deadline = time.monotonic() + 15
        while True:
            tree = ok(await c.get("/v1/routes"))
            if tree["route"]["group_wait_seconds"] == 30.0 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert tree["route"]["group_wait_seconds"] == 30.0 and tree.get("version") == 2
        while True:
            audit = ok(await c.get("/v1/audit", params={"action": "routes.put"}))["items"]
            if audit or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert audit[0]["reason"] == "slower first page" and audit[0]["details"]["version"] == 2
