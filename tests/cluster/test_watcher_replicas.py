"""Two watcher replicas on one cluster produce one alert per fault (deterministic ids + JetStream dedupe), and a
watcher restarted while the fault lasts neither fires again nor loses the resolve (book rebuilt from ALERT); the
same with two watcher processes, one of them SIGKILLed mid-fault."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from opsbus.common.bus import Bus
from opsbus.watcher.service import Watcher, start
from opsbus.watcher.settings import WatcherSettings
from opsbus.watcher.watching import KubeClient
from tests.cluster.conftest import SandboxHandle
from tests.cluster.kube import Cluster, wait_until
from tests.cluster.test_watcher_alerts import CLUSTER, Alerts

pytestmark = [pytest.mark.cluster, pytest.mark.integration]

MakeBus = Callable[..., Awaitable[Bus]]


async def heal_and_expect_one_resolve(cluster: Cluster, alerts: Alerts, pod: str) -> None:
    """Switch the crash loop off: exactly one resolve follows, and still exactly one fire."""
    await asyncio.to_thread(cluster.heal, "crashloop", f"pod/{pod}")
    await alerts.wait("resolved", "KubePodCrashLooping", timeout=90)
    await asyncio.sleep(1.0)
    assert len(alerts.of("resolved", "KubePodCrashLooping")) == 1
    assert len(alerts.of("fired", "KubePodCrashLooping")) == 1


class Replicas:
    """Watcher replicas in this process, each with its own bus connection and Kubernetes client (nothing shared but
    NATS and the cluster); `close` stops every one started."""

    def __init__(self, settings: WatcherSettings, sandbox: SandboxHandle, make_bus: MakeBus) -> None:
        self.settings, self.sandbox, self.make_bus = settings, sandbox, make_bus
        self.kubes: list[KubeClient] = []
        self.watchers: list[Watcher] = []

    async def start(self) -> Watcher:
        bus = await self.make_bus("watcher", registry_=CollectorRegistry())
        await bus.ensure_streams()
        kube = KubeClient.from_config(str(self.sandbox.kubeconfig))
        self.kubes.append(kube)
        watcher = await start(self.settings, bus, kube, CollectorRegistry())
        self.watchers.append(watcher)
        return watcher

    async def close(self) -> None:
        for w in self.watchers:
            await w.stop()
        for k in self.kubes:
            await k.close()


def replica_settings(cluster: Cluster, sandbox: SandboxHandle, **options: object) -> WatcherSettings:
    watcher = {"kubeconfig": str(sandbox.kubeconfig), "namespaces": [cluster.namespace], "log_timeout_seconds": 1.0}
    return WatcherSettings(cluster=CLUSTER, watcher={**watcher, **options})


async def test_two_replicas_one_alert_and_restart_does_not_refire(
    cluster: Cluster, sandbox: SandboxHandle, make_bus: MakeBus
) -> None:
    replicas = Replicas(replica_settings(cluster, sandbox, thresholds={"resolve_after_seconds": 2}), sandbox, make_bus)
    first, second = await replicas.start(), await replicas.start()
    alerts = Alerts(await make_bus("probe", registry_=CollectorRegistry()), cluster.namespace)
    await alerts.start()
    try:
        cluster.create_deployment("web", replicas=1)
        (pod,) = await asyncio.to_thread(wait_until, "web running", lambda: cluster.running_pods("web", 1), 120)
        await asyncio.to_thread(cluster.chaos, "crashloop", f"pod/{pod.metadata.name}")
        await alerts.wait("fired", "KubePodCrashLooping")
        await asyncio.sleep(3.0)  # both replicas have decided by now
        assert len(alerts.of("fired", "KubePodCrashLooping")) == 1
        assert first.engine.book.firing.keys() == second.engine.book.firing.keys()

        # restart one replica while the fault lasts: it rebuilds its book from the stream, no re-fire
        await first.stop()
        third = await replicas.start()
        assert third.engine.book.firing.keys() == second.engine.book.firing.keys()
        await second.stop()  # only the restarted replica is left to resolve
        await asyncio.sleep(3.0)
        assert len(alerts.of("fired", "KubePodCrashLooping")) == 1

        await heal_and_expect_one_resolve(cluster, alerts, pod.metadata.name)
    finally:
        await alerts.stop()
        await replicas.close()


async def test_two_watcher_processes_fire_once_and_resolve_once(
    cluster: Cluster, sandbox: SandboxHandle, make_bus: MakeBus, nats_url: str, tmp_path: Path
) -> None:
    """The same as deployed: two `python -m opsbus.watcher run` processes, nothing shared but NATS and the cluster;
    one is SIGKILLed while the fault lasts and the survivor resolves it."""
    env = {
        **os.environ,
        "OPSBUS_CLUSTER": CLUSTER,
        "OPSBUS_NATS__URL": nats_url,
        "OPSBUS_HTTP__PORT": "0",
        "OPSBUS_WATCHER__KUBECONFIG": str(sandbox.kubeconfig),
        "OPSBUS_WATCHER__NAMESPACES": json.dumps([cluster.namespace]),
        "OPSBUS_WATCHER__THRESHOLDS__RESOLVE_AFTER_SECONDS": "2",
        "OPSBUS_WATCHER__LOG_TIMEOUT_SECONDS": "1",
    }
    procs: list[tuple[subprocess.Popen[bytes], Path]] = []
    for name in ("watcher-a", "watcher-b"):
        log = tmp_path / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "opsbus.watcher", "run"],
                env={**env, "OPSBUS_INSTANCE": name},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        procs.append((proc, log))
    alerts = Alerts(await make_bus("probe", registry_=CollectorRegistry()), cluster.namespace)
    try:
        for proc, log in procs:
            deadline = time.monotonic() + 180  # a cold interpreter on a busy machine
            while "ready (instance" not in log.read_text(errors="replace"):
                assert proc.poll() is None, f"watcher exited {proc.returncode}:\n{log.read_text(errors='replace')}"
                assert time.monotonic() < deadline, f"watcher not ready:\n{log.read_text(errors='replace')}"
                await asyncio.sleep(0.2)
        await alerts.start()
        cluster.create_deployment("api", replicas=1)
        (pod,) = await asyncio.to_thread(wait_until, "api running", lambda: cluster.running_pods("api", 1), 120)
        await asyncio.to_thread(cluster.chaos, "crashloop", f"pod/{pod.metadata.name}")
        fired = await alerts.wait("fired", "KubePodCrashLooping")
        await asyncio.sleep(3.0)  # both processes have decided by now
        assert len(alerts.of("fired", "KubePodCrashLooping")) == 1
        assert fired.data["labels"]["pod"] == pod.metadata.name

        procs[0][0].send_signal(signal.SIGKILL)  # the survivor alone sees the heal
        procs[0][0].wait(10)
        await heal_and_expect_one_resolve(cluster, alerts, pod.metadata.name)
    finally:
        await alerts.stop()
        for proc, _ in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
