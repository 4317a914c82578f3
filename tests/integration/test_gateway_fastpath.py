"""`GET /v1/whoami` and `GET /v1/audit` answered by the fast path (routes/fastpath.py) say exactly what FastAPI's
routes say: the same status, media type and JSON (entries, cursors, problem details) for every caller, filter,
page and error, asked of the real gateway and of the same app without the fast path, over the same PostgreSQL
rows; and the request metrics still count them under their route template."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from opsbus.gateway import store
from opsbus.gateway.app import create_app
from opsbus.gateway.routes.fastpath import FastReads
from tests.integration.gateway_stack import GatewayStack, gateway_stack

pytestmark = pytest.mark.integration

START = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
async def stack(database_url: str, nats_url: str) -> AsyncIterator[GatewayStack]:
    async for s in gateway_stack(database_url, nats_url):
        yield s


def _rows() -> list[dict[str, Any]]:
    """Entries with what a JSON writer can get wrong: whole seconds and microseconds, no namespace, non-ASCII
    and quotes in text, nested details with numbers, booleans and nulls."""
    return [
        {
            "event_id": f"e-{i}",
            "time": START + timedelta(seconds=i, microseconds=0 if i % 3 == 0 else 1200 * i),
            "service": ("healer", "deployer")[i % 2],
            "cluster": ("prod", "edge")[i % 2],
            "namespace": (None, "team-a", "team-b")[i % 3],
            "actor_kind": "service",
            "actor_id": ("healer", "ci-bot")[i % 2],
            "action": ("recovery.delete_pod", "deploy.request")[i % 2],
            "target_kind": "Deployment",
            "target_name": f"web-{i}",
            "outcome": ("executed", "denied", "dry_run")[i % 3],
            "reason": f'crash "loop" {i} redémarré 重启',
            "details": {"step": i, "ratio": 0.25 * i, "ok": i % 2 == 0, "none": None, "nested": {"a": [1, "b"]}},
            "request_id": f"req-{i}" if i % 2 else None,
            "correlation_id": f"corr-{i // 4}",
            "dry_run": i % 5 == 0,
        }
        for i in range(30)
    ]


REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    ("admin", "/v1/whoami", {}),
    ("viewer", "/v1/whoami", {}),
    ("none", "/v1/whoami", {}),
    ("bad", "/v1/whoami", {}),
    ("admin", "/v1/audit", {}),
    ("admin", "/v1/audit", {"limit": 7}),
    ("admin", "/v1/audit", {"limit": 7, "cursor": "20"}),
    ("admin", "/v1/audit", {"actor": "ci-bot", "outcome": "denied", "limit": 3}),
    ("admin", "/v1/audit", {"namespace": "team-b", "since": "2026-12-01T08:00:10Z", "until": "2026-12-01T09:00:00Z"}),
    (
        "admin",
        "/v1/audit",
        {"correlation_id": "corr-2", "target": "web-9", "cluster": "edge", "action": "deploy.request"},
    ),
    ("viewer", "/v1/audit", {}),
    ("viewer", "/v1/audit", {"limit": 2, "cursor": "29"}),
    ("viewer", "/v1/audit", {"namespace": "team-b"}),  # out of scope: 403
    ("viewer", "/v1/audit", {"since": "2026-12-01T08:00:10"}),  # no time zone: 422
    ("admin", "/v1/audit", {"limit": 0}),
    ("admin", "/v1/audit", {"limit": "many"}),
    ("admin", "/v1/audit", {"outcome": "maybe"}),
    ("admin", "/v1/audit", {"namespace": "Not A Name!"}),
    ("admin", "/v1/audit", {"cursor": "abc"}),
    ("none", "/v1/audit", {"limit": 0}),  # 401 before what the query got wrong
    ("bad", "/v1/audit", {}),
]


def _seen(response: httpx.Response) -> tuple[int, str, Any]:
    body = response.json()
    if isinstance(body, dict):
        body.pop("request_id", None)  # one per request
    return response.status_code, response.headers["content-type"], body


async def test_fast_reads_answer_as_the_routes_do(stack: GatewayStack) -> None:
    gateway = await stack.start(rate_per_second=1000, rate_burst=1000)  # two clients, one key
    ctx = gateway.ctx
    async with ctx.reads.db.engine.begin() as conn:
        await conn.execute(store.audit_entries.insert(), _rows())
    tokens = {
        "admin": await stack.key("admin"),
        "viewer": await stack.key("viewer", namespaces=["team-a"], clusters=["prod", "edge"]),
    }
    headers = {who: {"Authorization": f"Bearer {token}"} for who, token in tokens.items()}
    headers |= {"none": {}, "bad": {"X-API-Key": "opsb_0000000000_" + "A" * 43}}

    plain = create_app(dataclasses.replace(ctx, registry=CollectorRegistry()))  # its own request metrics
    plain.user_middleware = [m for m in plain.user_middleware if m.cls is not cast(Any, FastReads)]
    assert len(plain.user_middleware) == len(gateway.app.user_middleware) - 1
    transport = httpx.ASGITransport(app=plain)
    async with (
        httpx.AsyncClient(base_url=stack.url, timeout=10.0) as fast,
        httpx.AsyncClient(transport=transport, base_url="http://gateway", timeout=10.0) as routed,
    ):
        statuses = []
        for who, path, params in REQUESTS:
            answered = _seen(await fast.get(path, params=params, headers=headers[who]))
            expected = _seen(await routed.get(path, params=params, headers=headers[who]))
            assert answered == expected, (who, path, params)
            statuses.append(answered[0])
        first = (await fast.get("/v1/audit", params={"limit": 7}, headers=headers["admin"])).json()

    assert statuses.count(200) == 10 and {401, 403, 422} <= set(statuses)
    assert [e["id"] for e in first["items"]] == [f"e-{i}" for i in range(29, 22, -1)]
    assert first["items"][0]["time"] == "2026-12-01T08:00:29.034800Z" and first["next_cursor"] is not None
    assert first["items"][4]["time"] == "2026-12-01T08:00:25.030000Z"
    assert next(e for e in first["items"] if e["id"] == "e-27")["time"] == "2026-12-01T08:00:27Z"
    metrics = generate_latest(ctx.registry).decode()
    assert 'opsbus_gateway_http_requests_total{method="GET",route="/v1/audit",status="200"}' in metrics
    assert 'opsbus_gateway_http_requests_total{method="GET",route="/v1/whoami",status="401"}' in metrics
