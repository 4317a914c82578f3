"""W3C trace context across the bus: injected into the envelope and the NATS headers on publish, extracted
on consume, so one incident is one trace from the watcher or gateway to the notifier."""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_propagator = TraceContextTextMapPropagator()


def current_trace_headers(context: Context | None = None) -> dict[str, str]:
    """`traceparent` (and `tracestate`) of the current span, or nothing when there is no valid span."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier, context=context)
    return carrier


def context_from(headers: Mapping[str, str] | None, traceparent: str | None, tracestate: str | None) -> Context:
    """The remote parent context: NATS headers win, the envelope's extension attributes are the fallback."""
    carrier: dict[str, str] = {}
    if traceparent:
        carrier["traceparent"] = traceparent
        if tracestate:
            carrier["tracestate"] = tracestate
    if headers and "traceparent" in headers:
        carrier = {k: v for k, v in headers.items() if k in ("traceparent", "tracestate")}
    return _propagator.extract(carrier)
