"""Latency of the healer: `alert.fired` published -> the remediation applied in the cluster, p50/p99.

The healer runs in this process through its real wiring (`opsbus.healer.service.setup` in a `Runtime`) against a
private nats-server (JetStream) and a private PostgreSQL, and the sandbox apiserver (or any cluster in
`--kubeconfig`). The action is `delete_pod` (grace 0) on bare pods in a namespace of the bench's own; "applied"
is the moment a watch on that namespace sees the pod DELETED.

Baseline, measured in the same run on the same cluster and the same watch: the bench deletes a pod itself
(the same call the healer makes, with its uid precondition) the moment it would have published an alert. The
ratio healer / baseline is what opsbus adds on top of the apiserver round trip: the publish, the consumer, the
alert-state and recovery rows, the cluster snapshot, planning with every guard under the planning lock, the
started-attempt commit with its outbox rows, then the write.

By default the loop is closed: the next alert (or baseline delete) goes out once the previous one is applied, so
the figures are latency, not queueing; `--interval S` sends at a fixed rate instead (a load test). The
cluster-wide rate limit is raised for the run (`rate_limit_actions`), as the bench is 100+ remediations in a
minute by design.

    eval "$(bash deploy/sandbox/sandbox.sh env)"
    uv run --all-packages python bench/healer_latency.py --alerts 100 [--interval 0] [--kubeconfig PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch
from prometheus_client import CollectorRegistry

from opsbus.common.bus import Bus
from opsbus.common.events import Envelope, ObjectRef
from opsbus.common.events.payloads import AlertAnnotations, AlertFired, AlertSource, Severity
from opsbus.common.runtime import Runtime
from opsbus.common.settings import DatabaseSettings, NatsSettings
from opsbus.common.store import upgrade
from opsbus.common.testing.servers import nats_server, postgres_server
from opsbus.healer.settings import HealerSettings
from opsbus.healer.store import MIGRATIONS, SCHEMA

CLUSTER = "sandbox"
POLICY = """
policies:
  - name: bench
    match: {alertname: BenchPodBroken}
    ladder:
      - {action: delete_pod, params: {grace_period_seconds: 0}, verify: pod_replaced, timeout: 30s}
"""


class Deletions:
    """A watch on the namespace recording when each pod is seen DELETED (monotonic clock)."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.core = client.CoreV1Api(api)
        self.namespace = namespace
        self.seen: dict[str, float] = {}
        self.wall: dict[str, float] = {}  # the same moments on the wall clock, to line up with database rows
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        listed: Any = self.core.list_namespaced_pod(self.namespace)
        rv = listed.metadata.resource_version
        while not self._stop.is_set():
            w = watch.Watch()  # type: ignore[no-untyped-call]
            events = w.stream(  # type: ignore[no-untyped-call]
                self.core.list_namespaced_pod, self.namespace, resource_version=rv, timeout_seconds=2
            )
            for ev in events:
                rv = ev["object"].metadata.resource_version
                if ev["type"] == "DELETED":
                    self.seen.setdefault(ev["object"].metadata.name, time.monotonic())
                    self.wall.setdefault(ev["object"].metadata.name, time.time())
                if self._stop.is_set():
                    w.stop()  # type: ignore[no-untyped-call]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    async def wait(self, names: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while any(n not in self.seen for n in names):
            if time.monotonic() > deadline:
                missing = [n for n in names if n not in self.seen]
                raise SystemExit(f"{len(missing)} pods never deleted, e.g. {missing[:3]}")
            await asyncio.sleep(0.1)


def create_pods(core: client.CoreV1Api, namespace: str, prefix: str, count: int) -> dict[str, str]:
    uids: dict[str, str] = {}
    for i in range(count):
        name = f"{prefix}-{i}"
        body = client.V1Pod(
            metadata=client.V1ObjectMeta(name=name, labels={"bench": prefix}),
            spec=client.V1PodSpec(containers=[client.V1Container(name="app", image="registry.example/app:1")]),
        )
        created: Any = core.create_namespaced_pod(namespace, body)
        uids[name] = str(created.metadata.uid)
    return uids


def wait_for_service_account(core: client.CoreV1Api, namespace: str) -> None:
    while not core.list_namespaced_service_account(namespace).items:
        time.sleep(0.2)


def wait_running(core: client.CoreV1Api, namespace: str, count: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while True:
        pods = core.list_namespaced_pod(namespace, field_selector="status.phase=Running").items
        if len(pods) >= count:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"only {len(pods)}/{count} bench pods Running after {timeout:.0f}s")
        time.sleep(1)


def alert_for(namespace: str, pod: str) -> Envelope:
    payload = AlertFired(
        fingerprint=uuid.uuid4().hex[:16],
        alertname="BenchPodBroken",
        severity=Severity.CRITICAL,
        labels={"alertname": "BenchPodBroken", "cluster": CLUSTER, "namespace": namespace, "pod": pod},
        annotations=AlertAnnotations(summary="bench"),
        starts_at=datetime.now(UTC) - timedelta(seconds=1),
        source=AlertSource.WATCHER,
    )
    return Envelope.build(
        payload, service="watcher", cluster=CLUSTER, obj=ObjectRef(kind="Pod", namespace=namespace, name=pod)
    )


async def pace(deletions: Deletions, name: str, sent: float, interval: float) -> None:
    """Closed loop (interval 0): wait for this one to be applied before the next; else a fixed rate."""
    if interval <= 0:
        await deletions.wait([name], 120)
    else:
        await asyncio.sleep(max(0.0, interval - (time.monotonic() - sent)))


