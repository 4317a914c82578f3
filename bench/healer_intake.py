"""The healer's intake under a storm: alerts/s and CPU milliseconds per alert on its cheap paths, against the raw
bus measured in the same run on the same nats-server.

The healer runs as its own process (`opsbus.demo.stack`, as `make demo` does, no Jaeger) on a private nats-server
and PostgreSQL. N `alert.fired` are published at once for each path, and the run waits for the audit entry each
alert must end in (read from the bus, where the outbox relay publishes them):

- `unmatched`: no policy matches -> `recovery.match` skipped (dedupe, state, audit, no recovery);
- `stale`: a matching alert older than the freshness bound -> a recovery that plans and does nothing
  (`recovery.plan`, guard `freshness`): the no-op path through the ladder;
- `deferred`: a matching alert inside a freeze window -> a deferral with its due time (`recovery.defer`):
  the path every alert of a rate-limited or frozen storm takes.

The target of the deferred path is a StatefulSet (its snapshot needs no apiserver read), so no cluster is needed:
what is measured is the healer's own work (bus, PostgreSQL, planning, outbox), not the apiserver's. CPU is the
healer process's user+system time from `/proc` over the window, less its idle rate measured just before.

    uv run --frozen --all-packages python -m bench.healer_intake [--alerts 1000] [--profile DIR]

`--profile DIR` also records the healer with py-spy during each path (`DIR/<path>.txt`, py-spy's collapsed
stacks) when py-spy may attach to the process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats
from nats.aio.msg import Msg

from bench.pipeline import raw_bus, usage
from opsbus.common.events import Envelope, ObjectRef
from opsbus.common.events.payloads import AlertAnnotations, AlertFired, AlertSource, Severity, WorkloadRef
from opsbus.demo.stack import Stack, StackOptions

CLUSTER = "sandbox"
POLICY = """
policies:
  - name: bench
    match: {alertname: [BenchStale, BenchDeferred]}
    cooldown: 0s
    max_attempts: 1000000
    ladder:
      - {action: notify_only, timeout: 1s}
"""
FREEZE = json.dumps([{"name": "bench", "start": "2000-01-01T00:00:00Z", "end": "2100-01-01T00:00:00Z"}])
# Nothing listens there: the healer needs a kubeconfig to start, and these paths never call the apiserver.
KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: none, user: {token: none}}]
contexts: [{name: none, context: {cluster: none, user: none}}]
current-context: none
"""
PATHS = {"unmatched": "recovery.match", "stale": "recovery.plan", "deferred": "recovery.defer"}


@dataclass
class Result:
    path: str
    alerts: int
    seconds: float
    cpu_ms_per_alert: float

    @property
    def rate(self) -> float:
        return self.alerts / self.seconds


def alert(path: str, n: int, run: str) -> Envelope:
    ns = f"bench-{n % 10}"
    name = {"unmatched": "BenchUnmatched", "stale": "BenchStale", "deferred": "BenchDeferred"}[path]
    workload = WorkloadRef(kind="StatefulSet", name=f"{run}-{path}-{n}", namespace=ns)
    payload = AlertFired(
        fingerprint=uuid.uuid4().hex[:16],
        alertname=name,
        severity=Severity.WARNING,
        labels={"alertname": name, "cluster": CLUSTER, "namespace": ns, "severity": "warning"},
        annotations=AlertAnnotations(summary=f"bench alert {n}"),
        starts_at=datetime.now(UTC) - timedelta(seconds=1),
        source=AlertSource.WATCHER,
        workload=workload,
    )
    event = Envelope.build(
        payload, service="watcher", cluster=CLUSTER, obj=ObjectRef(kind="StatefulSet", namespace=ns, name=workload.name)
    )
    if path == "stale":  # published now, but about a fault seen an hour ago: beyond the 900 s freshness bound
        event = event.model_copy(update={"time": datetime.now(UTC) - timedelta(hours=1)})
    return event


