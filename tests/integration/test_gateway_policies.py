"""The policy editor's calls through the gateway, answered by the healer's real policy endpoints on real NATS and
PostgreSQL: validation names the offending line, the preview replays the incidents the caller may see through
the planner (the edited document beside the one in force), a put makes a version, past versions are read back,
and a rollback is a put of an old version's document."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from opsbus.common.bus import Bus
from opsbus.common.testing.fixtures import MakeBus
from tests.integration.gateway_stack import GatewayStack, gateway_stack
from tests.integration.healer_policies import POLICIES, crashing, policy_endpoints

pytestmark = pytest.mark.integration

EDITED = POLICIES.replace(
    """      - action: delete_pod
        verify: alert_resolved
        timeout: 2m
""",
    "",
).replace("    ladder:", "    dry_run: true\n    ladder:")
BROKEN = EDITED.replace("timeout: 5m", "timeout: soon")


@pytest.fixture
async def stack(database_url: str, nats_url: str) -> AsyncIterator[GatewayStack]:
    async for s in gateway_stack(database_url, nats_url):
        yield s


@pytest.fixture
async def bus(make_bus: MakeBus) -> Bus:
    bus = await make_bus("tester")
    await bus.ensure_streams()
    return bus


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


async def test_validate_preview_put_versions_and_roll_back(stack: GatewayStack, bus: Bus, database_url: str) -> None:
    async with policy_endpoints(bus.nc, database_url):
        await stack.start()
        admin = await stack.key("admin")
        shop_operator = await stack.key("operator", namespaces=["shop"])
        shop, other = crashing("shop", "web-1"), crashing("payments", "api-1")
        for alert in (shop, other):
            await bus.publisher.publish(alert)

        async with stack.client(admin) as c:
            current = ok(await c.get("/v1/policies"))
            assert current["version"] == 1 and current["document"] == POLICIES

            verdict = ok(await c.post("/v1/policies/validate", json={"document": BROKEN}))
            assert verdict["valid"] is False
            [issue] = verdict["issues"]
            assert issue["line"] == BROKEN.splitlines().index("        timeout: soon") + 1
            assert "duration" in issue["message"]

            deadline = time.monotonic() + 15
            while len(ok(await c.get("/v1/incidents"))["items"]) < 2 and time.monotonic() < deadline:  # noqa: ASYNC110 - polls the API
                await asyncio.sleep(0.1)
            preview = ok(await c.post("/v1/policies/preview", json={"document": EDITED}))
            assert preview["valid"] is True and preview["current_version"] == 1 and preview["assumptions"]
            by_id = {i["incident_id"]: i for i in preview["items"]}
            assert set(by_id) == {shop.id, other.id}
            item = by_id[shop.id]
            assert (item["current"]["action"], item["current"]["decision"]) == ("delete_pod", "planned")
            assert (item["edited"]["action"], item["edited"]["decision"]) == ("rollout_restart", "dry_run")
            assert item["changed"] is True and item["namespace"] == "shop"
            invalid = ok(await c.post("/v1/policies/preview", json={"document": BROKEN}))
            assert invalid["valid"] is False and invalid["items"] == [] and invalid["issues"]

        async with stack.client(shop_operator) as c:
            mine = ok(await c.post("/v1/policies/preview", json={"document": EDITED}))
            assert [i["incident_id"] for i in mine["items"]] == [shop.id]  # never another tenant's incident
            ok(await c.post("/v1/policies/preview", json={"document": EDITED, "namespace": "payments"}), 403)
            ok(await c.put("/v1/policies", json={"document": EDITED, "expected_version": 1}), 403)

        async with stack.client(admin) as c:
            put = ok(await c.put("/v1/policies", json={"document": EDITED, "expected_version": 1, "comment": "dry"}))
            assert put["version"] == 2
            ok(await c.put("/v1/policies", json={"document": EDITED, "expected_version": 1}), 409)
            versions = ok(await c.get("/v1/policies/versions"))["versions"]
            assert [(v["version"], v["current"], v["comment"]) for v in versions] == [
                (2, True, "dry"),
                (1, False, "loaded"),
            ]
            first = ok(await c.get("/v1/policies", params={"version": 1}))
            assert first["document"] == POLICIES
            ok(await c.get("/v1/policies", params={"version": 9}), 404)
            back = {"document": first["document"], "expected_version": 2, "comment": "roll back to version 1"}
            assert ok(await c.put("/v1/policies", json=back))["version"] == 3
            assert ok(await c.get("/v1/policies"))["document"] == POLICIES
