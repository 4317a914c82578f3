"""Sampling keeps an incident's trace whole at any ratio: alerts are always sampled, the rest follow the parent
(the decision carried in `traceparent`) or, for a new trace, the ratio."""

from __future__ import annotations

from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from opsbus.common.bus.propagation import remote_parent, traceparent_of
from opsbus.common.bus.spans import BusTracer
from opsbus.common.settings import TelemetrySettings
from opsbus.common.telemetry.tracing import build_tracer_provider

ALERT = "io.opsbus.alert.fired.v1"
DEPLOY = "io.opsbus.deploy.requested.v1"
RECOVERY = "io.opsbus.recovery.started.v1"


def _bus_tracer(ratio: float) -> tuple[BusTracer, InMemorySpanExporter]:
    provider = build_tracer_provider("test", TelemetrySettings(sample_ratio=ratio))
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return BusTracer(provider.get_tracer("opsbus.bus")), exporter


def _chain(tracer: BusTracer, root_type: str) -> str:
    """Publish `root_type`, consume it, publish a recovery from the handler, consume that; the root's traceparent."""
    root = tracer.start(f"publish {root_type}", SpanKind.PRODUCER, {"cloudevents.event_type": root_type}, None)
    root.end()
    traceparent = traceparent_of(root.get_span_context())
    consumer = tracer.start(
        "process", SpanKind.CONSUMER, {"cloudevents.event_type": root_type}, remote_parent(traceparent)
    )
    child = tracer.start(
        f"publish {RECOVERY}",
        SpanKind.PRODUCER,
        {"cloudevents.event_type": RECOVERY},
        remote_parent(traceparent_of(consumer.get_span_context())),
    )
    child.end()
    last = tracer.start(
        "process",
        SpanKind.CONSUMER,
        {"cloudevents.event_type": RECOVERY},
        remote_parent(traceparent_of(child.get_span_context())),
    )
    last.end()
    consumer.end()
    return traceparent


def test_at_ratio_zero_an_incident_is_traced_whole_and_a_deploy_request_not_at_all() -> None:
    tracer, exporter = _bus_tracer(0.0)
    alert = _chain(tracer, ALERT)
    deploy = _chain(tracer, DEPLOY)
    spans = exporter.get_finished_spans()
    assert alert.endswith("-01")
    assert deploy.endswith("-00")  # the decision travels in traceparent to every later event
    assert len(spans) == 4
    assert {s.context.trace_id for s in spans} == {int(alert.split("-")[1], 16)}


def test_at_ratio_one_every_trace_is_kept() -> None:
    tracer, exporter = _bus_tracer(1.0)
    _chain(tracer, ALERT)
    _chain(tracer, DEPLOY)
    assert len(exporter.get_finished_spans()) == 8


def test_an_alert_published_under_an_unsampled_parent_is_still_sampled() -> None:
    tracer, exporter = _bus_tracer(0.0)
    unsampled = remote_parent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00")
    span = tracer.start(f"publish {ALERT}", SpanKind.PRODUCER, {"cloudevents.event_type": ALERT}, unsampled)
    span.end()
    assert span.get_span_context().trace_flags.sampled
    assert span.get_span_context().trace_id == int("0af7651916cd43dd8448eb211c80319c", 16)
    assert len(exporter.get_finished_spans()) == 1
