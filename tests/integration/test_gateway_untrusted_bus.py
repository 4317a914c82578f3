"""What the real gateway (uvicorn, NATS, PostgreSQL) shows of messages it did not write (issue 28): frames
built from decoded events, never copied bytes, so a message cannot forge SSE frames; and one scope rule for
every pattern, so a longer pattern cannot reach another tenant's namespace, on `/v1/events` and the stream;
`opsbus tail` (the real CLI process) going on past what it cannot show; and the scope module's matcher
against nats-server's own."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from opsbus.common.bus import Bus
from opsbus.gateway.domain.scopes import matches
from tests.integration.gateway_stack import GatewayStack, gateway_stack
from tests.integration.test_gateway_stream_auth import alert_in, connected, frames

pytestmark = pytest.mark.integration
MakeBus = Callable[..., Awaitable[Bus]]

FORGED = b'{"type": "x"}\n\nid: 999\nevent: alert.fired\ndata: {"subject": "Pod/team-a/forged"}\n\n'
# a CloudEvent over many lines, with blank lines in its whitespace (copied, each would end or break a frame)
SPREAD = json.dumps(json.loads(alert_in("team-a", "spread").to_json()), indent=1).replace("\n", "\n\n")


@pytest.fixture
async def stack(database_url: str, nats_url: str) -> AsyncIterator[GatewayStack]:
    async for s in gateway_stack(database_url, nats_url):
        yield s


@pytest.fixture
async def bus(stack: GatewayStack, make_bus: MakeBus) -> Bus:
    """The gateway started, and a bus with the streams to publish what the gateway will read."""
    await stack.start()
    bus = await make_bus("tester")
    await bus.ensure_streams()
    return bus


async def test_a_message_with_newlines_is_one_frame_and_an_undecodable_one_reveals_nothing(
    stack: GatewayStack, bus: Bus
) -> None:
    viewer = await stack.key("viewer", namespaces=["team-a"])
    async with (
        stack.client(viewer) as c,
        c.stream("GET", "/v1/events/stream", params={"pattern": "alert.>"}) as response,
    ):
        lines = await connected(response)
        forged = await bus.js.publish("alert.fired.prod.team-a", FORGED)
        spread = await bus.js.publish("alert.fired.prod.team-a", SPREAD.encode())
        binary = await bus.js.publish("alert.fired.prod.team-a", b"\xff\xfe\n\ndata: x\n\n")
        after = await bus.publisher.publish(alert_in("team-a", "after"))
        got = await frames(lines, 4)
    assert [int(f["id"]) for f in got] == [forged.seq, spread.seq, binary.seq, after.seq]
    assert [f["event"] for f in got] == ["undecodable", "io.opsbus.alert.fired.v1", "undecodable", got[3]["event"]]
    assert json.loads(got[0]["data"]) == {"sequence": forged.seq, "reason": "not UTF-8 JSON"}
    assert json.loads(got[2]["data"]) == {"sequence": binary.seq, "reason": "not UTF-8 JSON"}
    assert json.loads(got[1]["data"])["subject"] == "Pod/team-a/spread"  # decoded, re-serialised on one line
    assert json.loads(got[3]["data"])["subject"] == "Pod/team-a/after"
    assert not any("forged" in f["data"] or f["id"] == "999" for f in got)


async def test_json_that_is_not_a_cloudevent_is_undecodable_on_the_stream_and_null_in_history(
    stack: GatewayStack, bus: Bus
) -> None:
    viewer = await stack.key("viewer", namespaces=["team-a"])
    odd = [b"[1, 2]", b'{"type": "io.opsbus.alert.fired.v1"}', b'{"specversion": "1.0", "id": "1", "source": "/x", '
           b'"type": "bad type\\n\\nid: 9"}', b'{"n": NaN}']  # fmt: skip
    acks = [await bus.js.publish("alert.fired.prod.team-a", body) for body in odd]
    async with (
        stack.client(viewer) as c,
        c.stream("GET", "/v1/events/stream", params={"pattern": "alert.fired.>"}, headers={"Last-Event-ID": "0"}) as r,
    ):
        got = await frames(await connected(r), len(odd))
    assert [f["event"] for f in got] == ["undecodable"] * len(odd)
    assert [json.loads(f["data"])["reason"] for f in got] == [
        "not a JSON object",
        "not a CloudEvent: no `specversion` attribute",
        "not a CloudEvent: `type` is not a reverse-DNS name",
        "not UTF-8 JSON",
    ]
    async with stack.client(viewer) as c:
        page = (await c.get("/v1/events", params={"subject": "alert.>", "after": 0})).json()
    assert [(e["sequence"], e["event"]) for e in page["events"]] == [(a.seq, None) for a in acks]


async def test_a_longer_pattern_cannot_reach_another_namespace_on_history_or_the_stream(
    stack: GatewayStack, bus: Bus
) -> None:
    await bus.publisher.publish(alert_in("team-b", "secret"))
    viewer_a = await stack.key("viewer", namespaces=["team-a"])
    async with stack.client(viewer_a) as c:
        for pattern in ("alert.fired.prod.team-b.>", "alert.fired.prod.team-b.x", "alert.*.*.team-b.>"):
            for path, name in (("/v1/events", "subject"), ("/v1/events/stream", "pattern")):
                refused = await c.get(path, params={name: pattern, "after": 0})
                assert refused.status_code == 403, (path, pattern, refused.text)
                assert refused.headers["content-type"].startswith("application/problem+json")
                assert "namespace team-b" in refused.json()["detail"]
        # in scope but matching no opsbus subject (five tokens): 400, not an empty success
        shape = await c.get("/v1/events", params={"subject": "alert.fired.prod.team-a.>"})
        assert shape.status_code == 400 and "4 tokens" in shape.json()["detail"]
        # the same data through a pattern the rule narrows: nothing of team-b
        page = (await c.get("/v1/events", params={"subject": "alert.>", "after": 0})).json()
        assert page["events"] == []


async def test_opsbus_tail_notes_what_it_cannot_show_and_goes_on(stack: GatewayStack, bus: Bus) -> None:
    viewer = await stack.key("viewer", namespaces=["team-a"])
    junk = await bus.js.publish("alert.fired.prod.team-a", FORGED)
    good = await bus.publisher.publish(alert_in("team-a", "after"))
    env = {**os.environ, "OPSBUS_URL": stack.url, "OPSBUS_API_KEY": viewer, "COLUMNS": "200"}
    tail = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "opsbus.cli", "tail", "alert.>", "--since", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    assert tail.stdout is not None and tail.stderr is not None
    try:
        shown = (await asyncio.wait_for(tail.stdout.readline(), 30)).decode()
        noted = (await asyncio.wait_for(tail.stderr.readline(), 5)).decode()
        still_running = tail.returncode is None
    finally:
        tail.kill()
        await tail.wait()
    assert noted.strip() == f"event {junk.seq}: skipped, not UTF-8 JSON"
    assert shown.split()[0] == str(good.seq) and "io.opsbus.alert.fired.v1 Pod/team-a/after" in shown
    assert still_running


async def test_the_scope_matcher_agrees_with_nats_server(make_bus: MakeBus) -> None:
    tokens = ["alert", "fired", "prod", "a", "_"]
    subjects = [
        ".".join(t) for n in (1, 2, 3, 4, 5) for t in itertools.product(tokens[:3] if n > 3 else tokens, repeat=n)
    ]
    patterns = [".".join(t) for n in (1, 2, 3, 4) for t in itertools.product(["alert", "prod", "*"], repeat=n)]
    patterns += [f"{p}.>" for p in patterns if len(p.split(".")) < 4] + [">"]
    nc = (await make_bus("tester")).nc
    got: dict[str, set[str]] = {p: set() for p in patterns}
    for pattern in patterns:

        async def record(msg: Any, pattern: str = pattern) -> None:
            got[pattern].add(msg.subject)

        await nc.subscribe(pattern, cb=record)
    await nc.flush()
    for subject in subjects:
        await nc.publish(subject, b"")
    await nc.flush()
    expected = {p: {s for s in subjects if matches(p, s)} for p in patterns}
    for _ in range(100):  # callbacks run in the subscriptions' own tasks
        if got == expected:
            break
        await asyncio.sleep(0.05)
    for pattern in patterns:
        assert got[pattern] == expected[pattern], pattern
    assert sum(map(len, expected.values())) > len(subjects)  # the sample exercises matching, not silence
