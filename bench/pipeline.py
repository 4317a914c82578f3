"""Sustained alert.fired -> recovery.planned -> notify.delivered events/s through the real services (healer and
notifier as separate processes, PostgreSQL and JetStream in the path), against the raw bus measured in the same run
on the same nats-server: publish N events and consume them with a plain nats-py pull consumer. Only the ratio means
something on a shared machine. Also prints each service's CPU seconds and resident memory, idle and under the load.

The healer runs a `notify_only` policy (it plans, records and publishes, and touches no cluster), the notifier routes
every alert to a local webhook receiver (one group per alert, no group_wait), so each fired alert costs: one healer
inbox claim + state + outbox transaction, recovery.planned/started/succeeded and audit events, one notifier group
transaction, one HTTP delivery and its notify.delivered event.

    uv run python bench/pipeline.py [--alerts 500] [--namespaces 10]

Needs the sandbox (the healer reads a kubeconfig at start): `make sandbox-up`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig

from opsbus.common.events import Envelope, ObjectRef
from opsbus.common.events.payloads import AlertAnnotations, AlertFired, AlertSource, Severity
from opsbus.demo.seeding import WebhookReceiver
from opsbus.demo.stack import Stack, StackOptions
from opsbus.demo.versions import repo_root

CLUSTER = "sandbox"
POLICY = """
policies:
  - name: bench
    match: {alertname: [BenchAlert]}
    cooldown: 0s
    max_attempts: 1000000
    ladder:
      - {action: notify_only, timeout: 1s}
"""
NOTIFIER = """
route:
  receiver: bench
  group_by: ['...']
  group_wait: 0s
  group_interval: 1h
  repeat_interval: 24h
  routes:
    - matchers: ['event_type!="alert"']
      receiver: drop
receivers:
  - name: bench
    webhook_configs:
      - url: {url}
  - name: drop
"""
PAGE = 4096


@dataclass
class Usage:
    cpu_seconds: float
    rss_mib: float


def usage(pid: int) -> Usage:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return Usage(cpu, rss_pages * PAGE / 2**20)


def snapshot(stack: Stack) -> dict[str, Usage]:
    return {name: usage(proc.proc.pid) for name, proc in stack.services.items() if proc.proc is not None}


def alert(n: int, namespaces: int) -> Envelope:
    ns = f"bench-{n % namespaces}"
    payload = AlertFired(
        fingerprint=uuid.uuid4().hex[:16],
        alertname="BenchAlert",
        severity=Severity.WARNING,
        labels={"alertname": "BenchAlert", "cluster": CLUSTER, "namespace": ns, "pod": f"p-{n}", "severity": "warning"},
        annotations=AlertAnnotations(summary=f"bench alert {n}"),
        starts_at=datetime.now(UTC) - timedelta(seconds=1),
        source=AlertSource.WATCHER,
    )
    return Envelope.build(
        payload, service="watcher", cluster=CLUSTER, obj=ObjectRef(kind="Pod", namespace=ns, name=f"p-{n}")
    )


async def raw_bus(url: str, events: list[Envelope]) -> float:
    """Events/s of a plain JetStream publish (pipelined) + pull-consume-ack of the same bytes on a scratch stream."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_stream(StreamConfig(name="RAWBENCH", subjects=["rawbench.>"]))
    bodies = [e.to_json() for e in events]
    start = time.perf_counter()
    acks = [
        await js.publish_async(f"rawbench.{i % 10}", body, headers={"Nats-Msg-Id": f"r{i}"})
        for i, body in enumerate(bodies)
    ]
    await asyncio.gather(*acks)
    sub = await js.pull_subscribe(
        "rawbench.>", durable="rawbench", config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT)
    )
    got = 0
    while got < len(bodies):
        for msg in await sub.fetch(256, timeout=5):
            Envelope.from_json(msg.data)
            await msg.ack()
            got += 1
    took = time.perf_counter() - start
    await js.delete_stream("RAWBENCH")
    await nc.close()
    return len(bodies) / took


async def pipeline(stack: Stack, receiver: WebhookReceiver, events: list[Envelope]) -> float:
    nc = await nats.connect(stack.nats.url)
    js = nc.jetstream()
    want = {e.id for e in events}
    start = time.perf_counter()
    acks = [await js.publish_async(e.nats_subject(), e.to_json(), headers={"Nats-Msg-Id": e.id}) for e in events]
    await asyncio.gather(*acks)
    delivered: set[str] = set()
    deadline = time.monotonic() + 600
    while not want <= delivered:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(want & delivered)}/{len(want)} alerts notified within 600 s")
        for body in receiver.received():
            for a in body.get("alerts", []):
                if a.get("eventId") in want or a.get("event_id") in want:
                    delivered.add(a.get("eventId") or a.get("event_id"))
        await asyncio.sleep(0.2)
    took = time.perf_counter() - start
    await nc.close()
    return len(events) / took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=500)
    parser.add_argument("--namespaces", type=int, default=10)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    args = parser.parse_args()
    sandbox = subprocess.run(
        ["bash", str(repo_root() / "deploy" / "sandbox" / "sandbox.sh"), "up"],
        capture_output=True,
        text=True,
        check=True,
    )
    kubeconfig = Path(sandbox.stdout.strip().splitlines()[-1])
    receiver = WebhookReceiver()
    receiver.start()
    with tempfile.TemporaryDirectory(prefix="opsbus-bench-") as tmp:
        policy, routes = Path(tmp) / "policy.yaml", Path(tmp) / "notifier.yaml"
        policy.write_text(POLICY)
        routes.write_text(NOTIFIER.format(url=receiver.url))
        stack = Stack(
            StackOptions(
                kubeconfig=kubeconfig,
                notifier_config=routes,
                namespaces=["bench-none"],
                healer_policy=policy,
                services=("healer", "notifier"),
                service_env={"healer": {"OPSBUS_HEALER__RATE_LIMIT_ACTIONS": "1000000"}},
            ),
            progress=lambda m: print(f"  {m}", flush=True),
        )
        stack.start()
        try:
            raw = asyncio.run(raw_bus(stack.nats.url, [alert(n, args.namespaces) for n in range(args.alerts)]))
            before_idle = snapshot(stack)
            time.sleep(args.idle_seconds)
            idle = snapshot(stack)
            events = [alert(n, args.namespaces) for n in range(args.alerts)]
            loaded_start = time.perf_counter()
            rate = asyncio.run(pipeline(stack, receiver, events))
            loaded_took = time.perf_counter() - loaded_start
            loaded = snapshot(stack)
        finally:
            stack.stop()
            receiver.stop()
    print(f"\n{args.alerts} alerts across {args.namespaces} namespaces")
    print(f"raw bus (publish + pull + ack):                         {raw:10.0f} events/s")
    print(f"pipeline alert.fired -> recovery -> notify.delivered:   {rate:10.1f} alerts/s")
    print(f"ratio pipeline / raw bus:                               {rate / raw:10.4f}")
    print("\nservice     idle CPU %   idle RSS MiB   loaded CPU %   loaded RSS MiB")
    for name in idle:
        idle_cpu = 100 * (idle[name].cpu_seconds - before_idle[name].cpu_seconds) / args.idle_seconds
        load_cpu = 100 * (loaded[name].cpu_seconds - idle[name].cpu_seconds) / loaded_took
        print(f"{name:10s} {idle_cpu:10.1f} {idle[name].rss_mib:14.1f} {load_cpu:14.1f} {loaded[name].rss_mib:16.1f}")


if __name__ == "__main__":
    main()
