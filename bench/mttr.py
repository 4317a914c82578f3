"""MTTR on a large cluster: fault injected -> remediation applied, p50/p99 over many faults spread across
namespaces, with the whole platform running as separate processes (watcher, healer, deployer, optimizer, notifier,
gateway; real nats-server with JetStream and PostgreSQL), and the CPU and memory of every service at idle and
during the incident wave.

The cluster: a sandbox scaled to NODES fake nodes and PODS background pods (`--sandbox-home` reuses one already
scaled, e.g. by `bench/watcher_scale.py`'s instructions; without it a disposable one is started, scaled and taken
down, ~25 minutes). On top, FAULTS Deployments of REPLICAS pods each, spread over NAMESPACES namespaces. The
watcher and the optimizer watch the whole cluster (every one of the 10,000+ pods), as they would in production.

The faults: one pod of each Deployment gets the sandbox's `opsbus.io/chaos=crashloop` label, one every INTERVAL
seconds. kwok then reports the pod crash-looping (CrashLoopBackOff, restartCount 1) after its simulated kubelet
delay of 2-7 s. The healer runs its shipped default policies (crashloop: delete the pod first), with one change:
its cluster-wide rate limit (10 actions / 5 min by default, a safety budget) is raised to FAULTS so that the wave is
not refused; the refusals themselves are covered by the healer's tests.

Measured per fault, by this script's own pod watch and bus subscription:
  shown    the apiserver first shows the pod in CrashLoopBackOff (what a kubelet reports when a container crashes)
  fired    alert.fired for the pod arrives on the bus
  applied  the pod's deletion is accepted by the apiserver (deletionTimestamp set): the remediation applied
  resolved alert.resolved for the pod (the replacement pod is healthy and the watcher resolved the alert)
MTTR here is shown -> applied (the target: p99 under 3 s); label -> applied adds kwok's simulated kubelet delay.
The comparison is the kubernetes-mixin path: KubePodCrashLooping has `for: 15m`, plus a scrape and rule evaluation
(~30 s) and Alertmanager's group_wait (30 s) before anything, human or robot, is even told: ~16 minutes.

    uv run --all-packages python bench/mttr.py --sandbox-home DIR [--faults 200] [--namespaces 10]

Linux only (CPU and RSS from /proc). Prints one JSON line per phase and a summary table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
from kubernetes import client, config

from bench.pipeline import Usage, snapshot
from bench.watcher_scale import ScaleSandbox
from opsbus.demo.seeding import WebhookReceiver, deployment, write_notifier_config
from opsbus.demo.stack import SERVICES, Stack, StackOptions
from opsbus.watcher.watching import KubeClient

PREFIX = "mttr"
LABEL = "opsbus.io/bench"
MIXIN_SECONDS = 15 * 60 + 30 + 30  # for: 15m + scrape/evaluation + Alertmanager group_wait


def log(msg: str) -> None:
    print(f"[mttr {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def emit(**record: Any) -> None:
    print(json.dumps(record), flush=True)


# --- the workloads -------------------------------------------------------------------------------------------


def create_workloads(kubeconfig: Path, namespaces: int, faults: int, replicas: int) -> list[tuple[str, str]]:
    """FAULTS Deployments round-robin over the namespaces, created (or replaced); returns (namespace, name)."""
    api = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    try:
        existing = {ns.metadata.name for ns in core.list_namespace().items if ns.metadata}
        names = [f"{PREFIX}-{i}" for i in range(namespaces)]
        for ns in names:
            if ns not in existing:
                core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns, labels={LABEL: PREFIX})))
        workloads = [(names[i % namespaces], f"app-{i // namespaces}") for i in range(faults)]
        for ns, name in workloads:
            try:
                apps.create_namespaced_deployment(ns, deployment(name, replicas, (LABEL, PREFIX)))
            except client.ApiException as exc:
                if exc.status != 409:
                    raise
                apps.replace_namespaced_deployment(name, ns, deployment(name, replicas, (LABEL, PREFIX)))
        return workloads
    finally:
        api.close()


def delete_namespaces(kubeconfig: Path, namespaces: int) -> None:
    api = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    try:
        for i in range(namespaces):
            with contextlib.suppress(client.ApiException):
                client.CoreV1Api(api).delete_namespace(f"{PREFIX}-{i}", propagation_policy="Background")
    finally:
        api.close()


async def wait_available(kube: KubeClient, workloads: list[tuple[str, str]], replicas: int, timeout: float) -> None:
    want = set(workloads)
    deadline = time.monotonic() + timeout
    while True:
        page = await kube.get("/apis/apps/v1/deployments", {"labelSelector": f"{LABEL}={PREFIX}"})
        ready = {
            (d["metadata"]["namespace"], d["metadata"]["name"])
            for d in page.get("items") or []
            if (d.get("status") or {}).get("availableReplicas") == replicas
            and (d.get("status") or {}).get("updatedReplicas") == replicas
            and (d.get("status") or {}).get("replicas") == replicas
        }
        if want <= ready:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(want & ready)}/{len(want)} bench Deployments available after {timeout}s")
        log(f"      {len(want & ready)}/{len(want)} bench Deployments available")
        await asyncio.sleep(3)


# --- what each service costs ---------------------------------------------------------------------------------


def cpu_percent(before: dict[str, Usage], after: dict[str, Usage], seconds: float) -> dict[str, float]:
    return {n: round(100 * (after[n].cpu_seconds - before[n].cpu_seconds) / seconds, 1) for n in after}


# --- the wave ------------------------------------------------------------------------------------------------


@dataclass
class Fault:
    namespace: str
    pod: str
    labelled: float = math.nan
    shown: float = math.nan
    fired: float = math.nan
    applied: float = math.nan
    resolved: float = math.nan


@dataclass
class Wave:
    faults: dict[tuple[str, str], Fault] = field(default_factory=dict)
    done: asyncio.Event = field(default_factory=asyncio.Event)  # every fault's remediation applied
    resolved: asyncio.Event = field(default_factory=asyncio.Event)  # and every remediated fault's alert resolved

    def check(self) -> None:
        if self.faults and all(not math.isnan(f.applied) for f in self.faults.values()):
            self.done.set()
        if self.done.is_set() and all(not math.isnan(f.resolved) for f in self.faults.values()):
            self.resolved.set()


async def watch_pods(kube: KubeClient, rv: str, wave: Wave) -> None:
    params = {"watch": "true", "labelSelector": f"{LABEL}={PREFIX}", "resourceVersion": rv, "timeoutSeconds": 1800}
    async with kube.watch("/api/v1/pods", params, read_timeout=1830) as response:
        async for line in response.aiter_lines():
            if not line:
                continue
            now = time.monotonic()
            obj = (json.loads(line).get("object")) or {}
            meta = obj.get("metadata") or {}
            fault = wave.faults.get((str(meta.get("namespace")), str(meta.get("name"))))
            if fault is None:
                continue
            for cs in (obj.get("status") or {}).get("containerStatuses") or []:
                if ((cs.get("state") or {}).get("waiting") or {}).get("reason") == "CrashLoopBackOff":
                    fault.shown = now if math.isnan(fault.shown) else fault.shown
            if meta.get("deletionTimestamp") and math.isnan(fault.applied):
                fault.applied = now
                wave.check()


async def run_wave(kube: KubeClient, nats_url: str, targets: list[tuple[str, str]], interval: float) -> Wave:
    wave = Wave()
    nc = await nats.connect(nats_url)

    async def on_alert(msg: Any) -> None:
        env = json.loads(msg.data)
        data = env.get("data") or {}
        if data.get("alertname") != "KubePodCrashLooping":
            return
        kind, _, rest = str(env.get("subject")).partition("/")  # CloudEvents subject: Pod/<namespace>/<name>
        namespace, _, name = rest.partition("/")
        fault = wave.faults.get((namespace, name)) if kind == "Pod" else None
        if fault is None:
            return
        if msg.subject.startswith("alert.fired."):
            fault.fired = time.monotonic() if math.isnan(fault.fired) else fault.fired
        elif math.isnan(fault.resolved):
            fault.resolved = time.monotonic()
            wave.check()

    subs = [await nc.subscribe(f"alert.{kind}.>", cb=on_alert) for kind in ("fired", "resolved")]
    pods = await kube.get("/api/v1/pods", {"labelSelector": f"{LABEL}={PREFIX}"})
    by_app: dict[tuple[str, str], str] = {}
    for pod in sorted(pods.get("items") or [], key=lambda p: p["metadata"]["name"]):
        meta = pod["metadata"]
        if not meta.get("deletionTimestamp"):
            by_app.setdefault((meta["namespace"], meta["labels"]["app"]), meta["name"])
    missing = [t for t in targets if t not in by_app]
    if missing:
        raise RuntimeError(f"{len(missing)} bench Deployments have no pod, e.g. {missing[0]}")
    for ns, app in targets:
        wave.faults[(ns, by_app[(ns, app)])] = Fault(ns, by_app[(ns, app)])
    watching = asyncio.create_task(watch_pods(kube, str(pods["metadata"]["resourceVersion"]), wave))
    try:
        for n, fault in enumerate(wave.faults.values(), 1):
            response = await kube.http.patch(
                f"/api/v1/namespaces/{fault.namespace}/pods/{fault.pod}",
                content=json.dumps({"metadata": {"labels": {"opsbus.io/chaos": "crashloop"}}}),
                headers={"Content-Type": "application/merge-patch+json"},
            )
            response.raise_for_status()
            fault.labelled = time.monotonic()
            if n % 50 == 0:
                applied = sum(not math.isnan(f.applied) for f in wave.faults.values())
                log(f"      {n}/{len(wave.faults)} faults injected, {applied} remediations applied")
            await asyncio.sleep(interval)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(180):
                await wave.done.wait()
        # the resolves come after the replacement pods are ready and the watcher's hysteresis
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(120):
                await wave.resolved.wait()
    finally:
        watching.cancel()
        await asyncio.gather(watching, return_exceptions=True)
        for sub in subs:
            await sub.unsubscribe()
        await nc.close()
    return wave


def summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]
    return {
        "n": len(ordered),
        "p50": round(statistics.median(ordered), 3),
        "p99": round(p99, 3),
        "max": round(ordered[-1], 3),
    }


def spans(wave: Wave) -> dict[str, dict[str, float]]:
    faults = list(wave.faults.values())

    def between(a: str, b: str) -> list[float]:
        out = []
        for f in faults:
            x, y = getattr(f, a), getattr(f, b)
            if not (math.isnan(x) or math.isnan(y)):
                out.append(y - x)
        return out

    return {
        "shown_to_applied": summary(between("shown", "applied")),
        "labelled_to_applied": summary(between("labelled", "applied")),
        "shown_to_fired": summary(between("shown", "fired")),
        "fired_to_applied": summary(between("fired", "applied")),
        "shown_to_resolved": summary(between("shown", "resolved")),
    }


# --- the run -------------------------------------------------------------------------------------------------


async def prepare(kubeconfig: Path, workloads: list[tuple[str, str]], replicas: int) -> None:
    kube = KubeClient.from_config(str(kubeconfig))
    try:
        await wait_available(kube, workloads, replicas, timeout=900)
    finally:
        await kube.close()


async def wave_on(kubeconfig: Path, nats_url: str, workloads: list[tuple[str, str]], interval: float) -> Wave:
    kube = KubeClient.from_config(str(kubeconfig))
    try:
        return await run_wave(kube, nats_url, workloads, interval)
    finally:
        await kube.close()


def main(args: argparse.Namespace) -> None:
    home = Path(args.sandbox_home).resolve() if args.sandbox_home else None
    box_ = ScaleSandbox(args.nodes, args.pods, args.scale_timeout, home)
    receiver = WebhookReceiver()
    receiver.start()
    with box_.running() as box, tempfile.TemporaryDirectory(prefix="opsbus-mttr-") as tmp:
        log(f"creating {args.faults} Deployments x {args.replicas} pods over {args.namespaces} namespaces")
        workloads = create_workloads(box.kubeconfig, args.namespaces, args.faults, args.replicas)
        try:
            asyncio.run(prepare(box.kubeconfig, workloads, args.replicas))
            stack = Stack(
                StackOptions(
                    kubeconfig=box.kubeconfig,
                    notifier_config=write_notifier_config(Path(tmp) / "notifier.yaml", receiver.url),
                    namespaces=[],  # the watcher and the optimizer watch the whole cluster
                    services=SERVICES,
                    jaeger=False,
                    service_env={"healer": {"OPSBUS_HEALER__RATE_LIMIT_ACTIONS": str(max(args.faults, 10))}},
                    workdir=Path(args.workdir).resolve() if args.workdir else None,
                ),
                progress=lambda m: log(f"  {m}"),
            )
            started = time.monotonic()
            stack.start()
            log(f"platform up and ready in {time.monotonic() - started:.0f}s")
            emit(phase="start", seconds=round(time.monotonic() - started, 1))
            try:
                time.sleep(args.settle_seconds)  # the first rescans and the optimizer's first pass
                idle_before, t0 = snapshot(stack), time.monotonic()
                time.sleep(args.idle_seconds)
                idle_after, idle_took = snapshot(stack), time.monotonic() - t0
                wave_start, t1 = snapshot(stack), time.monotonic()
                wave = asyncio.run(wave_on(box.kubeconfig, stack.nats.url, workloads, args.interval))
                wave_end, wave_took = snapshot(stack), time.monotonic() - t1
            finally:
                stack.stop()
        finally:
            delete_namespaces(box.kubeconfig, args.namespaces)
    receiver.stop()
    idle_cpu, wave_cpu = cpu_percent(idle_before, idle_after, idle_took), cpu_percent(wave_start, wave_end, wave_took)
    result = spans(wave)
    applied = sum(not math.isnan(f.applied) for f in wave.faults.values())
    emit(phase="wave", faults=len(wave.faults), applied=applied, seconds=round(wave_took, 1), **result)
    emit(
        phase="cost",
        idle_cpu_percent=idle_cpu,
        wave_cpu_percent=wave_cpu,
        idle_rss_mib={n: round(u.rss_mib) for n, u in idle_after.items()},
        wave_rss_mib={n: round(u.rss_mib) for n, u in wave_end.items()},
    )
    report(args, wave, result, applied, (idle_cpu, wave_cpu, idle_after, wave_end), wave_took)


def report(
    args: argparse.Namespace,
    wave: Wave,
    result: dict[str, dict[str, float]],
    applied: int,
    cost: tuple[dict[str, float], dict[str, float], dict[str, Usage], dict[str, Usage]],
    wave_took: float,
) -> None:
    print(
        f"\n{len(wave.faults)} crash-loop faults over {args.namespaces} namespaces, one every {args.interval}s, "
        f"on {args.nodes} nodes / {args.pods}+ pods; {applied} remediations applied"
    )
    print(f"{'':36}{'n':>6}{'p50 s':>10}{'p99 s':>10}{'max s':>10}")
    rows = (
        ("MTTR: shown -> applied", "shown_to_applied"),
        ("  chaos label -> applied", "labelled_to_applied"),
        ("  shown -> alert.fired", "shown_to_fired"),
        ("  alert.fired -> applied", "fired_to_applied"),
        ("  shown -> alert.resolved", "shown_to_resolved"),
    )
    for title, key in rows:
        s = result.get(key) or {}
        print(f"{title:36}{s.get('n', 0):>6}{s.get('p50', '-'):>10}{s.get('p99', '-'):>10}{s.get('max', '-'):>10}")
    p99 = (result.get("shown_to_applied") or {}).get("p99")
    if p99:
        print(
            f"kubernetes-mixin path before anyone is told: ~{MIXIN_SECONDS} s; "
            f"opsbus p99 / mixin = {p99 / MIXIN_SECONDS:.4f}"
        )
    idle_cpu, wave_cpu, idle, loaded = cost
    print(f"\nservice       idle CPU %  idle RSS MiB   wave CPU %  wave RSS MiB   (wave {wave_took:.0f} s)")
    for name in idle:
        print(
            f"{name:12}{idle_cpu[name]:>12}{idle[name].rss_mib:>14.0f}{wave_cpu[name]:>13}{loaded[name].rss_mib:>14.0f}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sandbox-home", help="reuse the scaled sandbox whose OPSBUS_SANDBOX_HOME is this directory")
    parser.add_argument("--nodes", type=int, default=1000, help="fake nodes (checked when reusing)")
    parser.add_argument("--pods", type=int, default=10000, help="background pods (checked when reusing)")
    parser.add_argument("--faults", type=int, default=200, help="crash-loop faults, one Deployment each")
    parser.add_argument("--namespaces", type=int, default=10, help="namespaces the faulted Deployments spread over")
    parser.add_argument("--replicas", type=int, default=3, help="pods per faulted Deployment (one of them faults)")
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between two injections")
    parser.add_argument("--idle-seconds", type=float, default=30, help="how long the idle cost is measured")
    parser.add_argument("--settle-seconds", type=float, default=15, help="wait after start before measuring idle")
    parser.add_argument("--workdir", help="keep the services' logs (<service>.log) and data here")
    parser.add_argument("--scale-timeout", type=float, default=2400, help="bound on scaling a disposable sandbox")
    main(parser.parse_args())
