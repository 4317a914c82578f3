"""The gateway against real NATS and PostgreSQL, served by uvicorn on 127.0.0.1: keys, tenancy, problem+json,
deploy requests on the bus, the Alertmanager webhook, request-reply to the real notifier, 503 without it."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from opsbus.common.audit import Auditor
from opsbus.common.bus import Bus, ConsumerSpec, Delivery
from opsbus.common.events.payloads.audit import AuditOutcome
from opsbus.common.events.payloads.common import ResourceRef
from opsbus.common.rpc import serve
from opsbus.notifier.domain.config import parse_config
from opsbus.notifier.domain.matchers import Matcher
from opsbus.notifier.domain.muting import Silence
from opsbus.notifier.service import endpoints
from tests.integration.gateway_stack import GatewayStack, gateway_stack

pytestmark = pytest.mark.integration

MakeBus = Callable[..., Awaitable[Bus]]
EXAMPLE = Path(__file__).parents[2] / "services" / "gateway" / "tests" / "alertmanager_v4_example.json"


@pytest.fixture
async def stack(database_url: str, nats_url: str) -> AsyncIterator[GatewayStack]:
    async for s in gateway_stack(database_url, nats_url):
        yield s


async def collect(bus: Bus, stream: str, subjects: list[str], durable: str) -> list[Delivery]:
    got: list[Delivery] = []

    async def handle(d: Delivery) -> None:
        got.append(d)

    bus.consumer(ConsumerSpec(durable=durable, stream=stream, subjects=subjects), handle)
    await bus.start()
    return got


async def eventually(check: Callable[[], Awaitable[bool]] | Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["title"] and body["request_id"] == response.headers["x-request-id"]
    return dict(body)


async def test_health_ready_metrics_and_openapi(stack: GatewayStack) -> None:
    await stack.start()
    async with stack.client() as c:
        assert (await c.get("/healthz")).status_code == 200
        ready = await c.get("/readyz")
        assert ready.status_code == 200, ready.text
        spec = (await c.get("/v1/openapi.json")).json()
        assert spec["openapi"].startswith("3.1")
        assert "/v1/deployments" in spec["paths"] and "/v1/events/stream" in spec["paths"]
        metrics = await c.get("/metrics")
        assert "opsbus_gateway_http_requests_total" in metrics.text


async def test_key_lifecycle_create_use_revoke_expire(stack: GatewayStack) -> None:
    await stack.start(key_cache_seconds=60.0)
    admin = await stack.key("admin")
    async with stack.client(admin) as c:
        created = await c.post("/v1/keys", json={"name": "ci", "role": "viewer", "namespaces": ["payments"]})
        assert created.status_code == 201, created.text
        body = created.json()
        token, key_id = body["token"], body["id"]
        assert token.startswith("opsb_") and body["role"] == "viewer"
        listed = (await c.get("/v1/keys")).json()["items"]
        assert key_id in [k["id"] for k in listed]
        assert all("token" not in k and "digest" not in k for k in listed)
    async with stack.client(token) as viewer:
        assert (await viewer.get("/v1/audit")).status_code == 200
        # a viewer cannot mint keys, and nobody can out-scope themselves
        assert_problem(await viewer.post("/v1/keys", json={"name": "x", "role": "viewer", "namespaces": ["*"]}), 403)
    async with stack.client(admin) as c:
        revoked = await c.delete(f"/v1/keys/{key_id}")
        assert revoked.status_code == 200 and revoked.json()["revoked_at"]
        assert_problem(await c.delete(f"/v1/keys/{key_id}"), 409)
        assert_problem(await c.delete("/v1/keys/no-such-key"), 404)
    async with stack.client(token) as viewer:
        problem = assert_problem(await viewer.get("/v1/audit"), 401)
        assert "revoked" in problem["detail"]
    # an expired key fails like an unknown one
    assert stack.gateway is not None
    clock = stack.gateway.ctx.keys.clock
    short = await stack.key("viewer", expires_at=clock() + timedelta(seconds=1))
    async with stack.client(short) as c:
        assert (await c.get("/v1/audit")).status_code == 200
    stack.gateway.ctx.keys.clock = lambda: clock() + timedelta(seconds=5)
    async with stack.client(short) as c:
        assert_problem(await c.get("/v1/audit"), 401)
    async with stack.client("opsb_0000000000_" + "A" * 43) as c:
        assert_problem(await c.get("/v1/audit"), 401)
    async with stack.client() as c:
        response = await c.get("/v1/audit")
        assert_problem(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_viewer_of_namespace_a_cannot_see_b_in_the_audit_trail(stack: GatewayStack, make_bus: MakeBus) -> None:
    await stack.start()
    bus = await make_bus("tester")
    auditor = Auditor(service="healer", cluster="prod", sink=bus.publisher.publish)
    for namespace in ("team-a", "team-b", "team-a"):
        await auditor.record(
            action="recovery.delete_pod",
            target=ResourceRef(kind="Pod", namespace=namespace, name="web-1"),
            outcome=AuditOutcome.EXECUTED,
            reason=f"crash loop in {namespace}",
        )
    admin = await stack.key("admin")
    viewer_a = await stack.key("viewer", namespaces=["team-a"])

    async def rows(token: str, **params: Any) -> list[dict[str, Any]]:
        async with stack.client(token) as c:
            response = await c.get("/v1/audit", params=params)
            assert response.status_code == 200, response.text
            return list(response.json()["items"])

    await eventually(lambda: _count(rows(admin), 3))
    mine = await rows(viewer_a)
    assert len(mine) == 2 and {r["namespace"] for r in mine} == {"team-a"}
    async with stack.client(viewer_a) as c:
        assert_problem(await c.get("/v1/audit", params={"namespace": "team-b"}), 403)
    # pagination: one row per page, newest first, cursor reaches the end
    async with stack.client(admin) as c:
        first = (await c.get("/v1/audit", params={"limit": 2})).json()
        assert len(first["items"]) == 2 and first["next_cursor"]
        rest = (await c.get("/v1/audit", params={"limit": 2, "cursor": first["next_cursor"]})).json()
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None


async def _count(rows: Awaitable[list[dict[str, Any]]], n: int) -> bool:
    return len(await rows) >= n


async def test_deploy_request_is_published_with_correlation_id_and_location(
    stack: GatewayStack, make_bus: MakeBus
) -> None:
    await stack.start()
    bus = await make_bus("tester")
    await bus.ensure_streams()
    got = await collect(bus, "DEPLOY", ["deploy.requested.>"], "t-deploy")
    operator = await stack.key("operator", namespaces=["payments"])
    body: dict[str, Any] = {
        "workload": {"kind": "Deployment", "namespace": "payments", "name": "checkout"},
        "strategy": "rolling",
        "images": {"app": "registry.example.com/payments/checkout:1.43.0"},
        "reason": "CHG-1234",
    }
    async with stack.client(operator) as c:
        response = await c.post("/v1/deployments", json=body)
        assert response.status_code == 202, response.text
        accepted = response.json()
        assert response.headers["location"] == f"/v1/deployments/{accepted['request_id']}"
        await eventually(lambda: len(got) == 1)
        event = got[0].event
        assert got[0].subject == "deploy.requested.prod.payments"
        assert event.id == accepted["request_id"] and event.correlationid == accepted["correlation_id"]
        assert event.data["requester"]["kind"] == "apikey" and event.data["reason"] == "CHG-1234"
        # not its namespace: 403; a broken request: 422 with pointers; malformed JSON: 400
        other = {**body, "workload": {**body["workload"], "namespace": "billing"}}
        assert_problem(await c.post("/v1/deployments", json=other), 403)
        bad = assert_problem(await c.post("/v1/deployments", json={**body, "strategy": "canary"}), 422)
        assert bad["errors"]
        invalid = assert_problem(await c.post("/v1/deployments", json={**body, "workload": {"kind": "Pod"}}), 422)
        assert any(e["pointer"].startswith("#/workload") for e in invalid["errors"])
        raw = await c.post("/v1/deployments", content=b"{not json", headers={"content-type": "application/json"})
        assert_problem(raw, 400)
        # the deployer is not running: status says "requested"; history is a 503 with Retry-After
        status = await c.get(accepted["status_url"])
        assert status.status_code == 503 or status.json()["state"] == "requested", status.text
        history = await c.get("/v1/deployments", params={"namespace": "payments", "name": "checkout"})
        assert_problem(history, 503)
        assert history.headers["retry-after"]
    viewer = await stack.key("viewer", namespaces=["payments"])
    async with stack.client(viewer) as c:
        assert_problem(await c.post("/v1/deployments", json=body), 403)


async def test_body_limit_rate_limit_and_unknown_routes(stack: GatewayStack) -> None:
    await stack.start(max_body_bytes=2048, rate_per_second=1.0, rate_burst=3)
    admin = await stack.key("admin")
    async with stack.client(admin) as c:
        assert_problem(
            await c.post("/v1/silences", content=b"x" * 5000, headers={"content-type": "application/json"}), 413
        )
        assert_problem(await c.get("/v1/nothing-here"), 404)
        statuses = [(await c.get("/v1/audit")).status_code for _ in range(6)]
        assert 429 in statuses
        limited = await c.get("/v1/audit")
        assert_problem(limited, 429)
        assert int(limited.headers["retry-after"]) >= 1


async def test_alertmanager_webhook_publishes_alert_events(stack: GatewayStack, make_bus: MakeBus) -> None:
    await stack.start(alertmanager={"bearer_token": "am-token-for-tests"})
    bus = await make_bus("tester")
    await bus.ensure_streams()
    got = await collect(bus, "ALERT", ["alert.>"], "t-alerts")
    payload = json.loads(EXAMPLE.read_text())
    async with stack.client() as c:
        assert_problem(await c.post("/v1/alerts/alertmanager", json=payload), 401)
        wrong = await c.post("/v1/alerts/alertmanager", json=payload, headers={"Authorization": "Bearer nope"})
        assert_problem(wrong, 401)
        ok = await c.post(
            "/v1/alerts/alertmanager", json=payload, headers={"Authorization": "Bearer am-token-for-tests"}
        )
        assert ok.status_code == 200, ok.text
        assert ok.json()["accepted"] == len(payload["alerts"])
        # Alertmanager re-sends the same group: the stream keeps one copy of each event
        again = await c.post(
            "/v1/alerts/alertmanager", json=payload, headers={"Authorization": "Bearer am-token-for-tests"}
        )
        assert again.json()["event_ids"] == ok.json()["event_ids"]
    await eventually(lambda: len(got) >= len(payload["alerts"]))
    await asyncio.sleep(0.3)
    assert len(got) == len(payload["alerts"])
    fired = [d for d in got if d.event.type == "io.opsbus.alert.fired.v1"]
    assert fired and fired[0].event.data["source"] == "alertmanager"
    assert fired[0].subject.startswith("alert.fired.")
    # incidents read model: the alert shows up as a firing incident
    admin = await stack.key("admin")
    async with stack.client(admin) as c:

        async def listed() -> bool:
            return len((await c.get("/v1/incidents")).json()["items"]) >= 1

        await eventually(listed)
        first = (await c.get("/v1/incidents")).json()["items"][0]
        one = (await c.get(f"/v1/incidents/{first['id']}")).json()
        assert one["alert"]["source"] == "alertmanager"


async def test_notifier_rpc_through_the_gateway_and_503_without_it(
    stack: GatewayStack, nats_url: str, database_url: str, make_bus: MakeBus
) -> None:
    await stack.start()
    operator = await stack.key("operator", namespaces=["payments"])
    silence = {"matchers": ['namespace="payments"'], "duration_seconds": 600, "comment": "maintenance"}
    async with stack.client(operator) as c:
        down = await c.post("/v1/silences", json=silence)
        assert_problem(down, 503)
        assert down.headers["retry-after"]
    # the real notifier endpoints, in process

    notifier = _FakeNotifier()
    bus = await make_bus("notifier-endpoints")
    svc = await serve(bus.nc, "notifier", "0.1.0", endpoints(notifier))  # type: ignore[arg-type]
    try:
        async with stack.client(operator) as c:
            created = await c.post("/v1/silences", json=silence)
            assert created.status_code == 201, created.text
            sid = created.json()["id"]
            assert_problem(await c.post("/v1/silences", json={**silence, "matchers": ['namespace="billing"']}), 403)
            listed = (await c.get("/v1/silences")).json()["silences"]
            assert [s["id"] for s in listed] == [sid]
            expired = await c.delete(f"/v1/silences/{sid}")
            assert expired.status_code == 200 and expired.json()["state"] == "expired"
            bad = await c.post("/v1/silences", json={**silence, "matchers": ['namespace="payments"', 'alertname=~"("']})
            assert_problem(bad, 422)
            routes = await c.get("/v1/routes")
            assert routes.status_code == 200 and routes.json()["route"]["receiver"] == "team"
    finally:
        await svc.stop()


class _FakeNotifier:
    """The notifier's endpoint handlers need only these (its database-backed store is not under test here)."""

    def __init__(self) -> None:

        self.config = parse_config(
            "route:\n  receiver: team\nreceivers:\n  - name: team\n    webhook_configs:\n      - url: http://127.0.0.1:9/x\n",
            env={},
        )
        self.silences: dict[str, Any] = {}

    def clock(self) -> datetime:
        return datetime.now(UTC)

    async def create_silence(
        self, matchers: list[str], start: datetime, end: datetime, by: str, comment: str, caller: Any = None
    ) -> Any:

        silence = Silence(
            id=f"s{len(self.silences) + 1}",
            matchers=tuple(Matcher.parse(m) for m in matchers),
            starts_at=start,
            ends_at=end,
            created_by=by,
            comment=comment,
        )
        self.silences[silence.id] = silence
        return silence

    async def list_silences(self) -> list[Any]:
        return list(self.silences.values())

    async def expire_silence(self, silence_id: str, by: str, caller: Any = None) -> Any:

        s = self.silences[silence_id]
        self.silences[silence_id] = dataclasses.replace(s, ends_at=self.clock() - timedelta(seconds=1))
        return self.silences[silence_id]


