"""Heal -> `alert.resolved`: how long an operator watches a fixed fault stay red, with the watcher's confirmation
bound (default 2 s) against the old fixed 30 s hysteresis, measured in the same run on the sandbox.

The shared sandbox is brought up if it is not (`sandbox.sh up`; taken down again only if this script started it);
everything happens in a namespace of its own, deleted at the end. A private nats-server carries the alerts. For each
configuration a real watcher (`opsbus.watcher.service.start`, as `python -m opsbus.watcher run` starts it) watches
the namespace; PODS running pods get the sandbox's image-pull fault at once, and once every alert has fired the fault
is switched off on all of them (a stable recovery: it does not come back). Each round takes pods no earlier round
of that configuration faulted, so no recovery is a flap of an earlier one (a flapping alert is held on purpose).
Per pod, to `alert.resolved` arriving on the bus, from (a) the heal (the label removal) and (b) the moment this
script's own pod watch first shows the pod Ready again, i.e. healthy as the apiserver reports it. (a) includes kwok's
1-4 s recovery-stage delay, the time a kubelet takes to report the restarted container; (b) is opsbus's own share.
ROUNDS rounds per configuration.

    uv run --all-packages python bench/watcher_resolution.py --pods 10 --rounds 3

Prints one JSON line per round and a summary table (median, p90, max) with the ratio to the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import nats
from kubernetes import client, config
from prometheus_client import CollectorRegistry

from opsbus.common.bus import Bus
from opsbus.common.settings import NatsSettings
from opsbus.common.testing.servers import nats_server
from opsbus.demo.seeding import deployment
from opsbus.watcher.service import start
from opsbus.watcher.settings import WatcherSettings
from opsbus.watcher.watching import KubeClient

REPO = Path(__file__).resolve().parents[1]
SANDBOX = REPO / "deploy" / "sandbox" / "sandbox.sh"
CLUSTER = "bench"
APP = "steady"
CONFIGS = {"baseline: 30 s hysteresis": 30.0, "confirmation bound 2 s (default)": 2.0}


def log(msg: str) -> None:
    print(f"[watcher_resolution {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def emit(**record: Any) -> None:
    print(json.dumps(record), flush=True)


def sandbox(*args: str, timeout: float) -> str:
    done = subprocess.run(["bash", str(SANDBOX), *args], capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"sandbox.sh {' '.join(args)} exited {done.returncode}: {done.stderr[-2000:]}")
    return done.stdout


class Round:
    """One round's clocks, per pod (time.monotonic())."""

    def __init__(self, pods: list[str]) -> None:
        self.pods = set(pods)
        self.fired: dict[str, float] = {}
        self.healed: dict[str, float] = {}
        self.ready: dict[str, float] = {}
        self.resolved: dict[str, float] = {}
        self.all_fired = asyncio.Event()
        self.all_resolved = asyncio.Event()

    def on_alert(self, verb: str, data: dict[str, Any]) -> None:
        pod = str((data.get("labels") or {}).get("pod"))
        if data.get("alertname") != "KubePodImagePullFailing" or pod not in self.pods:
            return
        now = time.monotonic()
        if verb == "fired":
            self.fired.setdefault(pod, now)
        elif pod in self.healed:
            self.resolved.setdefault(pod, now)
        if self.pods <= self.fired.keys():
            self.all_fired.set()
        if self.pods <= self.resolved.keys():
            self.all_resolved.set()


async def label(kube: KubeClient, namespace: str, pod: str, value: str | None) -> None:
    response = await kube.http.patch(
        f"/api/v1/namespaces/{namespace}/pods/{pod}",
        content=json.dumps({"metadata": {"labels": {"opsbus.io/chaos": value}}}),
        headers={"Content-Type": "application/merge-patch+json"},
    )
    response.raise_for_status()


