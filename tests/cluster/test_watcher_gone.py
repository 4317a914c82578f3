"""A watch resumed from an expired resourceVersion gets 410 Gone from the real apiserver; the relist that follows
neither loses nor repeats a transition.

The pod informer is stopped (as a dropped connection would), the cluster changes meanwhile (one fault heals, another
starts, a pod is replaced), and the informer resumes from resourceVersion 1, long compacted away: the apiserver
answers with an ERROR event, code 410 "too old resource version". Every change missed while blind must come out
exactly once: the healed fault resolves once, the new fault fires once, the deleted pod is one DELETED
`cluster.event` and its replacement one ADDED.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from prometheus_client import CollectorRegistry

from opsbus.common.bus import Bus
from opsbus.common.events import Envelope
from opsbus.watcher.service import start
from opsbus.watcher.settings import WatcherSettings
from opsbus.watcher.watching import KubeClient
from tests.cluster.conftest import SandboxHandle
from tests.cluster.kube import Cluster, container_status, is_running_and_ready, wait_until
from tests.cluster.test_watcher_alerts import CLUSTER, Alerts, StreamEvents

pytestmark = [pytest.mark.cluster, pytest.mark.integration]

MakeBus = Callable[..., Awaitable[Bus]]
CRASH = "KubePodCrashLooping"


class PodChanges(StreamEvents):
    """Every pod `cluster.event` of one namespace, read back from the CLUSTER stream."""

    family, stream = "cluster.event", "CLUSTER"

    def of(self, change: str, name: str) -> list[Envelope]:
        return [
            e
            for e in self.events
            if e.data.get("kind") == "Pod" and e.data.get("change") == change and e.data.get("name") == name
        ]


def _crash_looping(cluster: Cluster, pod: str) -> bool:
    cs = container_status(cluster.pod(pod), "app")
    return bool(cs is not None and cs.state.waiting is not None and cs.state.waiting.reason == "CrashLoopBackOff")


def _for_pod(alerts: Alerts, verb: str, pod: str) -> list[Envelope]:
    return [e for e in alerts.of(verb, CRASH) if e.data["labels"].get("pod") == pod]


async def test_watch_resumed_from_expired_version_relists_without_losing_or_repeating(
    cluster: Cluster, sandbox: SandboxHandle, make_bus: MakeBus
) -> None:
    bus = await make_bus("watcher")
    await bus.ensure_streams()
    registry = CollectorRegistry()
    settings = WatcherSettings(
        cluster=CLUSTER,
        watcher={
            "kubeconfig": str(sandbox.kubeconfig),
            "namespaces": [cluster.namespace],
            "log_timeout_seconds": 1.0,
            "thresholds": {"resolve_after_seconds": 2},
        },
    )
    kube = KubeClient.from_config(str(sandbox.kubeconfig))
    watcher = await start(settings, bus, kube, registry)
    probe = await make_bus("probe", registry_=CollectorRegistry())
    alerts, changes = Alerts(probe, cluster.namespace), PodChanges(probe, cluster.namespace)
    await alerts.start()
    await changes.start()
    try:
        cluster.create_deployment("web", replicas=3)
        pods = await asyncio.to_thread(wait_until, "3 pods running", lambda: cluster.running_pods("web", 3), 120)
        healed, broken, replaced = sorted(p.metadata.name for p in pods)
        await asyncio.to_thread(cluster.chaos, "crashloop", f"pod/{healed}")
        await alerts.wait("fired", CRASH)

        # the pod watch drops
        (informer,) = [i for i in watcher.informers if i.resource.kind == "Pod"]
        (task,) = [t for t in watcher.tasks if t.get_name() == f"watch:pods:{cluster.namespace}"]
        task.cancel()
        await asyncio.wait([task])
        watcher.tasks.remove(task)

        # ... while the cluster moves on
        await asyncio.to_thread(cluster.heal, "crashloop", f"pod/{healed}")
        await asyncio.to_thread(cluster.chaos, "crashloop", f"pod/{broken}")
        cluster.core.delete_namespaced_pod(replaced, cluster.namespace, grace_period_seconds=0)
        await asyncio.to_thread(wait_until, f"{healed} running", lambda: is_running_and_ready(cluster.pod(healed)), 60)
        await asyncio.to_thread(wait_until, f"{broken} crash looping", lambda: _crash_looping(cluster, broken), 90)
        new = await asyncio.to_thread(
            wait_until,
            f"{replaced} replaced",
            lambda: [p for p in cluster.pods("web") if p.metadata.name not in {healed, broken, replaced}],
            90,
        )
        (replacement,) = [p.metadata.name for p in new]
        await asyncio.to_thread(
            wait_until, f"{replacement} running", lambda: is_running_and_ready(cluster.pod(replacement)), 60
        )
        assert _for_pod(alerts, "resolved", healed) == [] and _for_pod(alerts, "fired", broken) == []

        # and the watch resumes from a version etcd has long compacted: 410 Gone, relist, diff
        informer.resource_version = "1"
        watcher.tasks.append(asyncio.create_task(informer.run(), name="watch:pods:resumed"))
        deadline = asyncio.get_running_loop().time() + 60
        while not (_for_pod(alerts, "fired", broken) and _for_pod(alerts, "resolved", healed)):
            seen = [(e.type, e.data["labels"].get("pod")) for e in alerts.events]
            assert asyncio.get_running_loop().time() < deadline, f"missed transitions after the relist: {seen}"
            await asyncio.sleep(0.1)
        await asyncio.sleep(3.0)  # a repeated transition would show by now (hysteresis 2 s, evaluation every 1 s)

        gone = registry.get_sample_value("opsbus_watcher_watch_restarts_total", {"resource": "pods", "reason": "gone"})
        relists = registry.get_sample_value("opsbus_watcher_relists_total", {"resource": "pods"})
        assert gone == 1, "the apiserver answered the stale resourceVersion with 410 Gone"
        assert relists == 2, "the first sync and the one after 410"
        assert len(_for_pod(alerts, "fired", healed)) == 1
        assert len(_for_pod(alerts, "resolved", healed)) == 1
        assert _for_pod(alerts, "resolved", healed)[0].data["resolution"] == "condition cleared"
        assert len(_for_pod(alerts, "fired", broken)) == 1
        assert _for_pod(alerts, "resolved", broken) == []
        assert len(alerts.events) == 3, [(e.type, e.data["labels"].get("pod")) for e in alerts.events]
        assert len(changes.of("DELETED", replaced)) == 1, "the pod deleted while blind: one DELETED from the diff"
        assert len(changes.of("ADDED", replacement)) == 1, "its replacement: one ADDED, not replayed by the watch"
        assert set(watcher.engine.book.firing) == {_for_pod(alerts, "fired", broken)[0].data["fingerprint"]}
    finally:
        await alerts.stop()
        await changes.stop()
        await watcher.stop()
        await kube.close()
