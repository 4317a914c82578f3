"""The notifier end to end: `alert.fired` published -> notification accepted by a webhook -> `notify.delivered`
on the bus; latency p50/p99 (group_wait 0) and sustained deliveries per second, against the raw bus
(nats-py JetStream publish -> pull consume of the same bytes) measured in the same run on the same nats-server.

The notifier runs in this process through its real wiring (`opsbus.notifier.service.setup` in a `Runtime`,
default settings) against a private nats-server (JetStream) and a private PostgreSQL; the webhook receiver is
an HTTP/1.1 server on 127.0.0.1 in this process that answers 200 at once. Every alert has its own fingerprint
and labels and the route groups by every label (`group_by: ['...']`), so each alert is one notification (one
group, one flush, one delivery, one `notify.delivered`). What the notifier does per alert: consume and decode,
inbox claim, route, group row, flush (silences, inhibition, notification row), lease, render, sign, POST,
delivery-log row, `notify.delivered` + audit through the outbox and its relay: five PostgreSQL transactions.

* latency: closed loop (the next alert once the previous `notify.delivered` arrived), so it is latency, not
  queueing; the raw baseline is the same loop on publish -> consume.
* throughput: `--burst` alerts published back to back; deliveries per second from the first publish to the
  last webhook POST (and to the last `notify.delivered`); the baseline is the same burst through the raw bus.
* no loss (issue 29): `--repeats` times the same fault on one workload (alert.fired then alert.resolved, same
  fingerprint, each awaited), so the group is emptied, deleted and re-created every time; then the counts over
  the whole run: notifications expected (one per latency and burst alert, two per repeat), created (rows
  queued), delivered (distinct notifications the webhook accepted) and lost (expected - delivered), which must be 0.

    uv run --all-packages python bench/notifier_throughput.py [--alerts 200] [--burst 2000] [--repeats 20]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import nats
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig
from prometheus_client import CollectorRegistry

from opsbus.common.bus import Bus
from opsbus.common.events import Envelope
from opsbus.common.events.examples import example_events
from opsbus.common.events.payloads import AlertFired, AlertResolved
from opsbus.common.runtime import Runtime
from opsbus.common.settings import DatabaseSettings, NatsSettings
from opsbus.common.store import Database, upgrade
from opsbus.common.testing.servers import nats_server, postgres_server

CONFIG = """
route:
  receiver: bench
  group_by: ['...']
  group_wait: 0s
  group_interval: 5m
  repeat_interval: 4h
  routes:
    - matchers: ['pod="checkout-repeat"']
      group_interval: 200ms
receivers:
  - name: bench
    webhook_configs:
      - url: ${BENCH_HOOK_URL}
        secret: ${BENCH_HOOK_SECRET}