async def watch_ready(kube: KubeClient, namespace: str, rv: str, current: list[Round]) -> None:
    """Stamp the first moment each healed pod shows Ready=True again."""
    params = {"watch": "true", "resourceVersion": rv, "timeoutSeconds": 3600}
    async with kube.watch(f"/api/v1/namespaces/{namespace}/pods", params, read_timeout=3630) as response:
        async for line in response.aiter_lines():
            obj = (json.loads(line) if line else {}).get("object") or {}
            name = (obj.get("metadata") or {}).get("name")
            ready = [c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"]
            if current and name in current[0].healed and ready and ready[0].get("status") == "True":
                current[0].ready.setdefault(name, time.monotonic())


async def run_round(kube: KubeClient, namespace: str, pods: list[str], current: list[Round]) -> Round:
    r = Round(pods)
    current[:] = [r]
    for pod in pods:
        await label(kube, namespace, pod, "imagepull")
    async with asyncio.timeout(120):
        await r.all_fired.wait()
    await asyncio.sleep(1.0)  # every alert is firing; the pods stay broken a moment longer
    for pod in pods:
        r.healed[pod] = time.monotonic()
        await label(kube, namespace, pod, None)
    async with asyncio.timeout(180):
        await r.all_resolved.wait()
    return r


async def measure(
    kubeconfig: str, nats_url: str, namespace: str, pods: list[str], resolve_after: float, rounds: int
) -> list[Round]:
    settings = WatcherSettings(
        cluster=CLUSTER,
        watcher={
            "kubeconfig": kubeconfig,
            "namespaces": [namespace],
            "log_timeout_seconds": 1.0,
            "restore_from_stream": False,
            "publish_cluster_events": False,
            "thresholds": {"resolve_after_seconds": resolve_after},
        },
    )
    bus = await Bus.connect(
        NatsSettings(url=nats_url), service="watcher", registry=CollectorRegistry(), shutdown_grace=5.0
    )
    await bus.ensure_streams()
    kube = KubeClient.from_config(kubeconfig)
    probe = KubeClient.from_config(kubeconfig)
    nc = await nats.connect(nats_url)
    current: list[Round] = []

    async def on_msg(msg: Any) -> None:
        if current:
            current[0].on_alert(msg.subject.split(".")[1], json.loads(msg.data).get("data") or {})

    sub = await nc.subscribe(f"alert.*.{CLUSTER}.{namespace}", cb=on_msg)
    watcher = await start(settings, bus, kube, CollectorRegistry())
    listed = await probe.get(f"/api/v1/namespaces/{namespace}/pods", {})
    watching = asyncio.create_task(watch_ready(probe, namespace, listed["metadata"]["resourceVersion"], current))
    done: list[Round] = []
    try:
        per_round = len(pods) // rounds
        for i in range(rounds):
            r = await run_round(probe, namespace, pods[i * per_round : (i + 1) * per_round], current)
            done.append(r)
            emit(resolve_after=resolve_after, round=i, **stats(r))
    finally:
        watching.cancel()
        await asyncio.gather(watching, return_exceptions=True)
        await watcher.stop()
        await sub.unsubscribe()
        await nc.close()
        await bus.close()
        for pod in pods:
            with contextlib.suppress(Exception):
                await label(probe, namespace, pod, None)
        await kube.close()
        await probe.close()
    return done


def from_heal(r: Round) -> list[float]:
    return [r.resolved[p] - r.healed[p] for p in r.pods if p in r.resolved]


def from_ready(r: Round) -> list[float]:
    return [r.resolved[p] - r.ready[p] for p in r.pods if p in r.resolved and p in r.ready]


def stats(r: Round) -> dict[str, Any]:
    return {
        "pods": len(r.pods),
        "resolved": len(r.resolved),
        "from_heal": summary(from_heal(r)),
        "from_ready": summary(from_ready(r)),
    }


def summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    return {
        "n": len(values),
        "median": round(statistics.median(ordered), 2),
        "p90": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], 2),
        "max": round(ordered[-1], 2),
    }


def main(args: argparse.Namespace) -> None:
    already_up = subprocess.run(["bash", str(SANDBOX), "status"], capture_output=True, check=False).returncode == 0
    kubeconfig = sandbox("up", timeout=300).strip().splitlines()[-1]
    api = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    namespace = f"bench-resolution-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    results: dict[str, list[Round]] = {}
    try:
        deadline = time.monotonic() + 120
        while not core.list_namespaced_service_account(namespace).items:
            assert time.monotonic() < deadline, "no default service account"
            time.sleep(0.5)
        total = args.pods * args.rounds
        apps.create_namespaced_deployment(namespace, deployment(APP, total, marker=("opsbus.io/bench", "true")))
        while True:
            running = [
                str(p.metadata.name)
                for p in core.list_namespaced_pod(namespace, label_selector=f"app={APP}").items
                if p.metadata is not None and p.status is not None and p.status.phase == "Running"
            ]
            if len(running) >= total:
                break
            assert time.monotonic() < deadline, f"only {len(running)} of {total} pods running"
            time.sleep(0.5)
        with nats_server() as server:
            for name, resolve_after in CONFIGS.items():
                log(f"{name}: {args.rounds} rounds of {args.pods} faults")
                results[name] = asyncio.run(
                    measure(kubeconfig, server.url, namespace, sorted(running), resolve_after, args.rounds)
                )
    finally:
        core.delete_namespace(namespace, propagation_policy="Background")
        api.close()
        if not already_up:
            sandbox("down", timeout=300)
    report(results)


def report(results: dict[str, list[Round]]) -> None:
    rows = {name: [v for r in rounds for v in from_heal(r)] for name, rounds in results.items()}
    ready = {name: [v for r in rounds for v in from_ready(r)] for name, rounds in results.items()}
    base = statistics.median(next(iter(rows.values())) or [float("nan")])
    print("\nheal -> alert.resolved (seconds)")
    print(f"{'configuration':36} {'n':>4} {'median':>7} {'p90':>6} {'max':>6}  {'from Ready':>10}  {'vs baseline':>11}")
    for name, values in rows.items():
        s, r = summary(values), summary(ready[name])
        ratio = s.get("median", float("nan")) / base if base else float("nan")
        print(
            f"{name:36} {s['n']:>4} {s.get('median', 0):>7.2f} {s.get('p90', 0):>6.2f} {s.get('max', 0):>6.2f}  "
            f"{r.get('median', 0):>10.2f}  {ratio:>10.3f}x"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=10, help="faults per round, one per pod, healed together")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per configuration, each on pods of its own")
    main(parser.parse_args())
