"""Durable pull consumers with typed flow control.

One durable consumer per (service, purpose), shared by every replica of the service: each replica pulls
from the same consumer and JetStream hands each message to one of them. For every message:

- it is admitted (`accepting.Acceptance`): a CloudEvent with every required attribute on the wire, published
  on the subject its envelope derives, of a type and version the consumer accepts, with a valid payload. If
  not, it is dead-lettered (`dlq.<subject>`, reason in the headers) and terminated before any handler runs:
  a poison message never blocks the ones behind it;
- an event older than the consumer's freshness bound is acknowledged unhandled, with the skip counted and
  logged (stale work is dropped, not replayed blindly);
- the handler runs inside a CONSUMER span whose parent is the publisher's span;
- success -> ack; `TransientError` (or any unexpected exception) -> nak with the backoff delay for this
  delivery; `PermanentError` -> dead-letter + term; `SkipError` -> ack, counted as a skip. On the last
  allowed delivery a transient failure is dead-lettered too, so nothing disappears silently;
- long handlers keep the message alive with in-progress signals.

`stop()` drains gracefully: no new pulls, in-flight handlers finish within the grace period, messages that
were fetched but not started are nak'ed at once so another replica takes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from opentelemetry.context import attach, detach
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, Status, StatusCode, Tracer, set_span_in_context
from prometheus_client import Counter, Histogram

from opsbus.common.bus.accepting import Acceptance
from opsbus.common.bus.clusters import start_after_legacy
from opsbus.common.bus.propagation import context_from
from opsbus.common.bus.publishing import MSG_ID, Publisher
from opsbus.common.bus.pulling import Puller
from opsbus.common.bus.spans import BusTracer
from opsbus.common.errors import PermanentError, SkipError, TransientError, UndecodableError
from opsbus.common.events.envelope import Envelope, EventPayload
from opsbus.common.events.subjects import dlq_subject
from opsbus.common.telemetry.logs import correlation
from opsbus.common.telemetry.metrics import BusMetrics

log = logging.getLogger(__name__)

DLQ_REASON = "Opsbus-Dlq-Reason"
DLQ_CONSUMER = "Opsbus-Dlq-Consumer"
DLQ_STREAM = "Opsbus-Dlq-Stream"
DLQ_STREAM_SEQ = "Opsbus-Dlq-Stream-Seq"
DLQ_DELIVERIES = "Opsbus-Dlq-Deliveries"
DLQ_SUBJECT = "Opsbus-Dlq-Original-Subject"
DLQ_TIME = "Opsbus-Dlq-Time"


@dataclass(frozen=True, slots=True)
class ConsumerSpec:
    """What a durable consumer reads and how it retries. One argument object so it can grow.

    `accepts`: the payload models (type and version) the handler takes. `None` means every registered type
    the subject filters carry; a consumer whose filters span several families must declare it.
    """

    durable: str
    stream: str
    subjects: Sequence[str]
    accepts: Sequence[type[EventPayload]] | None = None
    max_deliver: int = 6
    backoff: Sequence[float] = (1.0, 5.0, 15.0, 60.0, 300.0)
    ack_wait: float = 30.0
    max_ack_pending: int = 1000
    batch: int = 64
    fetch_timeout: float = 1.0
    concurrency: int = 1
    freshness: timedelta | None = None
    deliver_new_only: bool = False
    description: str | None = None
    #: the name this consumer had before it carried its cluster (`bus.clusters`): where a new one starts
    legacy_durable: str | None = None

    def delay_for(self, delivery: int) -> float:
        """Nak delay after the `delivery`-th failed delivery (1-based)."""
        if not self.backoff:
            return 0.0
        return float(self.backoff[min(delivery, len(self.backoff)) - 1])


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event handed to a handler, with where it came from."""

    event: Envelope
    subject: str
    stream_sequence: int
    attempt: int
    headers: Mapping[str, str] = field(default_factory=dict)


Handler = Callable[[Delivery], Awaitable[None]]