"""


class Hook:
    """The webhook receiver: the monotonic time each alert's notification arrived, by alert event id."""

    def __init__(self) -> None:
        self.seen: dict[str, float] = {}
        self.notifications: set[str] = set()
        self.arrived = asyncio.Event()
        self.port = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                if not line.strip():
                    continue
                length = 0
                while (raw := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = raw.decode().partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                body = json.loads(await reader.readexactly(length))
                now = time.monotonic()
                self.notifications.add(body["notificationId"])
                for alert in body["alerts"]:
                    self.seen.setdefault(alert["eventId"], now)
                self.arrived.set()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


def alert(n: int) -> Envelope:
    base = example_events()[AlertFired.event_type]
    data: dict[str, Any] = dict(base.data)
    data["fingerprint"] = uuid.uuid4().hex[:16]
    data["labels"] = {**data["labels"], "pod": f"checkout-{n}"}
    return base.model_copy(update={"id": str(uuid.uuid4()), "data": data, "time": datetime.now(UTC)})


def repeated(event_type: str) -> Envelope:
    """The same fault on the same workload again: same fingerprint and labels, a new event."""
    base = example_events()[event_type]
    data: dict[str, Any] = dict(base.data)
    data["fingerprint"] = "b3ec4e9a0f1d2c35"  # one fixed fault
    data["labels"] = {**data["labels"], "pod": "checkout-repeat"}
    return base.model_copy(update={"id": str(uuid.uuid4()), "data": data, "time": datetime.now(UTC)})


def pct(xs: list[float], q: float) -> float:
    ordered = sorted(xs)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


async def wait_until(condition: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the bench did not see what it waited for in time")
        await asyncio.sleep(0.001)


# --- the baseline: raw nats-py JetStream publish -> pull consume of the same bytes ---------------------
async def raw_bus(url: str, latency_events: list[Envelope], burst_events: list[Envelope]) -> tuple[list[float], float]:
    nc = await nats.connect(url, pending_size=64 * 1024 * 1024)
    js = nc.jetstream(publish_async_max_pending=1024)
    await js.add_stream(StreamConfig(name="BENCH", subjects=["bench.>"]))
    await js.add_consumer("BENCH", ConsumerConfig(durable_name="raw", ack_policy=AckPolicy.EXPLICIT))
    sub = await js.pull_subscribe_bind(durable="raw", stream="BENCH")
    seen: dict[str, float] = {}
    stop = False

    async def consume() -> None:
        while not stop:
            try:
                msgs = await sub.fetch(64, timeout=0.2)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            for msg in msgs:
                seen[msg.headers["Nats-Msg-Id"] if msg.headers else ""] = time.monotonic()
                await msg.ack()

    consumer = asyncio.create_task(consume())
    latencies = []
    for e in latency_events:
        sent = time.monotonic()
        await js.publish(f"bench.{e.nats_subject()}", e.to_json(), headers={"Nats-Msg-Id": e.id})
        await wait_until(lambda e=e: e.id in seen, 30)
        latencies.append(seen[e.id] - sent)
    started = time.monotonic()
    futures = [
        await js.publish_async(f"bench.{e.nats_subject()}", e.to_json(), headers={"Nats-Msg-Id": e.id})
        for e in burst_events
    ]
    await asyncio.gather(*futures)
    await wait_until(lambda: all(e.id in seen for e in burst_events), 120)
    rate = len(burst_events) / (max(seen[e.id] for e in burst_events) - started)
    stop = True
    await consumer
    await nc.close()
    return latencies, rate


# --- the notifier -------------------------------------------------------------------------------------
async def start_notifier(nats_url: str, db_url: str, hook_url: str) -> tuple[Runtime[Any], asyncio.Task[int]]:
    from opsbus.notifier import store  # noqa: PLC0415
    from opsbus.notifier.service import setup  # noqa: PLC0415
    from opsbus.notifier.settings import NotifierSettings  # noqa: PLC0415

    await upgrade(DatabaseSettings.model_validate({"url": db_url}), store.MIGRATIONS, store.SCHEMA)
    settings = NotifierSettings.model_validate(
        {
            "cluster": "bench",
            "nats": {"url": nats_url},
            "database": {"url": db_url},
            "http": {"port": 0},
            "shutdown_grace_seconds": 5,
        }
    )
    rt: Runtime[NotifierSettings] = Runtime("notifier", settings)
    env = {"BENCH_HOOK_URL": hook_url, "BENCH_HOOK_SECRET": "bench-signing-key"}

    async def wired(r: Runtime[NotifierSettings]) -> None:
        await setup(r, config_text=CONFIG, env=env)

    task = asyncio.create_task(rt.run(wired, install_signals=False))
    while not rt._ready:  # the readiness /readyz reports
        if task.done():
            await task
        await asyncio.sleep(0.05)
    return rt, task


async def notifier_runs(
    nats_url: str, db_url: str, latency_events: list[Envelope], burst_events: list[Envelope], repeats: int
) -> tuple[list[float], list[float], float, float, dict[str, int]]:
    hook = Hook()
    server = await asyncio.start_server(hook.serve, "127.0.0.1", 0)
    hook.port = server.sockets[0].getsockname()[1]
    rt, task = await start_notifier(nats_url, db_url, f"http://127.0.0.1:{hook.port}/hook")
    bus = await Bus.connect(NatsSettings(url=nats_url), service="watcher", registry=CollectorRegistry())
    delivered: dict[str, float] = {}

    async def on_delivered(msg: Any) -> None:
        now = time.monotonic()
        for event_id in json.loads(msg.data)["data"]["event_ids"]:
            delivered.setdefault(event_id, now)

    sub = await bus.nc.subscribe("notify.delivered.>", cb=on_delivered)
    try:
        to_hook, to_event = [], []
        for e in latency_events:
            sent = time.monotonic()
            await bus.publisher.publish(e)
            await wait_until(lambda e=e: e.id in delivered, 30)
            to_hook.append(hook.seen[e.id] - sent)
            to_event.append(delivered[e.id] - sent)
        started = time.monotonic()
        for e in burst_events:
            await bus.publisher.send(e)
        await bus.publisher.flush()
        await wait_until(lambda: all(e.id in delivered for e in burst_events), 600)
        hook_rate = len(burst_events) / (max(hook.seen[e.id] for e in burst_events) - started)
        event_rate = len(burst_events) / (max(delivered[e.id] for e in burst_events) - started)
        for _ in range(repeats):
            for event_type in (AlertFired.event_type, AlertResolved.event_type):
                e = repeated(event_type)
                await bus.publisher.publish(e)
                with contextlib.suppress(TimeoutError):  # a lost one is counted below, not fatal
                    await wait_until(lambda e=e: e.id in hook.seen, 10)
        counts = await count_notifications(db_url, len(latency_events) + len(burst_events) + 2 * repeats, hook)
    finally:
        await sub.unsubscribe()
        await bus.close()
        rt.request_shutdown()
        await task
        server.close()
        await server.wait_closed()
    return to_hook, to_event, hook_rate, event_rate, counts


async def count_notifications(db_url: str, expected: int, hook: Hook) -> dict[str, int]:
    from sqlalchemy import func, select  # noqa: PLC0415

    from opsbus.notifier import store  # noqa: PLC0415

    db = Database.from_settings(DatabaseSettings.model_validate({"url": db_url}))
    try:
        async with db.sessions() as session:
            created = (await session.execute(select(func.count()).select_from(store.notifications))).scalar_one()
    finally:
        await db.close()
    delivered = len(hook.notifications)
    return {"expected": expected, "created": created, "delivered": delivered, "lost": expected - delivered}


async def main(alerts: int, burst: int, repeats: int) -> None:
    with nats_server() as nats_srv, postgres_server() as pg:
        raw_lat, raw_rate = await raw_bus(
            nats_srv.url, [alert(n) for n in range(alerts)], [alert(n) for n in range(burst)]
        )
        to_hook, to_event, hook_rate, event_rate, counts = await notifier_runs(
            nats_srv.url,
            pg.url(),
            [alert(n) for n in range(alerts)],
            [alert(alerts + n) for n in range(burst)],
            repeats,
        )
    r50, r99 = pct(raw_lat, 50), pct(raw_lat, 99)
    print(f"latency: {alerts} alerts, closed loop; throughput: a burst of {burst} alerts (group_wait 0, one per group)")
    print(f"raw bus publish -> consume       p50 {r50 * 1000:7.1f} ms   p99 {r99 * 1000:7.1f} ms   1.00x")
    for label, xs in (("alert.fired -> webhook POST", to_hook), ("alert.fired -> notify.delivered", to_event)):
        p50, p99 = pct(xs, 50), pct(xs, 99)
        print(
            f"{label:32s} p50 {p50 * 1000:7.1f} ms   p99 {p99 * 1000:7.1f} ms   "
            f"{p50 / r50:.1f}x / {p99 / r99:.1f}x; mean {statistics.fmean(xs) * 1000:.1f} ms"
        )
    print(f"raw bus burst                    {raw_rate:8.0f} ev/s   1.00x")
    print(f"notifier, deliveries (webhook)   {hook_rate:8.1f} /s     {hook_rate / raw_rate:.3f}x")
    print(f"notifier, notify.delivered       {event_rate:8.1f} /s     {event_rate / raw_rate:.3f}x")
    print(
        f"notifications (incl. the same fault {repeats} times on one workload): expected {counts['expected']}, "
        f"created {counts['created']}, delivered {counts['delivered']}, lost {counts['lost']}"
    )
    if counts["lost"]:
        raise SystemExit(f"{counts['lost']} notification(s) lost")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alerts", type=int, default=200, help="closed-loop alerts for latency (default 200)")
    parser.add_argument("--burst", type=int, default=2000, help="alerts published back to back (default 2000)")
    parser.add_argument("--repeats", type=int, default=20, help="the same fault on one workload (default 20)")
    args = parser.parse_args()
    asyncio.run(main(args.alerts, args.burst, args.repeats))
