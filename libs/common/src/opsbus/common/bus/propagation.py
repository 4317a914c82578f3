"""W3C trace context across the bus: injected into the envelope and the NATS headers on publish, extracted
on consume, so one incident is one trace from the watcher or gateway to the notifier.

The bus formats and parses `traceparent` itself (`traceparent_of`, `remote_parent`) instead of going through
the OpenTelemetry propagator API, which builds a carrier, a getter and a fresh context per message: this runs
twice per event on the hot path. The result is the same W3C header either way
(libs/common/tests/test_bus_propagation.py compares them); `current_trace_headers` and `context_from` keep the
propagator for the colder callers (request-reply, the outbox).
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry.context import Context
from opentelemetry.trace import (
    INVALID_SPAN_ID,
    INVALID_TRACE_ID,
    NonRecordingSpan,
    SpanContext,
    TraceFlags,
    TraceState,
    get_current_span,
    set_span_in_context,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_propagator = TraceContextTextMapPropagator()
_TRACEPARENT = TraceContextTextMapPropagator._TRACEPARENT_HEADER_FORMAT_RE  # the propagator's own grammar
_MAX_LENGTH = 512


def current_trace_headers(context: Context | None = None) -> dict[str, str]:
    """`traceparent` (and `tracestate`) of the current span, or nothing when there is no valid span."""
    if context is None:
        span_context = get_current_span().get_span_context()
        return trace_headers_of(span_context) if span_context.is_valid else {}
    carrier: dict[str, str] = {}
    _propagator.inject(carrier, context=context)
    return carrier


def traceparent_of(span_context: SpanContext) -> str:
    """The W3C `traceparent` header of a valid span context (version 00)."""
    return f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-{span_context.trace_flags:02x}"


def trace_headers_of(span_context: SpanContext) -> dict[str, str]:
    """`traceparent`, and `tracestate` when there is one, of a valid span context."""
    headers = {"traceparent": traceparent_of(span_context)}
    if span_context.trace_state:
        headers["tracestate"] = span_context.trace_state.to_header()
    return headers


def remote_parent(traceparent: str | None, tracestate: str | None = None) -> Context | None:
    """The context whose current span is the remote span `traceparent` names; None if it names none.

    Follows the W3C rules the propagator applies: version `ff` and all-zero ids are invalid, a version 00
    header has exactly four fields, later versions may carry more.
    """
    if not traceparent or len(traceparent) > _MAX_LENGTH:
        return None
    match = _TRACEPARENT.search(traceparent)
    if match is None:
        return None
    version, trace_hex, span_hex, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest):
        return None
    trace_id, span_id = int(trace_hex, 16), int(span_hex, 16)
    if trace_id == INVALID_TRACE_ID or span_id == INVALID_SPAN_ID:
        return None
    state = TraceState.from_header([tracestate]) if tracestate else None
    span_context = SpanContext(
        trace_id, span_id, is_remote=True, trace_flags=TraceFlags(int(flags, 16)), trace_state=state
    )
    return set_span_in_context(NonRecordingSpan(span_context))


def context_from(headers: Mapping[str, str] | None, traceparent: str | None, tracestate: str | None) -> Context:
    """The remote parent context: NATS headers win, the envelope's extension attributes are the fallback."""
    if headers and "traceparent" in headers:
        traceparent, tracestate = headers["traceparent"], headers.get("tracestate")
    return remote_parent(traceparent, tracestate) or Context()
