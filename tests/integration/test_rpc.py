"""Request-reply on the NATS services framework, against a real nats-server."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from pydantic import BaseModel, Field

from opsbus.common.bus import Bus
from opsbus.common.errors import ConflictError, NotFoundError, TransientError
from opsbus.common.rpc import Endpoint, RpcError, ServiceUnavailableError, call, serve

pytestmark = pytest.mark.integration

MakeBus = Callable[..., Awaitable[Bus]]


class GetPolicy(BaseModel):
    name: str = Field(min_length=1)


class Policy(BaseModel):
    name: str
    version: int


POLICIES = {"crashloop": Policy(name="crashloop", version=3)}


async def get_policy(request: GetPolicy) -> Policy:
    if request.name == "busy":
        raise TransientError("store is reconnecting")
    if request.name == "stale":
        raise ConflictError("version 2 is older than the stored version 3")
    if request.name == "boom":
        raise RuntimeError("a bug with a secret=hunter2 in it")
    try:
        return POLICIES[request.name]
    except KeyError:
        raise NotFoundError(f"no policy named {request.name!r}") from None


ENDPOINT = Endpoint("get_policy", GetPolicy, Policy, get_policy, "Read one remediation policy.")


async def test_request_reply_and_typed_errors(make_bus: MakeBus) -> None:
    server = await make_bus("healer")
    client = await make_bus("gateway")
    svc = await serve(server.nc, "healer", "0.1.0", [ENDPOINT])
    try:
        assert (
            await call(client.nc, "healer", "get_policy", GetPolicy(name="crashloop"), Policy) == POLICIES["crashloop"]
        )

        with pytest.raises(RpcError) as not_found:
            await call(client.nc, "healer", "get_policy", GetPolicy(name="nope"), Policy)
        assert not_found.value.code == 404
        assert "no policy named 'nope'" in not_found.value.description

        with pytest.raises(RpcError) as conflict:
            await call(client.nc, "healer", "get_policy", GetPolicy(name="stale"), Policy)
        assert conflict.value.code == 409

        with pytest.raises(ServiceUnavailableError):
            await call(client.nc, "healer", "get_policy", GetPolicy(name="busy"), Policy)

        with pytest.raises(RpcError) as bug:
            await call(client.nc, "healer", "get_policy", GetPolicy(name="boom"), Policy)
        assert bug.value.code == 500
        assert "hunter2" not in bug.value.description  # internals never leak to callers

        raw = await client.nc.request("opsbus.svc.healer.get_policy", b'{"name": ""}', timeout=2)
        assert raw.headers is not None and raw.headers["Nats-Service-Error-Code"] == "400"
        assert "name" in raw.headers["Nats-Service-Error"]

        # Discovery of the services framework works: an operator can find the endpoint.
        info = await client.nc.request("$SRV.INFO.opsbus-healer", b"", timeout=2)
        body = json.loads(info.data)
        assert body["name"] == "opsbus-healer"
        assert [e["subject"] for e in body["endpoints"]] == ["opsbus.svc.healer.get_policy"]
    finally:
        await svc.stop()


async def test_no_responder_is_a_transient_error(make_bus: MakeBus) -> None:
    client = await make_bus("gateway")
    with pytest.raises(ServiceUnavailableError):
        await call(client.nc, "healer", "get_policy", GetPolicy(name="x"), Policy, timeout=0.5)


async def test_trace_context_reaches_the_server(make_bus: MakeBus, span_exporter: InMemorySpanExporter) -> None:
    server = await make_bus("healer")
    client = await make_bus("gateway")
    svc = await serve(server.nc, "healer", "0.1.0", [ENDPOINT], tracer=server.tracer)
    try:
        with client.tracer.start_as_current_span("gateway request") as root:
            await call(client.nc, "healer", "get_policy", GetPolicy(name="crashloop"), Policy)
    finally:
        await svc.stop()
    served = next(s for s in span_exporter.get_finished_spans() if s.kind == SpanKind.SERVER)
    assert served.context is not None
    assert served.context.trace_id == root.get_span_context().trace_id
    assert served.parent is not None and served.parent.span_id == root.get_span_context().span_id