async def breakdown(db_url: str, sent: dict[str, float], deleted: dict[str, float]) -> dict[str, list[float]]:
    """Where the time goes, per alert, from the healer's own rows: published -> alert row written (bus
    delivery), -> attempt committed as started (recovery row, lease, snapshot, planning), -> pod DELETED seen
    (the write and the watch)."""
    import asyncpg  # noqa: PLC0415

    url = db_url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "select a.target->>'name' as pod, al.updated_at as seen, a.started_at as started "
            "from healer.attempts a join healer.recoveries r on r.id = a.recovery_id "
            "join healer.alerts al on al.fingerprint = r.fingerprint"
        )
    finally:
        await conn.close()
    out: dict[str, list[float]] = {"delivered": [], "planned+started": [], "applied": []}
    for r in rows:
        pod, seen, started = r["pod"], r["seen"].timestamp(), r["started"].timestamp()
        if pod in sent and pod in deleted:
            out["delivered"].append(seen - sent[pod])
            out["planned+started"].append(started - seen)
            out["applied"].append(deleted[pod] - started)
    return out


def pct(xs: list[float], q: float) -> float:
    ordered = sorted(xs)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


async def run_healer(nats_url: str, db_url: str, kubeconfig: str, policy: Path) -> tuple[Runtime[Any], Any]:
    from opsbus.healer.service import setup  # noqa: PLC0415

    await upgrade(DatabaseSettings.model_validate({"url": db_url}), MIGRATIONS, SCHEMA)
    settings = HealerSettings.model_validate(
        {
            "cluster": CLUSTER,
            "nats": {"url": nats_url},
            "database": {"url": db_url},
            "http": {"port": 0},
            "shutdown_grace_seconds": 5,
            "healer": {"policy_file": str(policy), "kubeconfig": kubeconfig, "rate_limit_actions": 100_000},
        }
    )
    rt: Runtime[HealerSettings] = Runtime("healer", settings)

    async def wired(r: Runtime[HealerSettings]) -> None:
        await setup(r)

    task = asyncio.create_task(rt.run(wired, install_signals=False))
    while not rt._ready:  # the bench waits for the same readiness /readyz reports
        if task.done():
            await task
        await asyncio.sleep(0.05)
    return rt, task


async def main(alerts: int, interval: float, kubeconfig: str) -> None:
    api = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    core = client.CoreV1Api(api)
    namespace = f"bench-healer-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    try:
        # Pods are refused until the namespace's default service account exists.
        await asyncio.to_thread(wait_for_service_account, core, namespace)
        base_uids = create_pods(core, namespace, "base", alerts)
        heal_pods = list(create_pods(core, namespace, "heal", alerts))
        wait_running(core, namespace, 2 * alerts)
        deletions = Deletions(api, namespace)
        deletions.start()
        with nats_server() as nats, postgres_server() as pg, tempfile.TemporaryDirectory() as tmp:
            policy = Path(tmp) / "policy.yaml"
            policy.write_text(POLICY)
            rt, task = await run_healer(nats.url, pg.url(), kubeconfig, policy)
            bus = await Bus.connect(NatsSettings(url=nats.url), service="watcher", registry=CollectorRegistry())
            try:
                # Baseline: the same delete, straight from here.
                base_sent: dict[str, float] = {}
                for name, uid in base_uids.items():
                    base_sent[name] = time.monotonic()
                    body = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=uid), grace_period_seconds=0)
                    await asyncio.to_thread(core.delete_namespaced_pod, name, namespace, body=body)
                    await pace(deletions, name, base_sent[name], interval)
                await deletions.wait(list(base_uids), 60)
                # The healer: alert.fired -> ... -> the same delete.
                sent: dict[str, float] = {}
                sent_wall: dict[str, float] = {}
                for name in heal_pods:
                    event = alert_for(namespace, name)
                    sent[name] = time.monotonic()
                    sent_wall[name] = time.time()
                    await bus.publisher.publish(event)
                    await pace(deletions, name, sent[name], interval)
                await deletions.wait(heal_pods, 300)
                stages = await breakdown(pg.url(), sent_wall, deletions.wall)
            finally:
                await bus.close()
                rt.request_shutdown()
                await task
        deletions.stop()
    finally:
        core.delete_namespace(namespace, propagation_policy="Background")
        api.close()
    base = [deletions.seen[n] - t for n, t in base_sent.items()]
    healer = [deletions.seen[n] - t for n, t in sent.items()]
    b50, b99, h50, h99 = pct(base, 50), pct(base, 99), pct(healer, 50), pct(healer, 99)
    mode = "closed loop (next alert once the previous is applied)" if interval <= 0 else f"one every {interval:.2f}s"
    print(f"alerts: {alerts}, {mode}; apply = pod seen DELETED by a watch")
    print(f"baseline (direct delete)   p50 {b50 * 1000:7.1f} ms   p99 {b99 * 1000:7.1f} ms   1.00x")
    print(
        f"healer (alert.fired -> delete) p50 {h50 * 1000:7.1f} ms   p99 {h99 * 1000:7.1f} ms   "
        f"{h50 / b50:.2f}x / {h99 / b99:.2f}x; mean {statistics.fmean(healer) * 1000:.1f} ms"
    )
    for stage, xs in stages.items():
        if xs:
            print(f"  {stage:<16} p50 {pct(xs, 50) * 1000:7.1f} ms   p99 {pct(xs, 99) * 1000:7.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alerts", type=int, default=100, help="alerts (and baseline deletes); default 100")
    parser.add_argument(
        "--interval", type=float, default=0.0, help="seconds between alerts; 0 (default): closed loop, pure latency"
    )
    parser.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"), help="default: $KUBECONFIG")
    args = parser.parse_args()
    if not args.kubeconfig:
        parser.error('no kubeconfig: run eval "$(bash deploy/sandbox/sandbox.sh env)" or pass --kubeconfig')
    asyncio.run(main(args.alerts, args.interval, args.kubeconfig))
