"""Two watcher replicas on one cluster produce one alert per fault (deterministic ids + JetStream dedupe), and a
watcher restarted while the fault lasts neither fires again nor loses the resolve (book rebuilt from ALERT)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

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


async def test_two_replicas_one_alert_and_restart_does_not_refire(
    cluster: Cluster, sandbox: SandboxHandle, make_bus: MakeBus
) -> None:
    settings = WatcherSettings(
        cluster=CLUSTER,
        watcher={
            "kubeconfig": str(sandbox.kubeconfig),
            "namespaces": [cluster.namespace],
            "log_timeout_seconds": 1.0,
            "thresholds": {"resolve_after_seconds": 2},
        },
    )
    kubes: list[KubeClient] = []
    watchers: list[Watcher] = []

    async def replica() -> Watcher:
        bus = await make_bus("watcher", registry_=CollectorRegistry())
        await bus.ensure_streams()
        kube = KubeClient.from_config(str(sandbox.kubeconfig))
        kubes.append(kube)
        w = await start(settings, bus, kube, CollectorRegistry())
        watchers.append(w)
        return w

    first, second = await replica(), await replica()
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
        third = await replica()
        assert third.engine.book.firing.keys() == second.engine.book.firing.keys()
        await second.stop()  # only the restarted replica is left to resolve
        await asyncio.sleep(3.0)
        assert len(alerts.of("fired", "KubePodCrashLooping")) == 1

        await asyncio.to_thread(cluster.heal, "crashloop", f"pod/{pod.metadata.name}")
        await alerts.wait("resolved", "KubePodCrashLooping", timeout=90)
        await asyncio.sleep(1.0)
        assert len(alerts.of("resolved", "KubePodCrashLooping")) == 1
        assert len(alerts.of("fired", "KubePodCrashLooping")) == 1
    finally:
        await alerts.stop()
        for w in watchers:
            await w.stop()
        for k in kubes:
            await k.close()
