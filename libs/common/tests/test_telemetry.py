"""Logs carry trace and correlation ids as JSON; the tracer provider names the service; metrics render."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry

from opsbus.common.settings import TelemetrySettings
from opsbus.common.telemetry.logs import configure_logging, correlation
from opsbus.common.telemetry.metrics import BusMetrics, render
from opsbus.common.telemetry.tracing import build_tracer_provider


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    configure_logging("healer", level="INFO", json=True)
    stream = io.StringIO()
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    yield stream
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)


def test_json_log_lines_carry_trace_span_and_correlation_ids(captured: io.StringIO) -> None:
    provider = TracerProvider()
    tracer = provider.get_tracer("tests")
    with tracer.start_as_current_span("handle") as span, correlation("alert-123"):
        logging.getLogger("opsbus.healer").info("deleting pod %s", "checkout-1")
    record = json.loads(captured.getvalue().splitlines()[-1])
    context = span.get_span_context()
    assert record["message"] == "deleting pod checkout-1"
    assert record["level"] == "INFO"
    assert record["service"] == "opsbus-healer"
    assert record["trace_id"] == format(context.trace_id, "032x")
    assert record["span_id"] == format(context.span_id, "016x")
    assert record["correlationid"] == "alert-123"


def test_log_lines_outside_a_span_have_no_ids(captured: io.StringIO) -> None:
    logging.getLogger("opsbus.healer").warning("idle")
    record = json.loads(captured.getvalue().splitlines()[-1])
    assert record["trace_id"] is None
    assert record["correlationid"] is None


def test_tracer_provider_names_the_service_and_samples_as_configured() -> None:
    provider = build_tracer_provider("watcher", TelemetrySettings(sample_ratio=0.0), instance="w-1")
    attributes = provider.resource.attributes
    assert attributes["service.name"] == "opsbus-watcher"
    assert attributes["service.instance.id"] == "w-1"
    with provider.get_tracer("t").start_as_current_span("root") as span:
        assert not span.is_recording()  # ratio 0: a new trace is not sampled
    provider.shutdown()


def test_metrics_render_in_prometheus_text_format() -> None:
    registry = CollectorRegistry()
    metrics = BusMetrics(registry)
    metrics.published.labels("io.opsbus.alert.fired.v1", "ok").inc()
    body, content_type = render(registry)
    assert content_type.startswith("text/plain")
    assert b'opsbus_events_published_total{outcome="ok",type="io.opsbus.alert.fired.v1"} 1.0' in body
