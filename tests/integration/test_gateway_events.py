"""`GET /v1/events`: history from the real JetStream streams through the real gateway (uvicorn, NATS,
PostgreSQL): filtered to the caller's namespaces on the server, paged by stream sequence without losing or
repeating an event, started at a time, and refused with problem+json when the pattern or scope is wrong."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from opsbus.common.bus import Bus
from tests.integration.gateway_stack import GatewayStack, gateway_stack
from tests.integration.test_gateway_stream_auth import alert_in

pytestmark = pytest.mark.integration
MakeBus = Callable[..., Awaitable[Bus]]


@pytest.fixture
async def stack(database_url: str, nats_url: str) -> AsyncIterator[GatewayStack]:
    async for s in gateway_stack(database_url, nats_url):
        yield s


async def all_pages(stack: GatewayStack, token: str, params: dict[str, Any]) -> list[list[dict[str, Any]]]:
    pages: list[list[dict[str, Any]]] = []
    async with stack.client(token) as c:
        while True:
            response = await c.get("/v1/events", params=params)
            assert response.status_code == 200, response.text
            body = response.json()
            pages.append(body["events"])
            if not body["more"]:
                return pages
            params = {**params, "after": body["next_after"]}
            params.pop("since", None)


async def test_history_is_scoped_paged_by_sequence_and_starts_at_a_time(stack: GatewayStack, make_bus: MakeBus) -> None:
    await stack.start()
    bus = await make_bus("tester")
    await bus.ensure_streams()
    acks = []
    for i in range(7):
        acks.append(await bus.publisher.publish(alert_in("team-a", f"web-{i}")))
        await bus.publisher.publish(alert_in("team-b", f"secret-{i}"))
    seqs_a = [a.seq for a in acks]

    viewer_a = await stack.key("viewer", namespaces=["team-a"])
    pages = await all_pages(stack, viewer_a, {"subject": "alert.>", "limit": 3})
    assert [len(p) for p in pages] == [3, 3, 1]
    events = [e for p in pages for e in p]
    assert [e["sequence"] for e in events] == seqs_a  # in order, none lost, none repeated
    assert [e["event"]["subject"] for e in events] == [f"Pod/team-a/web-{i}" for i in range(7)]
    assert all(e["subject"] == "alert.fired.prod.team-a" for e in events)
    assert events[0]["event"]["type"] == "io.opsbus.alert.fired.v1"

    admin = await stack.key("admin")
    everything = [e for p in await all_pages(stack, admin, {"subject": "alert.fired.prod.*", "limit": 1000}) for e in p]
    assert len(everything) == 14
    only_b = await all_pages(stack, admin, {"subject": "alert.*.*.team-b"})
    assert [e["event"]["subject"] for e in only_b[0]] == [f"Pod/team-b/secret-{i}" for i in range(7)]

    async with stack.client(viewer_a) as c:
        later = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
        assert (await c.get("/v1/events", params={"subject": "alert.>", "since": later})).json() == {
            "events": [],
            "next_after": None,
            "more": False,
        }
        earlier = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
        page = (await c.get("/v1/events", params={"subject": "alert.>", "since": earlier, "limit": 100})).json()
        assert len(page["events"]) == 7 and page["more"] is False and page["next_after"] == seqs_a[-1]
        # nothing in this family yet
        assert (await c.get("/v1/events", params={"subject": "deploy.>"})).json()["events"] == []
        # another tenant by name: 403; a pattern without a family or with a bad token: 400; naive time: 422
        denied = await c.get("/v1/events", params={"subject": "alert.fired.prod.team-b"})
        assert denied.status_code == 403 and denied.headers["content-type"].startswith("application/problem+json")
        assert (await c.get("/v1/events", params={"subject": "*.>"})).status_code == 400
        assert (await c.get("/v1/events", params={"subject": "alert.fi red.>"})).status_code == 400
        naive = await c.get("/v1/events", params={"subject": "alert.>", "since": "2026-01-01T00:00:00"})
        assert naive.status_code == 422
        assert (await c.get("/v1/events", params={"subject": "alert.>", "after": -1})).status_code == 422
    async with stack.client() as anonymous:
        assert (await anonymous.get("/v1/events", params={"subject": "alert.>"})).status_code == 401
    # no consumer is left behind on the stream
    info = await bus.js.stream_info("ALERT")
    durable = {c.name for c in await bus.js.consumers_info("ALERT") if c.config.durable_name}
    assert info.state.consumer_count == len(durable)