async def test_an_incident_keeps_the_trace_id_of_its_alert(stack: GatewayStack, make_bus: MakeBus) -> None:
    """The console links an incident to `<jaeger>/trace/<trace id>`: the id is the alert's, from its traceparent."""
    from tests.browser.harness import crash_alert, detection_span  # noqa: PLC0415

    await stack.start()
    bus = await make_bus("watcher")
    trace_id = 0x4BF92F3577B34DA6A3CE929D0E0E4736
    alerts = [crash_alert("payments", "api-0"), crash_alert("payments", "api-1")]
    with detection_span(trace_id):
        await bus.publisher.publish(alerts[0])
    await bus.publisher.publish(alerts[1])  # another trace: the publisher's own
    admin = await stack.key("admin")
    async with stack.client(admin) as c:

        async def both() -> bool:
            return len((await c.get("/v1/incidents")).json()["items"]) == 2

        await eventually(both)
        listed = {i["id"]: i["trace_id"] for i in (await c.get("/v1/incidents")).json()["items"]}
        assert listed[alerts[0].id] == f"{trace_id:032x}"
        assert len(listed[alerts[1].id]) == 32 and listed[alerts[1].id] != listed[alerts[0].id]
        one = await c.get(f"/v1/incidents/{alerts[0].id}")
        assert one.status_code == 200 and one.json()["trace_id"] == f"{trace_id:032x}"
