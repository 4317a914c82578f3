"""Where the pipeline's time goes in the notifier: per-stage timestamps and the kernel's scheduler counters.

The notifier runs alone as its own process (`opsbus.demo.stack`, no Jaeger, no cluster) with the routing of
`bench/pipeline.py` (one group per alert, `group_wait: 0s`, a local webhook). N `alert.fired` are published at
once; the run waits until the webhook received them all, then prints, per second since the first ingest, how
many alerts were routed (`alert_outcomes.routed_at`), queued by a flush (`notifications.created_at`) and
delivered (`notifications.finished_at`), the notifier's CPU per alert, and from `/proc/<pid>/schedstat` how long
its main thread was on a CPU, runnable but waiting for one, or asleep: a timer or a lock shows as sleep, a
machine short of CPU as run-queue wait.

    uv run --frozen --all-packages python -m bench.notifier_stages [--alerts 200]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import tempfile
import time
from pathlib import Path

import asyncpg
import nats

from bench.healer_intake import KUBECONFIG
from bench.pipeline import NOTIFIER, alert, usage
from opsbus.common.events import Envelope
from opsbus.demo.seeding import WebhookReceiver
from opsbus.demo.stack import Stack, StackOptions

STAGES = {
    "routed": "SELECT extract(epoch FROM routed_at) FROM notifier.alert_outcomes WHERE receiver = 'bench'",
    "queued": "SELECT extract(epoch FROM created_at) FROM notifier.notifications",
    "delivered": "SELECT extract(epoch FROM finished_at) FROM notifier.notifications WHERE finished_at IS NOT NULL",
}


def schedstat(pid: int) -> tuple[float, float]:
    """Seconds the process's main thread has spent on a CPU, and runnable waiting for one."""
    on_cpu, waiting, _ = (int(x) for x in Path(f"/proc/{pid}/schedstat").read_text().split())
    return on_cpu / 1e9, waiting / 1e9


async def publish_and_wait(url: str, receiver: WebhookReceiver, events: list[Envelope]) -> None:
    nc = await nats.connect(url)
    js = nc.jetstream()
    acks = [await js.publish_async(e.nats_subject(), e.to_json(), headers={"Nats-Msg-Id": e.id}) for e in events]
    await asyncio.gather(*acks)
    want = {e.id for e in events}
    deadline = time.monotonic() + 600
    while not want <= {a.get("eventId") or a.get("event_id") for b in receiver.received() for a in b.get("alerts", [])}:
        if time.monotonic() > deadline:
            raise TimeoutError("not every alert was delivered within 600 s")
        await asyncio.sleep(0.1)
    await nc.close()


async def stages(database_url: str) -> dict[str, list[float]]:
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        return {name: [float(r[0]) for r in await conn.fetch(query)] for name, query in STAGES.items()}
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=200)
    args = parser.parse_args()
    receiver = WebhookReceiver()
    receiver.start()
    with tempfile.TemporaryDirectory(prefix="opsbus-bench-") as tmp:
        routes, kubeconfig = Path(tmp) / "notifier.yaml", Path(tmp) / "kubeconfig"
        routes.write_text(NOTIFIER.format(url=receiver.url))
        kubeconfig.write_text(KUBECONFIG)  # unused: only the notifier runs
        stack = Stack(
            StackOptions(
                kubeconfig=kubeconfig,
                notifier_config=routes,
                namespaces=["bench-none"],
                services=("notifier",),
                jaeger=False,
                service_env={"notifier": {"OPSBUS_LOG_LEVEL": "WARNING"}},
            ),
            progress=lambda m: print(f"  {m}", flush=True),
        )
        stack.start()
        try:
            proc = stack.services["notifier"].proc
            assert proc is not None
            events = [alert(n, 10) for n in range(args.alerts)]
            cpu0, (on0, wait0), start = usage(proc.pid).cpu_seconds, schedstat(proc.pid), time.perf_counter()
            asyncio.run(publish_and_wait(stack.nats.url, receiver, events))
            took = time.perf_counter() - start
            cpu1, (on1, wait1) = usage(proc.pid).cpu_seconds, schedstat(proc.pid)
            times = asyncio.run(stages(stack.database_url))
        finally:
            stack.stop()
            receiver.stop()
    origin = min(times["routed"])
    print(f"\n{args.alerts} alerts delivered in {took:.1f} s ({args.alerts / took:.1f}/s)")
    print(f"notifier CPU {1000 * (cpu1 - cpu0) / args.alerts:.1f} ms per alert")
    on, wait = on1 - on0, wait1 - wait0
    print(f"main thread: on a CPU {on:.1f} s, runnable waiting for a CPU {wait:.1f} s, asleep {took - on - wait:.1f} s")
    print("per second since the first ingest (second:count):")
    for name, values in times.items():
        counts = collections.Counter(int(v - origin) for v in values)
        print(f"  {name:10s}", " ".join(f"{k}:{counts[k]}" for k in sorted(counts)))


if __name__ == "__main__":
    main()
