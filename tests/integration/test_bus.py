"""The bus against a real nats-server with JetStream: delivery, retries, dead letters, dedupe, sharing,
tracing and graceful drain. Every test looks at what a user would see: acks, the stream, the DLQ."""

from __future__ import annotations

import asyncio
import itertools
import os
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry

from opsbus.common.bus import Bus, ConsumerSpec, Delivery
from opsbus.common.bus.consuming import DLQ_CONSUMER, DLQ_DELIVERIES, DLQ_REASON, DLQ_SUBJECT
from opsbus.common.errors import ConfigurationError, PermanentError, TransientError
from opsbus.common.testing.servers import NatsServer
from tests.integration.busprobe import Happened, event, provision

pytestmark = pytest.mark.integration

MakeBus = Callable[..., Awaitable[Bus]]


def spec(**overrides: object) -> ConsumerSpec:
    values: dict[str, object] = {
        "durable": "tests-probe",
        "stream": "TEST",
        "subjects": ["test.>"],
        "backoff": (0.2, 0.2, 0.2),
        "max_deliver": 4,
        "ack_wait": 5.0,
        "fetch_timeout": 0.3,
    }
    values.update(overrides)
    return ConsumerSpec(**values)  # type: ignore[arg-type]


async def wait_until(condition: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


async def dlq_messages(bus: Bus) -> list[tuple[str, bytes, dict[str, str]]]:
    info = await bus.js.stream_info("DLQ")
    found = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        if info.state.messages == 0:
            break
        raw = await bus.js.get_msg("DLQ", seq)
        found.append((raw.subject or "", raw.data or b"", dict(raw.headers or {})))
    return found


async def test_publish_consume_ack(make_bus: MakeBus, registry: CollectorRegistry) -> None:
    bus = await make_bus()
    await provision(bus)
    seen: list[int] = []

    async def handler(delivery: Delivery) -> None:
        seen.append(delivery.event.payload_as(Happened).n)

    bus.consumer(spec(), handler)
    await bus.start()
    for n in range(20):
        await bus.publisher.send(event(n))
    await bus.publisher.flush(timeout=5)
    await wait_until(lambda: len(seen) == 20, what="20 deliveries")
    assert seen == list(range(20))  # one consumer, concurrency 1: stream order
    assert event(0).nats_subject() == "test.happened.dev.ns1"
    # The handler runs before its ack is sent, and the server counts the ack when it arrives: wait for both.
    acked = {"consumer": "tests-probe", "type": "io.opsbus.test.happened.v1", "outcome": "ack"}
    await wait_until(lambda: registry.get_sample_value("opsbus_events_consumed_total", acked) == 20, what="20 acks")
    lag = (-1, -1)
    for _ in range(100):
        lag = await bus.consumers[0].refresh_lag()
        if lag == (0, 0):
            break
        await asyncio.sleep(0.02)
    assert lag == (0, 0)
    assert (
        registry.get_sample_value(
            "opsbus_events_published_total", {"type": "io.opsbus.test.happened.v1", "outcome": "ok"}
        )
        == 20
    )


async def test_a_lone_event_on_an_idle_consumer_is_not_held_for_the_fetch_timeout(make_bus: MakeBus) -> None:
    """A consumer waiting in a fetch for a whole batch hands a lone event over at once, not when the fetch expires
    (pins the nats-py pull behaviour the consumer's latency depends on)."""
    bus = await make_bus()
    await provision(bus)
    handled: list[float] = []
    loop = asyncio.get_running_loop()

    async def handler(delivery: Delivery) -> None:
        handled.append(loop.time())

    bus.consumer(spec(fetch_timeout=8.0, batch=64), handler)
    await bus.start()
    await asyncio.sleep(0.5)  # the consumer is now waiting in a fetch

    def handled_count(count: int) -> Callable[[], bool]:
        return lambda: len(handled) == count

    for n in range(1, 4):
        published = loop.time()
        await bus.publisher.publish(event(n))
        await wait_until(handled_count(n), timeout=7.0, what=f"delivery {n}")
        assert handled[-1] - published < 4.0  # half the fetch timeout: not held until the fetch expires


async def test_a_backlog_is_fetched_in_batches(make_bus: MakeBus) -> None:
    bus = await make_bus()
    await provision(bus)
    for n in range(200):
        await bus.publisher.send(event(n))
    await bus.publisher.flush(timeout=5)
    seen: list[int] = []

    async def handler(delivery: Delivery) -> None:
        seen.append(delivery.event.payload_as(Happened).n)

    bus.consumer(spec(fetch_timeout=8.0, batch=64), handler)
    await bus.start()
    await wait_until(lambda: len(seen) == 200, timeout=7.0, what="the backlog of 200")
    assert seen == list(range(200))


async def test_redelivery_after_handler_crash(make_bus: MakeBus) -> None:
    """A replica dies mid-handler (no ack): after ack_wait the message is redelivered to a live replica."""
    dying = await make_bus("dying")
    await provision(dying)
    started = asyncio.Event()

    async def hang(delivery: Delivery) -> None:
        started.set()
        await asyncio.sleep(3600)

    dying.consumer(spec(ack_wait=1.0), hang)
    await dying.start()
    await dying.publisher.publish(event(7))
    await asyncio.wait_for(started.wait(), 5)
    # Simulate a crash: the connection goes away without acking.
    dying.consumers[0]._stopping.set()
    await dying.nc.close()
    await dying.consumers[0].stop()

    survivor = await make_bus("survivor")
    got: list[Delivery] = []

    async def record(delivery: Delivery) -> None:
        got.append(delivery)

    survivor.consumer(spec(ack_wait=1.0), record)
    await survivor.start()
    await wait_until(lambda: len(got) == 1, timeout=10, what="redelivery")
    assert got[0].event.payload_as(Happened).n == 7
    assert got[0].attempt == 2


async def test_transient_error_naks_with_delay_then_succeeds(make_bus: MakeBus) -> None:
    bus = await make_bus()
    await provision(bus)
    attempts: list[tuple[int, float]] = []

    async def flaky(delivery: Delivery) -> None:
        attempts.append((delivery.attempt, asyncio.get_running_loop().time()))
        if delivery.attempt < 3:
            raise TransientError("downstream busy", delay=0.5)

    bus.consumer(spec(), flaky)
    await bus.start()
    await bus.publisher.publish(event(1))
    await wait_until(lambda: len(attempts) == 3, what="three attempts")
    assert [a for a, _ in attempts] == [1, 2, 3]
    gaps = [later - earlier for (_, earlier), (_, later) in itertools.pairwise(attempts)]
    assert all(gap >= 0.45 for gap in gaps), gaps  # the nak delay was honoured
    await asyncio.sleep(0.5)
    assert len(attempts) == 3  # acked after success: no further delivery
    assert await dlq_messages(bus) == []


async def test_poison_message_goes_to_dlq_and_later_messages_flow(
    make_bus: MakeBus, registry: CollectorRegistry
) -> None:
    bus = await make_bus()
    await provision(bus)
    handled: list[int] = []

    async def handler(delivery: Delivery) -> None:
        n = delivery.event.payload_as(Happened).n
        if n == 2:
            raise PermanentError("n=2 is not allowed")
        handled.append(n)

    bus.consumer(spec(), handler)
    await bus.start()
    await bus.js.publish("test.happened.dev.ns1", b"{not json", headers={"Nats-Msg-Id": "garbage-1"})
    for n in range(1, 5):
        await bus.publisher.publish(event(n))
    await wait_until(lambda: handled == [1, 3, 4], what="good messages handled")
    await wait_until(
        lambda: (registry.get_sample_value("opsbus_dlq_messages_total", {"consumer": "tests-probe"}) or 0) == 2
    )
    dead = await dlq_messages(bus)
    assert [subject for subject, _, _ in dead] == ["dlq.test.happened.dev.ns1"] * 2
    garbage, rejected = dead
    assert garbage[1] == b"{not json"
    assert "not a valid opsbus CloudEvent" in garbage[2][DLQ_REASON]
    assert garbage[2][DLQ_CONSUMER] == "tests-probe"
    assert garbage[2][DLQ_SUBJECT] == "test.happened.dev.ns1"
    assert rejected[2][DLQ_REASON] == "PermanentError: n=2 is not allowed"
    info = await bus.js.consumer_info("TEST", "tests-probe")
    assert info.num_ack_pending == 0 and info.num_pending == 0


async def test_refused_events_never_reach_the_handler_and_their_type_is_no_metric_label(
    make_bus: MakeBus, registry: CollectorRegistry
) -> None:
    """Issue 28: the bus, not the handler, refuses an event of an unknown version or one on another subject."""
    bus = await make_bus()
    await provision(bus)
    handled: list[int] = []

    async def handler(delivery: Delivery) -> None:
        handled.append(delivery.event.payload_as(Happened).n)

    bus.consumer(spec(accepts=[Happened]), handler)
    await bus.start()
    v9 = event(1).model_copy(update={"type": "io.opsbus.test.happened.v9"})
    await bus.js.publish("test.happened.dev.ns1", v9.to_json())
    await bus.js.publish("test.happened.dev.ns2", event(2).to_json())  # its envelope says namespace ns1
    await bus.publisher.publish(event(3))
    await wait_until(lambda: handled == [3], what="the valid event handled")
    dead = await dlq_messages(bus)
    assert [d[0] for d in dead] == ["dlq.test.happened.dev.ns1", "dlq.test.happened.dev.ns2"]
    assert (
        "unknown version v9 of test.happened: consumer tests-probe knows io.opsbus.test.happened.v1"
        in (dead[0][2][DLQ_REASON])
    )
    assert "belongs on test.happened.dev.ns1" in dead[1][2][DLQ_REASON]
    consumed = {"consumer": "tests-probe", "outcome": "term"}
    assert registry.get_sample_value("opsbus_events_consumed_total", {**consumed, "type": "undecodable"}) == 2
    assert registry.get_sample_value("opsbus_events_consumed_total", {**consumed, "type": v9.type}) is None


async def test_a_consumer_that_accepts_nothing_its_subjects_carry_does_not_start(make_bus: MakeBus) -> None:
    bus = await make_bus()
    with pytest.raises(ConfigurationError, match="never carry"):
        bus.consumer(spec(subjects=["test.other.>"], accepts=[Happened]), lambda _: asyncio.sleep(0))


async def test_transient_failures_exhaust_max_deliver_into_dlq(make_bus: MakeBus) -> None:
    bus = await make_bus()
    await provision(bus)
    attempts: list[int] = []

    async def always_down(delivery: Delivery) -> None:
        attempts.append(delivery.attempt)
        raise ConnectionError("cluster unreachable")

    bus.consumer(spec(max_deliver=3), always_down)
    await bus.start()
    await bus.publisher.publish(event(9))
    await wait_until(lambda: len(attempts) == 3, what="three deliveries")
    for _ in range(100):
        dead = await dlq_messages(bus)
        if dead:
            break
        await asyncio.sleep(0.05)
    assert len(dead) == 1
    assert dead[0][2][DLQ_DELIVERIES] == "3"
    assert "gave up after 3 deliveries: ConnectionError: cluster unreachable" in dead[0][2][DLQ_REASON]


async def test_duplicate_publish_is_stored_once(make_bus: MakeBus, registry: CollectorRegistry) -> None:
    bus = await make_bus()
    await provision(bus)
    first = event(5, event_id="fixed-id-5")
    again = event(5, event_id="fixed-id-5")
    ack1 = await bus.publisher.publish(first)
    ack2 = await bus.publisher.publish(again)
    assert not ack1.duplicate
    assert ack2.duplicate
    info = await bus.js.stream_info("TEST")
    assert info.state.messages == 1
    assert (
        registry.get_sample_value(
            "opsbus_events_published_total", {"type": "io.opsbus.test.happened.v1", "outcome": "duplicate"}
        )
        == 1
    )


async def test_two_instances_share_one_durable_consumer(make_bus: MakeBus) -> None:
    replica_a = await make_bus("replica-a")
    replica_b = await make_bus("replica-b")
    await provision(replica_a)
    seen: Counter[int] = Counter()
    by_replica: Counter[str] = Counter()

    def handler_for(name: str) -> Callable[[Delivery], Awaitable[None]]:
        async def handle(delivery: Delivery) -> None:
            seen[delivery.event.payload_as(Happened).n] += 1
            by_replica[name] += 1
            await asyncio.sleep(0.002)

        return handle

    replica_a.consumer(spec(batch=5), handler_for("a"))
    replica_b.consumer(spec(batch=5), handler_for("b"))
    await replica_a.start()
    await replica_b.start()
    for n in range(300):
        await replica_a.publisher.send(event(n))
    await replica_a.publisher.flush(timeout=10)
    await wait_until(lambda: sum(seen.values()) >= 300, timeout=20, what="300 deliveries")
    await asyncio.sleep(0.5)
    assert sorted(seen) == list(range(300))
    assert set(seen.values()) == {1}  # nothing processed twice
    assert by_replica["a"] > 0 and by_replica["b"] > 0  # both replicas did work


async def test_trace_context_survives_the_hop(make_bus: MakeBus, span_exporter: InMemorySpanExporter) -> None:
    bus = await make_bus()
    await provision(bus)
    handled = asyncio.Event()

    async def handler(delivery: Delivery) -> None:
        handled.set()

    bus.consumer(spec(), handler)
    await bus.start()
    tracer = bus.tracer
    with tracer.start_as_current_span("incident") as root:
        sent = event(3)
        await bus.publisher.publish(sent)
    await asyncio.wait_for(handled.wait(), 5)
    await asyncio.sleep(0.05)
    spans = span_exporter.get_finished_spans()
    producer = next(s for s in spans if s.kind == SpanKind.PRODUCER)
    consumer = next(s for s in spans if s.kind == SpanKind.CONSUMER)
    trace_id = root.get_span_context().trace_id
    assert producer.context is not None and consumer.context is not None
    assert producer.context.trace_id == trace_id
    assert consumer.context.trace_id == trace_id
    assert consumer.parent is not None and consumer.parent.span_id == producer.context.span_id
    assert consumer.attributes is not None
    assert consumer.attributes["messaging.system"] == "nats"
    assert consumer.attributes["messaging.message.id"] == sent.id
    # The envelope carries it too, so tooling that only sees the body can follow the chain.
    raw = await bus.js.get_msg("TEST", 1)
    assert f"{trace_id:032x}" in (raw.data or b"").decode()
    assert raw.headers is not None and raw.headers["traceparent"].split("-")[1] == f"{trace_id:032x}"


async def test_graceful_drain_loses_nothing_in_flight(make_bus: MakeBus) -> None:
    first = await make_bus("first")
    await provision(first)
    completed: list[int] = []
    began: list[int] = []

    async def slow(delivery: Delivery) -> None:
        began.append(delivery.event.payload_as(Happened).n)
        await asyncio.sleep(0.3)
        completed.append(delivery.event.payload_as(Happened).n)

    first.consumer(spec(batch=10, concurrency=4), slow)
    await first.start()
    for n in range(40):
        await first.publisher.send(event(n))
    await first.publisher.flush(timeout=5)
    await wait_until(lambda: len(began) >= 4, what="handlers in flight")
    await first.close()  # SIGTERM path: stop pulling, finish in-flight, flush, drain
    assert set(began) <= set(completed)  # every started handler finished (and was acked)

    second = await make_bus("second")
    rest: list[int] = []

    async def record(delivery: Delivery) -> None:
        rest.append(delivery.event.payload_as(Happened).n)

    second.consumer(spec(batch=10, ack_wait=30.0), record)
    await second.start()
    await wait_until(lambda: len(completed) + len(rest) >= 40, timeout=10, what="the remaining events")
    await asyncio.sleep(0.3)
    assert sorted(completed + rest) == list(range(40))  # nothing lost, nothing done twice


async def test_stale_events_are_acked_with_a_skip(make_bus: MakeBus, registry: CollectorRegistry) -> None:
    bus = await make_bus()
    await provision(bus)
    handled: list[int] = []

    async def handler(delivery: Delivery) -> None:
        handled.append(delivery.event.payload_as(Happened).n)

    bus.consumer(spec(freshness=timedelta(minutes=5)), handler)
    await bus.start()
    await bus.publisher.publish(event(1, time=datetime.now(UTC) - timedelta(hours=4)))
    await bus.publisher.publish(event(2))
    await wait_until(lambda: handled == [2], what="fresh event handled")
    await wait_until(
        lambda: (
            registry.get_sample_value(
                "opsbus_events_consumed_total",
                {"consumer": "tests-probe", "type": "io.opsbus.test.happened.v1", "outcome": "skip"},
            )
            == 1
        ),
        what="skip counted",
    )


@pytest.mark.skipif(bool(os.environ.get("OPSBUS_TEST_NATS_URL")), reason="restarts a private nats-server")
async def test_publish_survives_a_nats_restart(make_bus: MakeBus, nats_server: NatsServer) -> None:
    """Publishes in flight while NATS restarts are retried with the same id and stored exactly once."""
    bus = await make_bus(publish_timeout=1.0, publish_retries=10)
    await provision(bus)
    for n in range(50):
        await bus.publisher.send(event(n))
    nats_server.restart()
    for n in range(50, 100):
        await bus.publisher.send(event(n))
    await bus.publisher.flush(timeout=30)
    info = await bus.js.stream_info("TEST")
    assert info.state.messages == 100


@pytest.mark.skipif(bool(os.environ.get("OPSBUS_TEST_NATS_URL")), reason="restarts a private nats-server")
async def test_consumer_keeps_going_across_a_nats_restart(make_bus: MakeBus, nats_server: NatsServer) -> None:
    """NATS goes away mid-stream and comes back with its store: every event is handled, none is lost."""
    bus = await make_bus(publish_timeout=1.0, publish_retries=20)
    await provision(bus)
    seen: Counter[int] = Counter()

    async def handler(delivery: Delivery) -> None:
        seen[delivery.event.payload_as(Happened).n] += 1

    bus.consumer(spec(ack_wait=2.0), handler)
    await bus.start()
    for n in range(30):
        await bus.publisher.send(event(n))
    await wait_until(lambda: len(seen) >= 10, what="some events handled before the restart")
    nats_server.restart()
    for n in range(30, 60):
        await bus.publisher.send(event(n))
    await bus.publisher.flush(timeout=30)
    await wait_until(lambda: len(seen) == 60, timeout=30, what="all 60 events after the restart")
    assert sorted(seen) == list(range(60))
