"""The bus's own spans and trace-context parsing record what the OpenTelemetry SDK and its W3C propagator would."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
from opentelemetry.trace import SpanKind, StatusCode, get_current_span
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from opsbus.common.bus.propagation import context_from, current_trace_headers, remote_parent, trace_headers_of
from opsbus.common.bus.spans import BusTracer

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
ATTRIBUTES: dict[str, AttributeValue] = {
    "messaging.system": "nats",
    "messaging.message.id": "e-1",
    "messaging.nats.delivery_attempt": 2,
}


def _provider(**kwargs: object) -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(**kwargs)  # type: ignore[arg-type]
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


@pytest.mark.parametrize(
    ("traceparent", "tracestate"),
    [
        (PARENT, None),
        (PARENT, "vendor=a,other=b"),
        ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00", None),
        ("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-later", None),
        ("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra", None),
        ("ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", None),
        ("00-00000000000000000000000000000000-b7ad6b7169203331-01", None),
        ("00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01", None),
        ("00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01", None),
        ("garbage", None),
        ("", None),
    ],
)
def test_remote_parent_reads_traceparent_as_the_w3c_propagator_does(traceparent: str, tracestate: str | None) -> None:
    carrier = {"traceparent": traceparent} | ({"tracestate": tracestate} if tracestate else {})
    expected = get_current_span(TraceContextTextMapPropagator().extract(carrier)).get_span_context()
    assert get_current_span(context_from(carrier, None, None)).get_span_context() == expected
    parsed = remote_parent(traceparent, tracestate)
    assert (parsed is not None) == expected.is_valid
    if expected.is_valid:
        assert trace_headers_of(expected) == current_trace_headers(parsed)


def test_the_envelope_attribute_is_the_fallback_for_the_header() -> None:
    other = "00-11111111111111111111111111111111-2222222222222222-01"
    assert get_current_span(context_from({"traceparent": PARENT}, other, None)).get_span_context().span_id == int(
        "b7ad6b7169203331", 16
    )
    assert get_current_span(context_from({}, other, None)).get_span_context().span_id == int("2222222222222222", 16)


def test_bus_spans_are_the_spans_the_sdk_records() -> None:
    provider, exporter = _provider()
    sdk_tracer = provider.get_tracer("opsbus.bus")
    parent = remote_parent(PARENT)
    reference = sdk_tracer.start_span("process a.b", context=parent, kind=SpanKind.CONSUMER, attributes=ATTRIBUTES)
    reference.set_attribute("opsbus.skip_reason", "stale")
    reference.record_exception(ValueError("boom"))
    reference.set_status(StatusCode.ERROR, "boom")
    reference.end()
    span = BusTracer(sdk_tracer).start("process a.b", SpanKind.CONSUMER, dict(ATTRIBUTES), parent)
    span.set_attribute("opsbus.skip_reason", "stale")
    span.record_exception(ValueError("boom"))
    span.set_status(StatusCode.ERROR, "boom")
    span.end()
    sdk, ours = exporter.get_finished_spans()
    for read in ("name", "kind", "parent", "attributes", "resource", "dropped_attributes"):
        assert getattr(ours, read) == getattr(sdk, read), read
    assert ours.instrumentation_scope is not None
    assert ours.instrumentation_scope.name == "opsbus.bus"
    assert (ours.status.status_code, ours.status.description) == (StatusCode.ERROR, "boom")
    assert [(e.name, dict(e.attributes or {})) for e in ours.events] == [
        (e.name, dict(e.attributes or {})) for e in sdk.events
    ]
    assert ours.context.trace_id == sdk.context.trace_id == int("0af7651916cd43dd8448eb211c80319c", 16)
    assert ours.context.trace_flags.sampled
    assert ours.start_time is not None
    assert ours.end_time is not None
    assert ours.start_time <= ours.end_time


def test_a_root_bus_span_starts_a_trace_and_an_unsampled_one_still_carries_it() -> None:
    provider, exporter = _provider(sampler=ParentBased(ALWAYS_OFF))
    tracer = BusTracer(provider.get_tracer("opsbus.bus"))
    dropped = tracer.start("publish a.b", SpanKind.PRODUCER, {}, None)
    dropped.end()
    assert not dropped.is_recording()
    assert dropped.get_span_context().is_valid
    assert not dropped.get_span_context().trace_flags.sampled
    sampled_parent = tracer.start("process a.b", SpanKind.CONSUMER, {}, remote_parent(PARENT))
    sampled_parent.end()
    assert [s.name for s in exporter.get_finished_spans()] == ["process a.b"]  # the parent's decision wins