class Consumer:
    def __init__(
        self,
        nc: Client,
        js: JetStreamContext,
        spec: ConsumerSpec,
        handler: Handler,
        *,
        publisher: Publisher,
        metrics: BusMetrics,
        tracer: Tracer | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        shutdown_grace: float = 20.0,
    ) -> None:
        self._nc = nc
        self._js = js
        self.spec = spec
        self._handler = handler
        self._acceptance = Acceptance.of(spec.durable, spec.subjects, spec.accepts)
        self._publisher = publisher
        self._metrics = metrics
        self._spans = BusTracer(tracer) if tracer is not None else None  # None: tracing off, no span work
        self._clock = clock
        self._grace = shutdown_grace
        self._stopping = asyncio.Event()
        self._slots = asyncio.Semaphore(spec.concurrency)
        self._in_flight: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._sub: JetStreamContext.PullSubscription | None = None
        self._puller: Puller | None = None
        self._active: dict[int, tuple[Msg, float]] = {}
        self._keep_alive_task: asyncio.Task[None] | None = None
        self._counters: dict[tuple[str, str], Counter] = {}
        self._timers: dict[str, Histogram] = {}

    # --- lifecycle ----------------------------------------------------------------------------------
    async def ensure(self) -> None:
        """Create the durable consumer, or update it to this spec."""
        config = ConsumerConfig(
            durable_name=self.spec.durable,
            description=self.spec.description,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.spec.ack_wait,
            max_deliver=self.spec.max_deliver,
            max_ack_pending=self.spec.max_ack_pending,
            deliver_policy=DeliverPolicy.NEW if self.spec.deliver_new_only else DeliverPolicy.ALL,
            filter_subjects=list(self.spec.subjects) if len(self.spec.subjects) > 1 else None,
            filter_subject=self.spec.subjects[0] if len(self.spec.subjects) == 1 else None,
        )
        try:
            existing = await self._js.consumer_info(self.spec.stream, self.spec.durable)
        except NotFoundError:
            start = await start_after_legacy(self._js, self.spec)
            if start is not None:
                config.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
                config.opt_start_seq = start
            await self._js.add_consumer(self.spec.stream, config)
        else:
            # Same name, same stream: update in place (the server refuses changes it cannot apply, such as
            # where delivery started, so that is kept as created).
            config.deliver_policy = existing.config.deliver_policy
            config.opt_start_seq = existing.config.opt_start_seq
            await self._js.add_consumer(self.spec.stream, config)

    async def start(self) -> None:
        await self.ensure()
        self._sub = await self._js.pull_subscribe_bind(durable=self.spec.durable, stream=self.spec.stream)
        self._puller = Puller(self._sub)
        self._loop_task = asyncio.create_task(self._run(), name=f"consumer:{self.spec.durable}")
        self._keep_alive_task = asyncio.create_task(self._keep_alive(), name=f"keep-alive:{self.spec.durable}")

    async def stop(self) -> None:
        """Graceful drain: stop pulling, let in-flight handlers finish within the grace period."""
        self._stopping.set()
        deadline = asyncio.get_running_loop().time() + self._grace
        # With concurrency 1 the handler runs inside the pull loop, so the loop is in-flight work too.
        running = {t for t in (self._loop_task, *self._in_flight) if t is not None}
        if running:
            _, pending = await asyncio.wait(running, timeout=self._grace)
            for task in pending:
                log.warning(
                    "consumer %s: handler still running after %.0fs grace; abandoning it "
                    "(the message will be redelivered)",
                    self.spec.durable,
                    self._grace,
                )
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        # Handlers started by the loop while it wound down.
        if self._in_flight:
            remaining = max(deadline - asyncio.get_running_loop().time(), 0.1)
            _, pending = await asyncio.wait(set(self._in_flight), timeout=remaining)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self._loop_task = None
        if self._keep_alive_task is not None:
            self._keep_alive_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keep_alive_task
            self._keep_alive_task = None
        if self._sub is not None:
            # Messages the server already sent for an earlier pull may sit in the client's queue: hand them
            # back now rather than letting them wait out ack_wait.
            await self._release(_queued(self._sub))
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
            self._sub = None

    async def refresh_lag(self) -> tuple[int, int]:
        """Read num_pending / num_ack_pending from the server into the lag gauges."""
        info = await self._js.consumer_info(self.spec.stream, self.spec.durable)
        pending, ack_pending = int(info.num_pending or 0), int(info.num_ack_pending or 0)
        self._metrics.consumer_pending.labels(self.spec.durable).set(pending)
        self._metrics.consumer_ack_pending.labels(self.spec.durable).set(ack_pending)
        return pending, ack_pending

    # --- the pull loop ------------------------------------------------------------------------------
    async def _run(self) -> None:
        assert self._puller is not None
        last_lag = 0.0
        while not self._stopping.is_set():
            try:
                messages = await self._puller.pull(self.spec.batch, self.spec.fetch_timeout)
            except (NatsTimeoutError, TimeoutError):
                messages = []
            except Exception as exc:
                log.warning("consumer %s: fetch failed: %s", self.spec.durable, exc)
                await asyncio.sleep(0.5)
                continue
            for index, msg in enumerate(messages):
                if self._stopping.is_set():
                    await self._release(messages[index:])
                    break
                if self.spec.concurrency == 1:
                    await self.handle(msg)  # in order, and no task per message on the hot path
                    continue
                await self._slots.acquire()
                if self._stopping.is_set():
                    self._slots.release()
                    await self._release(messages[index:])
                    break
                task = asyncio.create_task(self._handle_and_release(msg))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)
            if time.monotonic() - last_lag > 5.0:
                last_lag = time.monotonic()
                with contextlib.suppress(Exception):
                    await self.refresh_lag()

    async def _release(self, messages: Sequence[Msg]) -> None:
        for msg in messages:
            try:
                await msg.nak()
            except Exception as exc:
                log.warning("consumer %s: could not release a message: %s", self.spec.durable, exc)

    async def _handle_and_release(self, msg: Msg) -> None:
        try:
            await self.handle(msg)
        finally:
            self._slots.release()

    # --- one message --------------------------------------------------------------------------------
    async def handle(self, msg: Msg) -> None:
        attempt, sequence = _delivery_of(msg)
        headers = msg.headers or {}
        try:
            event = self._acceptance.admit(msg.data, msg.subject)
        except UndecodableError as exc:
            # One label for every refusal: the type of a refused message is whatever its publisher wrote.
            self._count("undecodable", "term")
            await self._dead_letter(msg, str(exc), attempt, sequence)
            return

        if self._spans is None:
            with correlation(event.correlationid or event.id):
                await self._process(msg, event, headers, attempt, sequence, span=INVALID_SPAN)
            return
        span = self._start_span(msg, event, headers, attempt)
        token = attach(set_span_in_context(span))
        try:
            with correlation(event.correlationid or event.id):
                await self._process(msg, event, headers, attempt, sequence, span=span)
        except BaseException as exc:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            raise
        finally:
            span.end()
            detach(token)

    async def _process(
        self, msg: Msg, event: Envelope, headers: Mapping[str, str], attempt: int, sequence: int, *, span: Span
    ) -> None:
        stale = self._stale_reason(event)
        if stale is not None:
            span.set_attribute("opsbus.skip_reason", stale)
            log.info("consumer %s: skipped %s (%s): %s", self.spec.durable, event.id, event.type, stale)
            self._count(event.type, "skip")
            await msg.ack()
            return
        started = time.perf_counter()
        delivery = Delivery(event, msg.subject, sequence, attempt, headers)
        self._active[id(msg)] = (msg, time.monotonic())
        try:
            await self._handler(delivery)
        except SkipError as exc:
            span.set_attribute("opsbus.skip_reason", str(exc))
            self._count(event.type, "skip")
            await msg.ack()
        except PermanentError as exc:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, str(exc)))
            self._count(event.type, "term")
            await self._dead_letter(msg, f"{type(exc).__name__}: {exc}", attempt, sequence)
        except Exception as exc:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, str(exc)))
            await self._retry_or_dead_letter(msg, event, exc, attempt, sequence)
        else:
            self._count(event.type, "ack")
            await msg.ack()
        finally:
            self._active.pop(id(msg), None)
            self._timer(event.type).observe(time.perf_counter() - started)

    def _start_span(self, msg: Msg, event: Envelope, headers: Mapping[str, str], attempt: int) -> Span:
        """The CONSUMER span of one message, child of the publisher's span (made current by the caller).

        Started by `BusTracer` and attached by hand rather than `start_as_current_span`: the same span, a
        fraction of the per-message cost (issue 23).
        """
        assert self._spans is not None
        return self._spans.start(
            f"process {msg.subject}",
            SpanKind.CONSUMER,
            {
                "messaging.system": "nats",
                "messaging.operation.type": "process",
                "messaging.destination.name": msg.subject,
                "messaging.consumer.group.name": self.spec.durable,
                "messaging.message.id": event.id,
                "messaging.message.conversation_id": event.correlationid or event.id,
                "messaging.nats.delivery_attempt": attempt,
                "cloudevents.event_type": event.type,
            },
            context_from(headers, event.traceparent, event.tracestate),
        )

    def _count(self, event_type: str, outcome: str) -> None:
        key = (event_type, outcome)
        child = self._counters.get(key)
        if child is None:
            child = self._counters[key] = self._metrics.consumed.labels(self.spec.durable, event_type, outcome)
        child.inc()

    def _timer(self, event_type: str) -> Histogram:
        child = self._timers.get(event_type)
        if child is None:
            child = self._timers[event_type] = self._metrics.handler_seconds.labels(self.spec.durable, event_type)
        return child

    def _stale_reason(self, event: Envelope) -> str | None:
        if self.spec.freshness is None:
            return None
        age = self._clock() - event.time
        if age > self.spec.freshness:
            return (
                f"stale: event is {age.total_seconds():.0f}s old, freshness bound is "
                f"{self.spec.freshness.total_seconds():.0f}s"
            )
        return None

    async def _retry_or_dead_letter(
        self, msg: Msg, event: Envelope, exc: Exception, attempt: int, sequence: int
    ) -> None:
        if not isinstance(exc, TransientError):
            log.exception(
                "consumer %s: handler failed on %s (attempt %d)",
                self.spec.durable,
                event.id,
                attempt,
                exc_info=exc,
            )
        if attempt >= self.spec.max_deliver:
            self._count(event.type, "term")
            await self._dead_letter(
                msg, f"gave up after {attempt} deliveries: {type(exc).__name__}: {exc}", attempt, sequence
            )
            return
        delay = exc.delay if isinstance(exc, TransientError) and exc.delay is not None else self.spec.delay_for(attempt)
        self._count(event.type, "nak")
        await msg.nak(delay=delay)

    async def _dead_letter(self, msg: Msg, reason: str, attempt: int, sequence: int) -> None:
        """Copy the original bytes to `dlq.<subject>` (durably), then terminate the original."""
        headers = {k: v for k, v in (msg.headers or {}).items() if k in ("traceparent", "tracestate", "Content-Type")}
        headers.update(
            {
                MSG_ID: f"dlq:{self.spec.stream}:{sequence}:{self.spec.durable}",
                DLQ_REASON: reason[:4000].replace("\r", " ").replace("\n", " "),
                DLQ_CONSUMER: self.spec.durable,
                DLQ_STREAM: self.spec.stream,
                DLQ_STREAM_SEQ: str(sequence),
                DLQ_DELIVERIES: str(attempt),
                DLQ_SUBJECT: msg.subject,
                DLQ_TIME: self._clock().isoformat(),
            }
        )
        try:
            ack = await self._publisher.send_raw(dlq_subject(msg.subject), msg.data, headers, event_type="dlq")
            await ack
        except Exception as exc:
            log.error(
                "consumer %s: could not dead-letter seq %d: %s; it will be redelivered",
                self.spec.durable,
                sequence,
                exc,
            )
            with contextlib.suppress(Exception):
                await msg.nak(delay=self.spec.delay_for(attempt))
            return
        self._metrics.dead_lettered.labels(self.spec.durable).inc()
        log.warning("consumer %s: dead-lettered seq %d from %s: %s", self.spec.durable, sequence, msg.subject, reason)
        await msg.term()

    async def _keep_alive(self) -> None:
        """One loop per consumer: tell JetStream that long-running handlers are still working, so their
        messages are not redelivered to another replica while they run."""
        interval = max(self.spec.ack_wait / 3, 0.2)
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for msg, since in list(self._active.values()):
                if now - since >= interval:
                    with contextlib.suppress(Exception):
                        await msg.in_progress()


