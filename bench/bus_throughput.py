"""Events per second through opsbus.common's publish -> consume -> ack path, against raw nats-py JetStream
measured in the same run on the same private nats-server (these machines are noisy: only the ratio means
something).

Both paths send the same prebuilt events and do the same work per event: serialize, publish pipelined with
a Nats-Msg-Id, pull in batches, ack each message. The opsbus path adds what the product needs: trace-context
stamping, the bounded in-flight window with retry-on-timeout bookkeeping, decoding and validating every
consumed CloudEvent, freshness and flow-control handling, metrics, and (in the traced variant) a producer
and a consumer span per event, sampled at 100% and at the chart's default ratio.

    uv run python bench/bus_throughput.py [--events 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import nats
from nats.js.api import AckPolicy, ConsumerConfig
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry

from opsbus.common.bus import Bus, ConsumerSpec, Delivery
from opsbus.common.bus.streams import ensure_streams
from opsbus.common.events import Envelope, ObjectRef
from opsbus.common.events.catalog import DLQ, family
from opsbus.common.events.payloads import ClusterEvent
from opsbus.common.settings import NatsSettings
from opsbus.common.telemetry.tracing import IncidentSampler
from opsbus.common.testing.servers import nats_server

CLUSTER = family("cluster")
DEFAULT_RATIO = 0.1  # the chart's default telemetry.sampleRatio


def sample_event(n: int) -> Envelope:
    return Envelope.build(
        ClusterEvent.model_validate(
            {
                "kind": "Pod",
                "namespace": "payments",
                "name": f"api-{n}",
                "uid": f"uid-{n}",
                "change": "MODIFIED",
                "resource_version": str(1000 + n),
                "api_version": "v1",
                "phase": "Running",
            }
        ),
        service="watcher",
        cluster="bench",
        obj=ObjectRef(kind="Pod", namespace="payments", name=f"api-{n}"),
    )


async def reset(url: str) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    for info in await js.streams_info():
        if info.config.name:
            await js.delete_stream(info.config.name)
    await ensure_streams(js, families=(CLUSTER, DLQ))
    await nc.close()


async def raw_round(url: str, prepared: list[Envelope]) -> float:
    events = len(prepared)
    await reset(url)
    nc = await nats.connect(url, pending_size=64 * 1024 * 1024)
    js = nc.jetstream(publish_async_max_pending=1024)
    await js.add_consumer(
        "CLUSTER", ConsumerConfig(durable_name="raw", ack_policy=AckPolicy.EXPLICIT, max_ack_pending=1000)
    )
    sub = await js.pull_subscribe_bind(durable="raw", stream="CLUSTER")
    done = asyncio.Event()
    received = 0

    async def consume() -> None:
        nonlocal received
        while received < events:
            try:
                msgs = await sub.fetch(64, timeout=1)
            except nats.errors.TimeoutError:
                continue
            for msg in msgs:
                await msg.ack()
                received += 1
        done.set()

    started = time.perf_counter()
    consumer = asyncio.create_task(consume())
    futures = [await js.publish_async(e.nats_subject(), e.to_json(), headers={"Nats-Msg-Id": e.id}) for e in prepared]
    await asyncio.gather(*futures)
    await done.wait()
    elapsed = time.perf_counter() - started
    await consumer
    await nc.close()
    return events / elapsed


async def opsbus_round(url: str, prepared: list[Envelope], *, traced: bool, ratio: float = 1.0) -> float:
    events = len(prepared)
    await reset(url)
    # the services' sampler: parent-based at `ratio` (these cluster.event traces are new ones), alerts always
    provider = TracerProvider(sampler=IncidentSampler(ratio)) if traced else None
    bus = await Bus.connect(
        NatsSettings(url=url, publish_max_in_flight=1024),
        service="bench",
        registry=CollectorRegistry(),
        tracer_provider=provider,
    )
    done = asyncio.Event()
    received = 0

    async def handler(delivery: Delivery) -> None:
        nonlocal received
        received += 1
        if received == events:
            done.set()

    bus.consumer(ConsumerSpec(durable="bench", stream="CLUSTER", subjects=["cluster.>"], batch=64), handler)
    started = time.perf_counter()
    await bus.start()
    for event in prepared:
        await bus.publisher.send(event)
    await bus.publisher.flush()
    await done.wait()
    elapsed = time.perf_counter() - started
    await bus.close()
    return events / elapsed


async def main(events: int, rounds: int) -> None:
    with nats_server() as server:
        prepared = [sample_event(n) for n in range(events)]
        raw: list[float] = []
        plain: list[float] = []
        traced: list[float] = []
        sampled: list[float] = []
        for index in range(rounds):
            raw.append(await raw_round(server.url, prepared))
            plain.append(await opsbus_round(server.url, prepared, traced=False))
            traced.append(await opsbus_round(server.url, prepared, traced=True))
            sampled.append(await opsbus_round(server.url, prepared, traced=True, ratio=DEFAULT_RATIO))
            print(
                f"round {index + 1}/{rounds}: raw {raw[-1]:8.0f} ev/s   opsbus {plain[-1]:8.0f} ev/s"
                f"   tracing 100% {traced[-1]:8.0f} ev/s   tracing {DEFAULT_RATIO:.0%} {sampled[-1]:8.0f} ev/s",
                flush=True,
            )
    raw_m = statistics.median(raw)
    print()
    print(f"events per round: {events}, rounds: {rounds} (medians)")
    print(f"raw nats-py JetStream            {raw_m:8.0f} ev/s   1.00x")
    for label, runs in (
        ("opsbus bus, tracing off      ", plain),
        ("opsbus bus, tracing on 100%  ", traced),
        (f"opsbus bus, tracing on {DEFAULT_RATIO:.0%}   ", sampled),
    ):
        # Rounds interleave the paths, so the median of per-round ratios is less sensitive to load drift.
        per_round = statistics.median(p / r for p, r in zip(runs, raw, strict=True))
        median = statistics.median(runs)
        print(f"{label}    {median:8.0f} ev/s   {median / raw_m:.2f}x (per-round {per_round:.2f}x)")
    print("targets (issue 23): tracing off >= 0.85x raw, tracing on at 100% >= 0.60x raw")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20000, help="events per round (default 20000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per path; the median is reported")
    args = parser.parse_args()
    asyncio.run(main(args.events, args.rounds))
