"""`GET /v1/live`, the console's one live connection per tab, on the real gateway, NATS and PostgreSQL: it opens
with a `ready` frame naming where every family stands, sends a namespace-scoped caller only its namespaces'
events (filtered server-side), and a reconnect with the Last-Event-ID the browser kept (or `?cursor=`, which the
console uses when it reopens a closed connection) resumes after the last event seen: nothing lost, nothing twice.
A Last-Event-ID this endpoint did not send is a 422 problem."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from opsbus.common.bus import Bus
from tests.browser.harness import crash_alert
from tests.integration.gateway_stack import GatewayStack, gateway_stack

pytestmark = pytest.mark.integration


@pytest.fixture
async def stack(database_url: str, nats_url: str) -> AsyncIterator[GatewayStack]:
    async for s in gateway_stack(database_url, nats_url):
        await s.start()
        yield s


@pytest.fixture
async def bus(make_bus: Any) -> Bus:
    made: Bus = await make_bus("watcher")
    return made


@dataclass(frozen=True)
class Frame:
    id: str
    event: str
    data: dict[str, Any]


class Frames:
    """The SSE frames of one response, heartbeats aside, read from one line iterator."""

    def __init__(self, response: httpx.Response) -> None:
        self._lines = response.aiter_lines()

    async def next(self) -> Frame:
        fields: dict[str, str] = {}
        async for line in self._lines:
            if line:
                name, _, value = line.partition(": ")
                fields[name] = value
            elif "event" in fields:
                return Frame(fields.get("id", ""), fields["event"], json.loads(fields.get("data") or "{}"))
            else:
                fields.clear()  # a heartbeat
        raise AssertionError("the live stream ended")

    async def until(self, event_id: str, timeout: float = 30.0) -> list[Frame]:
        """Frames up to the one carrying the CloudEvent `event_id`."""
        frames: list[Frame] = []

        async def read() -> None:
            while not frames or frames[-1].data.get("id") != event_id:
                frames.append(await self.next())

        await asyncio.wait_for(read(), timeout)
        return frames


def event_ids(frames: list[Frame]) -> list[str]:
    return [f.data["id"] for f in frames if f.event != "ready"]


async def test_live_is_scoped_and_a_reconnect_resumes_after_the_last_event_seen(stack: GatewayStack, bus: Bus) -> None:
    token = await stack.key("operator", namespaces=["payments"])
    first, other, second = (
        crash_alert("payments", "api-1"),
        crash_alert("billing", "x"),
        crash_alert("payments", "api-2"),
    )
    async with stack.client(token) as c:
        async with c.stream("GET", "/v1/live", timeout=httpx.Timeout(30.0)) as live:
            assert live.status_code == 200 and live.headers["content-type"].startswith("text/event-stream")
            frames = Frames(live)
            ready = await frames.next()
            assert ready.event == "ready"
            for event in (first, other, second):
                await bus.publisher.publish(event)
            seen = await frames.until(second.id)
        assert event_ids(seen) == [first.id, second.id], "billing's alert must never reach a payments operator"
        after_first = seen[0].id

        # the tab comes back: the browser sends the id of the last frame it got
        async with c.stream("GET", "/v1/live", headers={"Last-Event-ID": after_first}) as resumed:
            again = await Frames(resumed).until(second.id)
        assert again[0].event == "ready" and again[0].id == after_first
        assert event_ids(again) == [second.id], "a resume must send what came after, once"

        # the console reopening a closed connection passes the cursor it kept from the ready frame
        async with c.stream("GET", "/v1/live", params={"cursor": ready.id}) as reopened:
            assert event_ids(await Frames(reopened).until(second.id)) == [first.id, second.id]

        bad = await c.get("/v1/live", headers={"Last-Event-ID": "alert=1;DROP TABLE"})
        assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")