async def run_path(stack: Stack, path: str, events: list[Envelope], pid: int) -> tuple[float, float]:
    """Publish the events, wait for each one's audit entry; (seconds, healer CPU seconds) over that window."""
    nc = await nats.connect(stack.nats.url)
    want = {e.id for e in events}
    done: set[str] = set()
    finished = asyncio.Event()

    async def on_audit(msg: Msg) -> None:
        body = json.loads(msg.data)
        data = body.get("data", {})
        if data.get("action") == PATHS[path] and body.get("causationid") in want:
            done.add(body["causationid"])
            if len(done) == len(want):
                finished.set()

    sub = await nc.subscribe("audit.>", cb=on_audit)
    js = nc.jetstream()
    cpu0, start = usage(pid).cpu_seconds, time.perf_counter()
    acks = [await js.publish_async(e.nats_subject(), e.to_json(), headers={"Nats-Msg-Id": e.id}) for e in events]
    await asyncio.gather(*acks)
    try:
        await asyncio.wait_for(finished.wait(), timeout=600)
    except TimeoutError:
        raise TimeoutError(f"{path}: only {len(done)}/{len(want)} alerts reached {PATHS[path]}") from None
    took, cpu = time.perf_counter() - start, usage(pid).cpu_seconds - cpu0
    await sub.unsubscribe()
    await nc.close()
    return took, cpu


def profiler(pid: int, out: Path) -> subprocess.Popen[bytes] | None:
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        return None
    return subprocess.Popen(
        [
            py_spy,
            "record",
            "--pid",
            str(pid),
            "--format",
            "raw",
            "--rate",
            "200",
            "--output",
            str(out),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=1000)
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    parser.add_argument("--paths", default=",".join(PATHS))
    parser.add_argument("--profile", type=Path, default=None)
    args = parser.parse_args()
    paths = args.paths.split(",")
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="opsbus-bench-") as tmp:
        policy, kubeconfig = Path(tmp) / "policy.yaml", Path(tmp) / "kubeconfig"
        policy.write_text(POLICY)
        kubeconfig.write_text(KUBECONFIG)
        stack = Stack(
            StackOptions(
                kubeconfig=kubeconfig,
                notifier_config=policy,  # unused: no notifier runs
                namespaces=["bench-none"],
                healer_policy=policy,
                services=("healer",),
                jaeger=False,
                service_env={"healer": {"OPSBUS_HEALER__FREEZE_WINDOWS": FREEZE, "OPSBUS_LOG_LEVEL": "WARNING"}},
            ),
            progress=lambda m: print(f"  {m}", flush=True),
        )
        stack.start()
        try:
            proc = stack.services["healer"].proc
            assert proc is not None
            pid = proc.pid
            run = uuid.uuid4().hex[:6]
            raw = asyncio.run(raw_bus(stack.nats.url, [alert("deferred", n, run) for n in range(args.alerts)]))
            asyncio.run(run_path(stack, "unmatched", [alert("unmatched", n, "warm") for n in range(50)], pid))
            for path in paths:
                idle0 = usage(pid).cpu_seconds
                time.sleep(args.idle_seconds)
                idle_rate = (usage(pid).cpu_seconds - idle0) / args.idle_seconds
                spy = profiler(pid, args.profile / f"{path}.txt") if args.profile else None
                events = [alert(path, n, run) for n in range(args.alerts)]
                took, cpu = asyncio.run(run_path(stack, path, events, pid))
                if spy is not None:
                    spy.send_signal(signal.SIGINT)  # py-spy writes its file when interrupted
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        spy.wait(10)
                busy = max(cpu - idle_rate * took, 0.0)
                results.append(Result(path, args.alerts, took, 1000 * busy / args.alerts))
        finally:
            stack.stop()
    print(f"\nraw bus (publish + pull + ack), same nats-server:  {raw:10.0f} events/s")
    print("path        alerts/s   ratio to raw bus   healer CPU ms/alert")
    for r in results:
        print(f"{r.path:10s} {r.rate:9.1f} {r.rate / raw:18.4f} {r.cpu_ms_per_alert:21.2f}")


if __name__ == "__main__":
    main()
