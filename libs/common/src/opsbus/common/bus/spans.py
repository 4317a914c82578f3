"""The bus's own spans: one PRODUCER span per publish and one CONSUMER span per delivery, at a fraction of the
OpenTelemetry SDK's per-span cost.

Why it exists: with tracing on, the SDK's `Tracer.start_span` (attribute cleaning under locks, a bounded
attribute map, a lock per span, the span processors' start hook) cost more than everything else the bus does per
event (issue 23: the bus fell to 0.2-0.4x raw JetStream with tracing on, 0.7x with it off). The bus's spans are
simple: a fixed set of attributes of known types, at most a status, an exception or a skip reason. So when the
tracer is the SDK's, `BusTracer` makes the sampling decision with the provider's own sampler and id generator,
keeps the span in a plain object while it runs, and hands the finished `ReadableSpan` to the provider's span
processors (the same exporter path as every other span). A span the sampler drops is a `NonRecordingSpan` that
still carries the trace context, so the decision travels in `traceparent` (flags) to every later event of the
trace. With any other tracer (an API proxy, a test double) it falls back to `Tracer.start_span`.

What it must never do: change what is exported. The spans have the same names, kinds, parents, attributes, status
and exception events as the SDK would record (libs/common/tests/test_bus_spans.py compares them).
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping, Sequence
from time import time_ns
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    Tracer,
    get_current_span,
)
from opentelemetry.util.types import AttributeValue

SCOPE = "opsbus.bus"
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_UNSAMPLED = TraceFlags(TraceFlags.DEFAULT)
_SCALARS = (str, bool, int, float)


def _valid(value: Any) -> bool:
    if isinstance(value, _SCALARS):
        return True
    return isinstance(value, Sequence) and all(isinstance(v, _SCALARS) for v in value)


class BusTracer:
    """Starts the bus's spans: through the SDK's sampler and processors when `tracer` is an SDK tracer."""

    def __init__(self, tracer: Tracer) -> None:
        self._tracer = tracer
        self._sdk = tracer if isinstance(tracer, SdkTracer) else None
        self._scope = InstrumentationScope(SCOPE)

    def start(self, name: str, kind: SpanKind, attributes: dict[str, AttributeValue], parent: Context | None) -> Span:
        """A started span, child of the current span of `parent` (or of the current context when None)."""
        sdk = self._sdk
        if sdk is None:
            return self._tracer.start_span(name, context=parent, kind=kind, attributes=attributes)
        parent_context = get_current_span(parent).get_span_context()
        valid_parent = parent_context.is_valid
        trace_id = parent_context.trace_id if valid_parent else sdk.id_generator.generate_trace_id()
        decision = sdk.sampler.should_sample(parent, trace_id, name, kind, attributes)
        sampled = decision.decision is Decision.RECORD_AND_SAMPLE
        context = SpanContext(
            trace_id,
            sdk.id_generator.generate_span_id(),
            is_remote=False,
            trace_flags=_SAMPLED if sampled else _UNSAMPLED,
            trace_state=decision.trace_state,
        )
        if decision.decision is Decision.DROP:
            return NonRecordingSpan(context)
        if decision.attributes:
            attributes = {**attributes, **decision.attributes}
        return _BusSpan(
            self,
            name,
            kind=kind,
            context=context,
            parent=parent_context if valid_parent else None,
            attributes=attributes,
            start=time_ns(),
        )

    def _finish(self, span: ReadableSpan) -> None:
        assert self._sdk is not None
        self._sdk.span_processor.on_end(span)


class _BusSpan(Span):
    """A recording span kept in plain fields until it ends, then exported as a `ReadableSpan`."""

    def __init__(
        self,
        owner: BusTracer,
        name: str,
        *,
        kind: SpanKind,
        context: SpanContext,
        parent: SpanContext | None,
        attributes: dict[str, AttributeValue],
        start: int,
    ) -> None:
        self._owner = owner
        self._name = name
        self._kind = kind
        self._context = context
        self._parent = parent
        self._attributes = dict(attributes)
        self._start = start
        self._events: list[Event] = []
        self._status = Status(StatusCode.UNSET)
        self._end: int | None = None

    def get_span_context(self) -> SpanContext:
        return self._context

    def is_recording(self) -> bool:
        return self._end is None

    def set_attribute(self, key: str, value: Any) -> None:
        if self._end is None and key and _valid(value):
            self._attributes[key] = tuple(value) if isinstance(value, list) else value

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def add_event(self, name: str, attributes: Any = None, timestamp: int | None = None) -> None:
        if self._end is None:
            clean = {k: v for k, v in (attributes or {}).items() if _valid(v)}
            self._events.append(Event(name, clean, timestamp or time_ns()))

    def update_name(self, name: str) -> None:
        if self._end is None:
            self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if self._end is not None or self._status.status_code is StatusCode.OK:
            return  # OK is final, as in the SDK
        self._status = status if isinstance(status, Status) else Status(status, description)

    def record_exception(
        self,
        exception: BaseException,
        attributes: Any = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        module = type(exception).__module__
        qualname = type(exception).__qualname__
        details: dict[str, Any] = {
            "exception.type": f"{module}.{qualname}" if module and module != "builtins" else qualname,
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
        }
        self.add_event("exception", {**details, **(attributes or {})}, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self._end is not None:
            return
        self._end = end_time or time_ns()
        owner = self._owner
        assert owner._sdk is not None
        owner._finish(
            ReadableSpan(
                name=self._name,
                context=self._context,
                parent=self._parent,
                resource=owner._sdk.resource,
                attributes=self._attributes,
                events=tuple(self._events),
                kind=self._kind,
                status=self._status,
                start_time=self._start,
                end_time=self._end,
                instrumentation_scope=owner._scope,
            )
        )
