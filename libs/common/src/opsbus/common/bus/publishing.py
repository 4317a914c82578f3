"""Publishing events to JetStream: pipelined, bounded, deduplicated, traced.

`send()` starts an async publish and returns a future for its acknowledgement without waiting for it, so a
hot path keeps many publishes in flight (never one awaited round trip per message). The window is bounded:
`send()` waits when `max_in_flight` publishes are unacknowledged. A publish whose acknowledgement does not
arrive within `timeout` (NATS reconnecting, a leader election) is sent again with the same `Nats-Msg-Id`,
so the stream stores it once. `publish()` is `send()` plus waiting for the ack; `flush()` waits for all.

The pipelining is this module's own, on the NATS client's plain publish with a reply inbox (as nats-py's
`publish_async` does, without its per-publish semaphore, `wait_for`, random token and future): one
subscription takes every acknowledgement, and one timer, re-armed to the oldest attempt's deadline, finds
the ones that timed out (issue 23: a timer, a semaphore and two futures per publish cost a third of the
bus's throughput).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections import deque
from dataclasses import dataclass

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import Header, PubAck
from nats.js.errors import APIError, NoStreamResponseError
from opentelemetry.trace import SpanKind, Tracer
from prometheus_client import Counter

from opsbus.common.bus.propagation import current_trace_headers, trace_headers_of
from opsbus.common.bus.spans import BusTracer
from opsbus.common.errors import TransientError
from opsbus.common.events.envelope import CONTENT_TYPE, Envelope
from opsbus.common.telemetry.metrics import BusMetrics

log = logging.getLogger(__name__)

MSG_ID = "Nats-Msg-Id"
NO_RESPONDERS = "503"  # the status JetStream answers when no stream takes the subject


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
    token: str = ""
    deadline: float = 0.0


class Publisher:
    def __init__(
        self,
        nc: Client,
        *,
        metrics: BusMetrics,
        tracer: Tracer | None = None,
        options: PublishOptions | None = None,
    ) -> None:
        self._nc = nc
        self._metrics = metrics
        self._spans = BusTracer(tracer) if tracer is not None else None  # None: tracing off, no span work
        self._options = options or PublishOptions()
        self._open = 0  # publishes started and not yet acknowledged or failed (the window)
        self._room: deque[asyncio.Future[None]] = deque()  # senders waiting for the window
        self._awaiting: dict[str, _Pending] = {}  # reply token of the current attempt -> publish, oldest first
        self._tokens = itertools.count(1)
        self._prefix = ""  # "<inbox>." once the acknowledgement subscription exists
        self._listening = asyncio.Lock()
        self._sweeper: asyncio.TimerHandle | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._retries: set[asyncio.Task[None]] = set()
        self._published: dict[tuple[str, str], Counter] = {}
        metrics.publish_in_flight.set_function(lambda: self._open)  # read at scrape time, not per message

    @property
    def in_flight(self) -> int:
        return self._open

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
        if self._open >= self._options.max_in_flight:
            await self._wait_for_room()
        self._open += 1
        self._idle.clear()
        pending = _Pending(subject, payload, headers, event_type, asyncio.get_running_loop().create_future())
        await self._attempt(pending)
        return pending.result

    async def publish(self, event: Envelope) -> PubAck:
        """Publish and wait for the acknowledgement."""
        return await (await self.send(event))

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until every publish started so far is acknowledged or has failed."""
        await asyncio.wait_for(self._idle.wait(), timeout)

    # --- internals ----------------------------------------------------------------------------------
    async def _wait_for_room(self) -> None:
        loop = asyncio.get_running_loop()
        while self._open >= self._options.max_in_flight:
            waiter: asyncio.Future[None] = loop.create_future()
            self._room.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # woken, then cancelled: hand the room on
                raise
            finally:
                with contextlib.suppress(ValueError):
                    self._room.remove(waiter)

    def _wake_one(self) -> None:
        while self._room:
            waiter = self._room.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def _listen(self) -> None:
        """Subscribe once to this publisher's acknowledgement inbox (`<inbox>.<token>` per attempt)."""
        async with self._listening:
            if not self._prefix:
                prefix = self._nc.new_inbox() + "."
                await self._nc.subscribe(prefix + "*", cb=self._on_ack)
                self._prefix = prefix

    async def _attempt(self, pending: _Pending) -> None:
        pending.attempts += 1
        if not self._prefix:
            await self._listen()
        token = str(next(self._tokens))
        try:
            reply = self._prefix + token
            await self._nc.publish(pending.subject, pending.payload, reply=reply, headers=pending.headers)
        except Exception as exc:
            self._on_failure(pending, exc)
            return
        loop = asyncio.get_running_loop()
        pending.token = token
        pending.deadline = loop.time() + self._options.timeout
        self._awaiting[token] = pending
        if self._sweeper is None:
            self._sweeper = loop.call_at(pending.deadline, self._sweep)

    async def _on_ack(self, msg: Msg) -> None:
        """The stream's answer to one attempt; an answer to an attempt already given up on is ignored."""
        pending = self._awaiting.pop(msg.subject[len(self._prefix) :], None)
        if pending is None or pending.result.done():
            return
        if msg.headers and msg.headers.get(Header.STATUS) == NO_RESPONDERS:
            self._on_failure(pending, NoStreamResponseError())
            return
        try:
            answer = json.loads(msg.data)
            if "error" in answer:
                self._on_failure(pending, APIError.from_error(answer["error"]))
                return
            ack = PubAck.from_response(answer)
        except Exception as exc:
            self._on_failure(pending, exc)
            return
        self._count(pending.event_type, "duplicate" if ack.duplicate else "ok")
        self._finish(pending, ack, None)

    def _sweep(self) -> None:
        """One timer for every publish in flight: attempts are kept oldest first and share one timeout, so the
        expired ones are a prefix and the next deadline is the first that remains."""
        self._sweeper = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        expired: list[_Pending] = []
        for pending in self._awaiting.values():
            if pending.deadline > now:
                self._sweeper = loop.call_at(pending.deadline, self._sweep)
                break
            expired.append(pending)
        for pending in expired:
            del self._awaiting[pending.token]
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
        self._open -= 1
        if self._room:
            self._wake_one()
        if not self._open:
            self._idle.set()