def _delivery_of(msg: Msg) -> tuple[int, int]:
    """(delivery attempt, stream sequence) from the JetStream ack subject, read directly: nats-py's
    `msg.metadata` also builds datetimes and dataclasses we do not need, on every message."""
    parts = (msg.reply or "").split(".")
    try:
        if len(parts) == 9:  # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>
            return int(parts[4]), int(parts[5])
        if len(parts) >= 11:  # $JS.ACK.<domain>.<account>.<stream>.<consumer>.<delivered>.<sseq>...
            return int(parts[6]), int(parts[7])
    except ValueError:
        pass
    meta = msg.metadata
    return int(meta.num_delivered or 1), int(meta.sequence.stream) if meta.sequence else 0


def _queued(sub: JetStreamContext.PullSubscription) -> list[Msg]:
    """Messages delivered to this pull subscription's local queue and not yet fetched (nats-py internals,
    read defensively: if they move, we fall back to JetStream redelivering after ack_wait)."""
    queue = getattr(getattr(sub, "_sub", None), "_pending_queue", None)
    found: list[Msg] = []
    while queue is not None and not queue.empty():
        msg = queue.get_nowait()
        if msg.data or msg.reply:  # status messages (408/404 for expired pulls) carry neither
            found.append(msg)
    return [m for m in found if m.reply and m.reply.startswith("$JS.ACK.")]
