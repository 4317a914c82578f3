"""Request traces of the real gateway (NATS, PostgreSQL, uvicorn): one server span per request when traces are
exported, linked to the caller's trace and to the events the request publishes; without an exporter no spans at
all, and the events still carry the caller's trace context."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from opsbus.common.bus import Bus, ConsumerSpec, Delivery
from tests.integration.gateway_stack import GatewayStack, gateway_stack

pytestmark = pytest.mark.integration

MakeBus = Callable[..., Awaitable[Bus]]
# a caller's trace, e.g. the incident an operator is working on
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER = f"00-{CALLER_TRACE}-00f067aa0ba902b7-01"
BODY: dict[str, Any] = {
    "workload": {"kind": "Deployment", "namespace": "payments", "name": "checkout"},
    "strategy": "rolling",
    "images": {"app": "registry.example.com/payments/checkout:1.43.0"},
    "reason": "CHG-7",
}


@pytest.fixture
async def stack(database_url: str, nats_url: str) -> AsyncIterator[GatewayStack]:
    async for s in gateway_stack(database_url, nats_url):
        yield s


def http_spans(span_exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [
        s
        for s in span_exporter.get_finished_spans()
        if s.instrumentation_scope and s.instrumentation_scope.name == "fastapi"
    ]


async def deploy_events(make_bus: MakeBus, durable: str) -> list[Delivery]:
    bus = await make_bus("tester")
    await bus.ensure_streams()
    got: list[Delivery] = []

    async def handle(d: Delivery) -> None:
        got.append(d)

    bus.consumer(ConsumerSpec(durable=durable, stream="DEPLOY", subjects=["deploy.requested.>"]), handle)
    await bus.start()
    return got


async def deploy(stack: GatewayStack, got: list[Delivery]) -> str:
    """A deploy request made inside the caller's trace, then `whoami`; the request id, once its event arrived."""
    operator = await stack.key("operator", namespaces=["payments"])
    async with stack.client(operator) as c:
        accepted = await c.post("/v1/deployments", json=BODY, headers={"traceparent": CALLER})
        assert accepted.status_code == 202, accepted.text
        assert (await c.get("/v1/whoami")).status_code == 200
    await arrived(got, 1)
    request_id: str = accepted.json()["request_id"]
    return request_id


async def arrived(got: list[Delivery], count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while len(got) < count:
        assert time.monotonic() < deadline, f"{len(got)} of {count} events arrived"
        await asyncio.sleep(0.05)


async def test_exporting_gateway_records_one_span_per_request_linked_to_caller_and_events(
    stack: GatewayStack, tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter, make_bus: MakeBus
) -> None:
    await stack.start(tracer_provider=tracer_provider, telemetry={"otlp_endpoint": "http://127.0.0.1:9/v1/traces"})
    got = await deploy_events(make_bus, "t-trace-on")
    span_exporter.clear()
    request_id = await deploy(stack, got)
    spans = http_spans(span_exporter)
    # exactly one span per request (no per-dependency or serialisation spans), named for the route template
    assert sorted(s.name for s in spans) == ["GET /v1/whoami", "POST /v1/deployments"]
    request = next(s for s in spans if s.name == "POST /v1/deployments")
    assert request.context is not None and f"{request.context.trace_id:032x}" == CALLER_TRACE
    assert request.parent is not None and f"{request.parent.span_id:016x}" == "00f067aa0ba902b7"
    # the event the request published continues the same trace, caused by the request's span
    event = got[0].event
    assert event.id == request_id
    assert event.traceparent == f"00-{CALLER_TRACE}-{request.context.span_id:016x}-01"
    whoami = next(s for s in spans if s.name == "GET /v1/whoami")  # sent without traceparent: a trace of its own
    assert whoami.context is not None and f"{whoami.context.trace_id:032x}" != CALLER_TRACE


async def test_gateway_without_exporter_records_no_request_spans(
    stack: GatewayStack, tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter, make_bus: MakeBus
) -> None:
    await stack.start(tracer_provider=tracer_provider)  # no telemetry.otlp_endpoint: traces go nowhere
    got = await deploy_events(make_bus, "t-trace-off")
    span_exporter.clear()
    request_id = await deploy(stack, got)
    assert http_spans(span_exporter) == []
    # the gateway adds no span, but what it publishes for the caller stays in the caller's trace
    assert got[0].event.id == request_id and got[0].event.traceparent == CALLER
