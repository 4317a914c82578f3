"""The gateway's Server-Sent Events stream (delivery, tenancy, resume with Last-Event-ID) and OIDC bearer
tokens validated against a JWKS served on 127.0.0.1, with real NATS, PostgreSQL and uvicorn."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from opsbus.common.bus import Bus
from opsbus.common.events import Envelope, ObjectRef
from opsbus.common.events.examples import example_events
from opsbus.common.events.payloads import AlertFired
from tests.integration.gateway_stack import GatewayStack, gateway_stack

pytestmark = pytest.mark.integration

MakeBus = Callable[..., Awaitable[Bus]]


@pytest.fixture
async def stack(database_url: str, nats_url: str) -> AsyncIterator[GatewayStack]:
    async for s in gateway_stack(database_url, nats_url):
        yield s


def alert_in(namespace: str, name: str) -> Envelope:
    base = example_events()[AlertFired.event_type]

    payload = base.payload_as(AlertFired)
    return Envelope.build(
        payload, service="watcher", cluster="prod", obj=ObjectRef(kind="Pod", namespace=namespace, name=name)
    )


async def frames(lines: AsyncIterator[str], count: int, timeout: float = 10.0) -> list[dict[str, str]]:
    """The next `count` SSE events (comments skipped)."""
    out: list[dict[str, str]] = []
    current: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while len(out) < count:
        line = await asyncio.wait_for(lines.__anext__(), max(0.01, deadline - time.monotonic()))
        if line.startswith(":"):
            continue
        if not line:
            if "data" in current or "event" in current:
                out.append(current)
            current = {}
            continue
        field, _, value = line.partition(": ")
        current[field] = value
    return out


async def connected(response: httpx.Response) -> AsyncIterator[str]:
    lines = response.aiter_lines()
    first = await asyncio.wait_for(lines.__anext__(), 5)
    assert first.startswith(": connected")
    return lines


async def test_sse_delivers_filters_by_namespace_and_resumes_from_last_event_id(
    stack: GatewayStack, make_bus: MakeBus
) -> None:
    await stack.start()
    bus = await make_bus("tester")
    await bus.ensure_streams()
    viewer_a = await stack.key("viewer", namespaces=["team-a"])
    async with stack.client(viewer_a) as c:
        async with c.stream("GET", "/v1/events/stream", params={"pattern": "alert.>"}) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = await connected(response)
            await bus.publisher.publish(alert_in("team-b", "secret-1"))
            first = await bus.publisher.publish(alert_in("team-a", "web-1"))
            got = await frames(lines, 1)
        assert got[0]["event"] == "io.opsbus.alert.fired.v1"
        assert int(got[0]["id"]) == first.seq
        assert json.loads(got[0]["data"])["subject"] == "Pod/team-a/web-1"
        # disconnected: two more events are published, one of them for another tenant
        await bus.publisher.publish(alert_in("team-a", "web-2"))
        await bus.publisher.publish(alert_in("team-b", "secret-2"))
        await bus.publisher.publish(alert_in("team-a", "web-3"))
        headers = {"Last-Event-ID": got[0]["id"]}
        async with c.stream("GET", "/v1/events/stream", params={"pattern": "alert.>"}, headers=headers) as again:
            resumed = await frames(await connected(again), 2)
        names = [json.loads(f["data"])["subject"] for f in resumed]
        assert names == ["Pod/team-a/web-2", "Pod/team-a/web-3"]
        # another tenant's namespace by name: 403; a pattern with no family: 400
        denied = await c.get("/v1/events/stream", params={"pattern": "alert.fired.prod.team-b"})
        assert denied.status_code == 403
        assert (await c.get("/v1/events/stream", params={"pattern": "*.>"})).status_code == 400


async def test_slow_sse_client_is_dropped_and_can_resume(stack: GatewayStack, make_bus: MakeBus) -> None:
    await stack.start(sse_queue=5)
    bus = await make_bus("tester")
    await bus.ensure_streams()
    viewer = await stack.key("viewer")
    async with (
        stack.client(viewer) as c,
        c.stream("GET", "/v1/events/stream", params={"pattern": "alert.>"}) as response,
    ):
        lines = await connected(response)
        for i in range(200):
            await bus.publisher.send(alert_in("team-a", f"pod-{i}"))
        await bus.publisher.flush()
        text = [line async for line in lines]
        assert "event: dropped" in text
    assert stack.gateway is not None
    assert stack.gateway.ctx.streams.clients == 0


# --- OIDC ------------------------------------------------------------------------------------------
class Jwks:
    """A JWKS endpoint on 127.0.0.1 and the private key that signs test tokens."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        self.document = json.dumps({"keys": [{**public, "kid": "k1", "use": "sig", "alg": "RS256"}]}).encode()
        self.port = 0
        self.fetches = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        self.fetches += 1
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(self.document)}\r\n"
        writer.write(head.encode() + b"Connection: close\r\n\r\n" + self.document)
        await writer.drain()
        writer.close()

    def token(self, **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": "https://idp.example.com", "aud": "opsbus", "sub": "alice", "iat": now, "exp": now + 300}
        return jwt.encode({**body, **claims}, self.key, algorithm="RS256", headers={"kid": "k1"})


@pytest.fixture
async def jwks() -> AsyncIterator[Jwks]:
    j = Jwks()
    server = await asyncio.start_server(j.handle, "127.0.0.1", 0)
    j.port = server.sockets[0].getsockname()[1]
    yield j
    server.close()
    await server.wait_closed()


async def test_oidc_bearer_tokens_are_validated_against_the_jwks(stack: GatewayStack, jwks: Jwks) -> None:
    await stack.start(
        oidc={
            "issuer": "https://idp.example.com",
            "audience": "opsbus",
            "jwks_url": f"http://127.0.0.1:{jwks.port}/jwks",
        }
    )
    good = jwks.token(opsbus_role="viewer", opsbus_namespaces=["team-a"], email="alice@example.com")
    async with stack.client(good) as c:
        assert (await c.get("/v1/audit")).status_code == 200
        assert (await c.get("/v1/audit", params={"namespace": "team-b"})).status_code == 403
        assert (
            await c.post("/v1/keys", json={"name": "x", "role": "viewer", "namespaces": ["team-a"]})
        ).status_code == 403
    for bad in (
        jwks.token(opsbus_role="viewer", exp=int(time.time()) - 3600),
        jwks.token(opsbus_role="viewer", aud="someone-else"),
        jwks.token(opsbus_role="viewer", iss="https://evil.example.com"),
        jwks.token(),  # no role claim
        jwt.encode(
            {"sub": "mallory", "opsbus_role": "admin", "exp": int(time.time()) + 60}, "k" * 32, algorithm="HS256"
        ),
        good[:-4] + "AAAA",
    ):
        async with stack.client(bad) as c:
            response = await c.get("/v1/audit")
            assert response.status_code == 401, response.text
            assert response.headers["content-type"].startswith("application/problem+json")
    assert jwks.fetches >= 1
