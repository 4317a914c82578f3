"""The watcher on a large cluster: initial sync time, resident memory, watch events processed per second against the
official kubernetes client (and a raw httpx stream) in the same run, and detection latency over many faults.

Starts a SEPARATE, disposable sandbox (its own OPSBUS_SANDBOX_HOME under the temp dir, its own cluster name; kwokctl
picks free ports), scales it (`sandbox.sh scale NODES PODS`), measures, and takes it down again, also on failure or
Ctrl-C; every step has a time bound. The shared sandbox is never touched. A private nats-server carries the alerts.

Measured, each consumer in its own process so resident memory is its own:
- sync: list every resource the watcher watches (pods, nodes, deployments, replicasets, statefulsets, daemonsets,
  jobs, events), cluster-wide, 500 a page, into a cache: the watcher's informers vs the official client's
  `list_*_for_all_namespaces` keeping the objects it returns (what an informer built on it holds). RSS after.
- rate: one pod watch from resourceVersion 0, which the apiserver answers from its watch cache with an ADDED event
  for every pod as fast as the client reads: events per second until all are in. The watcher's path twice: whole
  (parse, strip, cache, change -> `cluster.event` built and published on the bus) and informer only (publishing
  off, what the baselines do); the baselines are the official client's `watch.Watch().stream` (objects
  deserialized into V1Pod) and httpx + json.loads (nothing kept).
- detection latency: FAULTS running pods get the sandbox's image-pull chaos label, one every FAULT_INTERVAL
  seconds; for each, from (a) the label patch and (b) the moment this script's own pod watch first shows the pod
  waiting in ErrImagePull (the apiserver shows the status), to (c) `alert.fired` arriving on the bus. (a) includes
  kwok's 1.5-5.5 s stage delay, i.e. how long a kubelet takes to report; (b) is the watcher's own latency.

    uv run --all-packages python bench/watcher_scale.py --nodes 1000 --pods 10000 --faults 100

Linux only (RSS from /proc). Prints one JSON line per measurement and a summary table with the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SANDBOX = REPO / "deploy" / "sandbox" / "sandbox.sh"
NAMESPACE = "opsbus-scale"
CLUSTER = "bench"
PULL_REASONS = {"ErrImagePull", "ImagePullBackOff"}


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def emit(**record: Any) -> None:
    print(json.dumps(record), flush=True)


def log(msg: str) -> None:
    print(f"[watcher_scale {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- the disposable sandbox ---------------------------------------------------------------------------------


class ScaleSandbox:
    """A sandbox of its own in a temp dir: up, scale, down (always), each bounded.

    With `home` (an already scaled sandbox's OPSBUS_SANDBOX_HOME, see `--sandbox-home`) nothing is started or
    taken down: the sandbox is checked for the node and pod counts and used as it is, so several benchmarks can
    share one 25-minute scale-up."""

    def __init__(self, nodes: int, pods: int, scale_timeout: float, home: Path | None = None) -> None:
        self.nodes, self.pods, self.scale_timeout = nodes, pods, scale_timeout
        self.reused = home is not None
        self.home = home or Path(tempfile.mkdtemp(prefix="opsbus-watcher-scale-"))
        self.env = {k: v for k, v in os.environ.items() if k not in {"OPSBUS_KUBECONFIG", "KUBECONFIG"}}
        self.env |= {"OPSBUS_SANDBOX_HOME": str(self.home), "OPSBUS_SANDBOX_NAME": "opsbus-bench"}
        self.kubeconfig = self.home / "kubeconfig"

    def run(self, *args: str, timeout: float) -> str:
        proc = subprocess.Popen(
            ["bash", str(SANDBOX), *args], env=self.env, stdout=subprocess.PIPE, text=True, start_new_session=True
        )
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise RuntimeError(f"sandbox.sh {' '.join(args)} did not finish within {timeout:.0f}s") from None
        if proc.returncode != 0:
            raise RuntimeError(f"sandbox.sh {' '.join(args)} exited {proc.returncode}")
        return out

    def check_scaled(self) -> None:
        """The reused sandbox has at least the nodes and Running pods asked for (else: how to scale it)."""
        if not self.kubeconfig.is_file():
            raise RuntimeError(f"no sandbox at {self.home}: no kubeconfig there")
        from kubernetes import client, config  # noqa: PLC0415 - only when reusing

        api = config.new_client_from_config(config_file=str(self.kubeconfig))  # type: ignore[no-untyped-call]
        try:
            core = client.CoreV1Api(api)
            nodes = len(core.list_node().items)
            pods = len(core.list_namespaced_pod(NAMESPACE, field_selector="status.phase=Running").items)
        finally:
            api.close()
        if nodes < self.nodes or pods < self.pods:
            raise RuntimeError(
                f"the sandbox at {self.home} has {nodes} nodes and {pods} Running pods in {NAMESPACE}; "
                f"{self.nodes}/{self.pods} asked. Scale it first: OPSBUS_SANDBOX_HOME={self.home} "
                f"OPSBUS_SANDBOX_NAME=opsbus-bench bash deploy/sandbox/sandbox.sh scale {self.nodes} {self.pods} "
                f"{NAMESPACE}"
            )
        log(f"reusing the sandbox at {self.home}: {nodes} nodes, {pods} Running pods in {NAMESPACE}")

    @contextlib.contextmanager
    def running(self) -> Iterator[ScaleSandbox]:
        if self.reused:
            self.check_scaled()
            yield self
            return
        try:
            started = time.monotonic()
            self.run("up", timeout=300)
            log(f"disposable sandbox up in {time.monotonic() - started:.0f}s ({self.home})")
            started = time.monotonic()
            self.run("scale", str(self.nodes), str(self.pods), NAMESPACE, timeout=self.scale_timeout)
            took = time.monotonic() - started
            log(f"scaled to {self.nodes} nodes / {self.pods} pods in {took:.0f}s")
            emit(measure="scale", nodes=self.nodes, pods=self.pods, seconds=round(took, 1))
            yield self
        finally:
            log("taking the disposable sandbox down")
            try:
                self.run("down", timeout=300)
            finally:
                shutil.rmtree(self.home, ignore_errors=True)


# --- role: baselines (official client, raw httpx), in their own process ------------------------------------


def _list_all(fn: Callable[..., Any]) -> list[Any]:
    items: list[Any] = []
    cont: str | None = None
    while True:
        page = fn(limit=500, _continue=cont) if cont else fn(limit=500)
        items.extend(page.items)
        cont = page.metadata._continue
        if not cont:
            return items


def role_baseline(kubeconfig: str, events: int) -> None:
    from kubernetes import client, config, watch  # noqa: PLC0415 - the baseline's own imports

    api = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    core, apps, batch = client.CoreV1Api(api), client.AppsV1Api(api), client.BatchV1Api(api)
    listers: list[Callable[..., Any]] = [
        core.list_pod_for_all_namespaces,
        core.list_node,
        apps.list_deployment_for_all_namespaces,
        apps.list_replica_set_for_all_namespaces,
        apps.list_stateful_set_for_all_namespaces,
        apps.list_daemon_set_for_all_namespaces,
        batch.list_job_for_all_namespaces,
        # core/v1's view of the same Events: this client (v37) cannot decode events.k8s.io/v1 Events whose
        # eventTime is null (as the controller-manager writes them) and raises a ValidationError
        core.list_event_for_all_namespaces,
    ]
    base = rss_mib()
    started = time.perf_counter()
    held = [_list_all(fn) for fn in listers]
    took = time.perf_counter() - started
    emit(
        measure="sync",
        who="kubernetes-client",
        seconds=round(took, 2),
        objects=sum(len(h) for h in held),
        rss_mib=round(rss_mib(), 1),
        rss_before_mib=round(base, 1),
    )

    count = 0
    w = watch.Watch()  # type: ignore[no-untyped-call]
    started = time.perf_counter()
    stream = w.stream(core.list_pod_for_all_namespaces, resource_version="0", timeout_seconds=600)  # type: ignore[no-untyped-call]
    for _ in stream:
        count += 1
        if count >= events:
            w.stop()  # type: ignore[no-untyped-call]
            break
    took = time.perf_counter() - started
    emit(measure="rate", who="kubernetes-client", events=count, seconds=round(took, 3), per_s=round(count / took))
    asyncio.run(_raw_httpx_rate(kubeconfig, events))


async def _raw_httpx_rate(kubeconfig: str, events: int) -> None:
    from opsbus.watcher.watching import KubeClient  # noqa: PLC0415

    kube = KubeClient.from_config(kubeconfig)
    count = 0
    started = time.perf_counter()
    try:
        params = {"watch": "true", "resourceVersion": "0", "timeoutSeconds": 600}
        async with kube.watch("/api/v1/pods", params, read_timeout=630) as response:
            async for line in response.aiter_lines():
                if line:
                    json.loads(line)
                    count += 1
                    if count >= events:
                        break
    finally:
        await kube.close()
    took = time.perf_counter() - started
    emit(measure="rate", who="httpx+json", events=count, seconds=round(took, 3), per_s=round(count / took))


# --- role: the watcher, in its own process -------------------------------------------------------------------


async def role_watcher(kubeconfig: str, nats_url: str, events: int) -> None:
    from prometheus_client import CollectorRegistry  # noqa: PLC0415

    from opsbus.common.bus import Bus  # noqa: PLC0415
    from opsbus.common.settings import NatsSettings  # noqa: PLC0415
    from opsbus.watcher.executing import Engine  # noqa: PLC0415
    from opsbus.watcher.service import start  # noqa: PLC0415
    from opsbus.watcher.settings import WatcherSettings  # noqa: PLC0415
    from opsbus.watcher.watching import KubeClient  # noqa: PLC0415

    registry = CollectorRegistry()
    bus = await Bus.connect(NatsSettings(url=nats_url), service="watcher", registry=registry)
    await bus.ensure_streams()
    kube = KubeClient.from_config(kubeconfig)
    settings = WatcherSettings(cluster=CLUSTER, watcher={"kubeconfig": kubeconfig, "log_timeout_seconds": 0.5})
    base = rss_mib()
    started = time.perf_counter()
    watcher = await start(settings, bus, kube, registry)
    took = time.perf_counter() - started
    emit(
        measure="sync",
        who="watcher",
        seconds=round(took, 2),
        objects=len(watcher.engine.cache),
        rss_mib=round(rss_mib(), 1),
        rss_before_mib=round(base, 1),
    )

    # rate: throw-away informers + engines over the pod watch's initial ADDED burst, with and without publishing
    for who, publish in (("watcher", True), ("watcher-informer", False)):
        options = settings.watcher.model_copy(update={"publish_cluster_events": publish})
        count, took = await _rate(
            kube,
            Engine(cluster=CLUSTER, options=options, sender=bus.publisher, logs=None, registry=CollectorRegistry()),
            events,
        )
        emit(measure="rate", who=who, events=count, seconds=round(took, 3), per_s=round(count / took))
    emit(measure="ready", rss_mib=round(rss_mib(), 1))

    # stay up for the latency phase until the parent closes stdin
    await asyncio.to_thread(sys.stdin.read)
    emit(measure="final", rss_mib=round(rss_mib(), 1))
    await watcher.stop()
    await kube.close()
    await bus.close()


async def _rate(kube: Any, engine: Any, events: int) -> tuple[int, float]:
    """Watch pods from resourceVersion 0 through an Informer into `engine` until `events` changes: (count, s)."""
    from prometheus_client import CollectorRegistry  # noqa: PLC0415

    from opsbus.watcher.domain.cache import Cache, Change  # noqa: PLC0415
    from opsbus.watcher.domain.objects import POD, Resource  # noqa: PLC0415
    from opsbus.watcher.watching import Informer, InformerOptions, WatchMetrics  # noqa: PLC0415

    done, count = asyncio.Event(), 0

    async def on_change(resource: Resource, change: Change, initial: bool) -> None:
        nonlocal count
        await engine.on_change(resource, change, initial)
        count += 1
        if count >= events:
            done.set()

    informer = Informer(
        kube,
        POD,
        None,
        cache=Cache(),
        on_change=on_change,
        metrics=WatchMetrics(CollectorRegistry()),
        options=InformerOptions(watch_timeout_seconds=600),
    )
    informer.resource_version = "0"
    started = time.perf_counter()
    task = asyncio.create_task(informer.watch_once())
    async with asyncio.timeout(600):
        await done.wait()
    took = time.perf_counter() - started
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return count, took


# --- the latency phase, in the parent -----------------------------------------------------------------------


async def detection_latency(kubeconfig: str, nats_url: str, faults: int, interval: float) -> dict[str, Any]:
    import nats  # noqa: PLC0415

    from opsbus.watcher.watching import KubeClient  # noqa: PLC0415

    kube = KubeClient.from_config(kubeconfig)
    nc = await nats.connect(nats_url)
    fired: dict[str, float] = {}
    wanted: set[str] = set()
    all_fired = asyncio.Event()
    shown: dict[str, float] = {}
    switched: dict[str, float] = {}

    async def on_alert(msg: Any) -> None:
        env = json.loads(msg.data)
        data = env.get("data") or {}
        if data.get("alertname") == "KubePodImagePullFailing":
            fired.setdefault(str(data["labels"].get("pod")), time.monotonic())
            if wanted and wanted <= fired.keys():
                all_fired.set()

    sub = await nc.subscribe(f"alert.fired.{CLUSTER}.{NAMESPACE}", cb=on_alert)
    pods = await kube.get(f"/api/v1/namespaces/{NAMESPACE}/pods", {"fieldSelector": "status.phase=Running"})
    names = sorted(p["metadata"]["name"] for p in pods["items"])[:faults]
    if len(names) < faults:
        raise RuntimeError(f"only {len(names)} running pods in {NAMESPACE}, {faults} faults asked")
    rv = pods["metadata"]["resourceVersion"]
    wanted.update(names)

    async def watch_status() -> None:
        params = {"watch": "true", "resourceVersion": rv, "timeoutSeconds": 600}
        async with kube.watch(f"/api/v1/namespaces/{NAMESPACE}/pods", params, read_timeout=630) as response:
            async for line in response.aiter_lines():
                obj = (json.loads(line) if line else {}).get("object") or {}
                for cs in (obj.get("status") or {}).get("containerStatuses") or []:
                    if ((cs.get("state") or {}).get("waiting") or {}).get("reason") in PULL_REASONS:
                        shown.setdefault(obj["metadata"]["name"], time.monotonic())

    watching = asyncio.create_task(watch_status())
    try:
        for name in names:
            body = {"metadata": {"labels": {"opsbus.io/chaos": "imagepull"}}}
            response = await kube.http.patch(
                f"/api/v1/namespaces/{NAMESPACE}/pods/{name}",
                content=json.dumps(body),
                headers={"Content-Type": "application/merge-patch+json"},
            )
            response.raise_for_status()
            switched[name] = time.monotonic()
            await asyncio.sleep(interval)
        if wanted <= fired.keys():
            all_fired.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(120):
                await all_fired.wait()
    finally:
        watching.cancel()
        await asyncio.gather(watching, return_exceptions=True)
        await sub.unsubscribe()
        await nc.close()
        # switch the faults off again, so a reused sandbox is healthy for the next run
        for name in switched:
            with contextlib.suppress(Exception):
                await kube.http.patch(
                    f"/api/v1/namespaces/{NAMESPACE}/pods/{name}",
                    content=json.dumps({"metadata": {"labels": {"opsbus.io/chaos": None}}}),
                    headers={"Content-Type": "application/merge-patch+json"},
                )
        await kube.close()
    from_switch = [fired[n] - switched[n] for n in names if n in fired]
    from_status = [fired[n] - shown[n] for n in names if n in fired and n in shown]
    return {
        "faults": len(names),
        "fired": len(from_switch),
        "status_seen": len(from_status),
        "from_chaos": summary(from_switch),
        "from_status": summary(from_status),
    }


def summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 3)

    return {"p50": round(statistics.median(ordered), 3), "p99": pct(0.99), "max": round(ordered[-1], 3)}


# --- the parent ----------------------------------------------------------------------------------------------


def child(role: str, *args: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--role", role, *args]
    return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def read_until(proc: subprocess.Popen[str], measure: str, sink: list[dict[str, Any]], who: str) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        record = json.loads(line)
        sink.append(record)
        print(line, end="", flush=True)
        if record.get("measure") == measure:
            return
    raise RuntimeError(f"the {who} process ended before reporting {measure} (exit {proc.wait()})")


def main(args: argparse.Namespace) -> None:
    from opsbus.common.testing.servers import nats_server  # noqa: PLC0415

    records: list[dict[str, Any]] = []
    events = args.pods
    home = Path(args.sandbox_home).resolve() if args.sandbox_home else None
    box_ = ScaleSandbox(args.nodes, args.pods, args.scale_timeout, home)
    with box_.running() as box, nats_server() as nats:
        kubeconfig = str(box.kubeconfig)
        baseline = child("baseline", "--kubeconfig", kubeconfig, "--events", str(events))
        read_until(baseline, "rate", records, "baseline")  # the official client
        read_until(baseline, "rate", records, "baseline")  # raw httpx
        baseline.wait(timeout=60)
        watcher = child("watcher", "--kubeconfig", kubeconfig, "--nats", nats.url, "--events", str(events))
        try:
            read_until(watcher, "ready", records, "watcher")
            latency = asyncio.run(detection_latency(kubeconfig, nats.url, args.faults, args.fault_interval))
            emit(measure="latency", **latency)
            records.append({"measure": "latency", **latency})
            assert watcher.stdin is not None
            watcher.stdin.close()
            read_until(watcher, "final", records, "watcher")
            watcher.wait(timeout=60)
        finally:
            if watcher.poll() is None:
                watcher.kill()
    report(records, args)


def report(records: list[dict[str, Any]], args: argparse.Namespace) -> None:
    def one(measure: str, who: str) -> dict[str, Any]:
        return next(r for r in records if r.get("measure") == measure and r.get("who") == who)

    ws, bs = one("sync", "watcher"), one("sync", "kubernetes-client")
    wr, br, hr = one("rate", "watcher"), one("rate", "kubernetes-client"), one("rate", "httpx+json")
    ir = one("rate", "watcher-informer")
    lat = next(r for r in records if r.get("measure") == "latency")
    final = next(r for r in records if r.get("measure") == "final")
    print(f"\n{args.nodes} nodes, {args.pods} pods; {ws['objects']} objects cached by the watcher")
    print(f"{'':34}{'watcher':>12}{'k8s client':>12}{'ratio':>8}")
    print(f"{'initial sync (s)':34}{ws['seconds']:>12}{bs['seconds']:>12}{ws['seconds'] / bs['seconds']:>8.2f}")
    print(f"{'RSS after sync (MiB)':34}{ws['rss_mib']:>12}{bs['rss_mib']:>12}{ws['rss_mib'] / bs['rss_mib']:>8.2f}")
    print(
        f"{'pod watch events/s, +cluster.event':34}{wr['per_s']:>12}{br['per_s']:>12}{wr['per_s'] / br['per_s']:>8.2f}"
    )
    print(f"{'  informer only (no publishing)':34}{ir['per_s']:>12}{br['per_s']:>12}{ir['per_s'] / br['per_s']:>8.2f}")
    print(f"{'  raw httpx + json.loads events/s':34}{hr['per_s']:>12}")
    print(f"watcher RSS at the end (after the rate and latency phases): {final['rss_mib']} MiB")
    print(
        f"detection over {lat['faults']} faults ({lat['fired']} fired): chaos on -> alert.fired "
        f"p50 {lat['from_chaos'].get('p50')} s p99 {lat['from_chaos'].get('p99')} s; "
        f"status on the apiserver -> alert.fired p50 {lat['from_status'].get('p50')} s "
        f"p99 {lat['from_status'].get('p99')} s (max {lat['from_status'].get('max')} s)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=1000, help="fake nodes of the disposable sandbox")
    parser.add_argument("--pods", type=int, default=10000, help="pods of the disposable sandbox")
    parser.add_argument("--faults", type=int, default=100, help="faults injected for the latency figures")
    parser.add_argument("--fault-interval", type=float, default=0.2, help="seconds between two injections")
    parser.add_argument("--scale-timeout", type=float, default=1800, help="bound on scaling the sandbox (s)")
    parser.add_argument(
        "--sandbox-home",
        help="use the already scaled sandbox whose OPSBUS_SANDBOX_HOME is this directory (name opsbus-bench) "
        "instead of a disposable one; it is left running (the faults are switched off at the end).",
    )
    parser.add_argument("--role", choices=["baseline", "watcher"], help=argparse.SUPPRESS)
    parser.add_argument("--kubeconfig", help=argparse.SUPPRESS)
    parser.add_argument("--nats", help=argparse.SUPPRESS)
    parser.add_argument("--events", type=int, default=0, help=argparse.SUPPRESS)
    ns = parser.parse_args()
    if ns.role == "baseline":
        role_baseline(ns.kubeconfig, ns.events)
    elif ns.role == "watcher":
        asyncio.run(role_watcher(ns.kubeconfig, ns.nats, ns.events))
    else:
        main(ns)
