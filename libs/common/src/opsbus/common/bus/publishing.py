"""Publishing events to JetStream: pipelined, bounded, deduplicated, traced.

`send()` starts an async publish and returns a future for its acknowledgement without waiting for it, so a
hot path keeps many publishes in flight (never one awaited round trip per message). The window is bounded:
`send()` waits when `max_in_flight` publishes are unacknowledged. A publish whose acknowledgement does not
arrive within `timeout` (NATS reconnecting, a leader election) is sent again with the same `Nats-Msg-Id`,
so the stream stores it once. `publish()` is `send()` plus waiting for the ack; `flush()` waits for all.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field

from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import PubAck
from opentelemetry.trace import SpanKind, Tracer
from prometheus_client import Counter

from opsbus.common.bus.propagation import current_trace_headers, trace_headers_of
from opsbus.common.bus.spans import BusTracer
from opsbus.common.errors import TransientError
from opsbus.common.events.envelope import CONTENT_TYPE, Envelope
from opsbus.common.telemetry.metrics import BusMetrics

log = logging.getLogger(__name__)

MSG_ID = "Nats-Msg-Id"


def prepare(event: Envelope) -> tuple[str, bytes, dict[str, str]]:
    """Subject, body and headers of `event`, with the current trace context stamped on both.

    A function (not only `Publisher.prepare`) so the transactional outbox can store exactly what the
    publisher would send, inside a database transaction, without a NATS connection.
    """
    return stamped(event, current_trace_headers())


def stamped(event: Envelope, trace_headers: dict[str, str]) -> tuple[str, bytes, dict[str, str]]:
    """Subject, body and headers of `event` carrying `trace_headers` (the body is encoded once, here)."""
    traceparent = trace_headers.get("traceparent")
    headers = {MSG_ID: event.id, "Content-Type": CONTENT_TYPE, **trace_headers}
    if not traceparent or event.traceparent == traceparent:
        return event.nats_subject(), event.to_json(), headers
    if event.traceparent is None and event.tracestate is None:
        # The usual case: a new event without trace context. The extension attributes are appended to the
        # encoded object instead of encoding a copy of the envelope (traceparent is [0-9a-f-] by construction).
        body = event.to_json()
        extension = f',"traceparent":"{traceparent}"'
        if "tracestate" in trace_headers:
            extension += f',"tracestate":{json.dumps(trace_headers["tracestate"])}'
        return event.nats_subject(), body[:-1] + extension.encode() + b"}", headers
    event = event.model_copy(update={"traceparent": traceparent, "tracestate": trace_headers.get("tracestate")})
    return event.nats_subject(), event.to_json(), headers


@dataclass(frozen=True, slots=True)
class PublishOptions:
    timeout: float = 5.0
    retries: int = 5
    max_in_flight: int = 1024


@dataclass(slots=True, eq=False)
class _Pending:
    subject: str
    payload: bytes
    headers: dict[str, str]
    event_type: str
    result: asyncio.Future[PubAck]
    attempts: int = 0
    inner: asyncio.Future[PubAck] | None = None
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)


class Publisher:
    def __init__(
        self,
        nc: Client,
        js: JetStreamContext,
        *,
        metrics: BusMetrics,
        tracer: Tracer | None = None,
        options: PublishOptions | None = None,
    ) -> None:
        self._nc = nc
        self._js = js
        self._metrics = metrics
        self._spans = BusTracer(tracer) if tracer is not None else None  # None: tracing off, no span work
        self._options = options or PublishOptions()
        self._window = asyncio.Semaphore(self._options.max_in_flight)
        self._pending: set[_Pending] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._retries: set[asyncio.Task[None]] = set()
        self._published: dict[tuple[str, str], Counter] = {}
        metrics.publish_in_flight.set_function(lambda: len(self._pending))  # read at scrape time, not per message

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def prepare(self, event: Envelope) -> tuple[str, bytes, dict[str, str]]:
        """Subject, body and headers of `event`, with the current trace context stamped on both."""
        return prepare(event)

    async def send(self, event: Envelope) -> asyncio.Future[PubAck]:
        """Start publishing `event`; the returned future resolves to the stream's acknowledgement."""
        if self._spans is None:
            subject, payload, headers = prepare(event)
        else:
            # A PRODUCER span, child of the current span, whose context the event carries. Started and ended
            # here without becoming the current span: nothing runs inside it but the encoding.
            subject = event.nats_subject()
            span = self._spans.start(
                f"publish {subject}",
                SpanKind.PRODUCER,
                {
                    "messaging.system": "nats",
                    "messaging.operation.type": "send",
                    "messaging.destination.name": subject,
                    "messaging.message.id": event.id,
                    "messaging.message.conversation_id": event.correlationid or event.id,
                    "cloudevents.event_type": event.type,
                },
                None,
            )
            try:
                subject, payload, headers = stamped(event, trace_headers_of(span.get_span_context()))
            finally:
                span.end()
        return await self.send_raw(subject, payload, headers, event_type=event.type)

    async def send_raw(
        self, subject: str, payload: bytes, headers: dict[str, str], *, event_type: str = "raw"
    ) -> asyncio.Future[PubAck]:
        """Publish prepared bytes (the outbox relay and the DLQ use this). `headers` must carry `Nats-Msg-Id`."""
        await self._window.acquire()
        loop = asyncio.get_running_loop()
        pending = _Pending(subject, payload, headers, event_type, loop.create_future())
        self._pending.add(pending)
        self._idle.clear()
        await self._attempt(pending)
        return pending.result

    async def publish(self, event: Envelope) -> PubAck:
        """Publish and wait for the acknowledgement."""
        return await (await self.send(event))

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until every publish started so far is acknowledged or has failed."""
        await asyncio.wait_for(self._idle.wait(), timeout)

    # --- internals ----------------------------------------------------------------------------------
    async def _attempt(self, pending: _Pending) -> None:
        pending.attempts += 1
        try:
            inner = await self._js.publish_async(pending.subject, pending.payload, headers=dict(pending.headers))
        except Exception as exc:
            self._on_failure(pending, exc)
            return
        pending.inner = inner
        loop = asyncio.get_running_loop()
        pending.timer = loop.call_later(self._options.timeout, self._on_timeout, pending, inner)
        inner.add_done_callback(lambda fut: self._on_inner_done(pending, fut))

    def _on_inner_done(self, pending: _Pending, inner: asyncio.Future[PubAck]) -> None:
        if pending.inner is not inner or pending.result.done():
            return  # a superseded attempt
        if pending.timer is not None:
            pending.timer.cancel()
        if inner.cancelled():
            return  # cancelled by our own timeout, which schedules the retry
        exc = inner.exception()
        if exc is not None:
            self._on_failure(pending, exc)
            return
        ack = inner.result()
        self._count(pending.event_type, "duplicate" if ack.duplicate else "ok")
        self._finish(pending, ack, None)

    def _on_timeout(self, pending: _Pending, inner: asyncio.Future[PubAck]) -> None:
        if pending.inner is not inner or pending.result.done():
            return
        inner.cancel()
        self._on_failure(pending, TimeoutError(f"no JetStream ack within {self._options.timeout}s"))

    def _on_failure(self, pending: _Pending, exc: BaseException) -> None:
        if pending.attempts <= self._options.retries:
            delay = min(0.1 * 2 ** (pending.attempts - 1), 2.0)
            log.debug("publish to %s failed (%s); retry %d in %.1fs", pending.subject, exc, pending.attempts, delay)
            loop = asyncio.get_running_loop()
            loop.call_later(delay, self._retry, pending)
            return
        self._count(pending.event_type, "error")
        error = TransientError(f"publish to {pending.subject} failed after {pending.attempts} attempts: {exc}")
        error.__cause__ = exc
        self._finish(pending, None, error)

    def _count(self, event_type: str, outcome: str) -> None:
        key = (event_type, outcome)
        child = self._published.get(key)
        if child is None:
            child = self._published[key] = self._metrics.published.labels(event_type, outcome)
        child.inc()

    def _retry(self, pending: _Pending) -> None:
        task = asyncio.get_running_loop().create_task(self._attempt(pending))
        self._retries.add(task)
        task.add_done_callback(self._retries.discard)

    def _finish(self, pending: _Pending, ack: PubAck | None, error: BaseException | None) -> None:
        if not pending.result.done():
            if error is not None:
                pending.result.set_exception(error)
            else:
                pending.result.set_result(ack)  # type: ignore[arg-type]
        self._pending.discard(pending)
        self._window.release()
        if not self._pending:
            self._idle.set()
