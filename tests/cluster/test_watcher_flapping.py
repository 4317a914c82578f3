"""Fast resolution and flap damping against the sandbox apiserver, with two watcher replicas on one bus: a healed
fault resolves within seconds of the pod showing Ready; a fault switched on and off repeatedly is announced once as
flapping by both replicas under the same ids (so the bus holds one copy), damped while it flaps, and resolved once
after the stable period."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry

from opsbus.common.bus import Bus
from opsbus.watcher.domain.lifecycle import Phase
from tests.cluster.conftest import SandboxHandle
from tests.cluster.kube import Cluster, condition, container_status, wait_until
from tests.cluster.test_watcher_alerts import Alerts
from tests.cluster.test_watcher_replicas import Replicas, replica_settings

pytestmark = [pytest.mark.cluster, pytest.mark.integration]

MakeBus = Callable[..., Awaitable[Bus]]
ALERT = "KubePodImagePullFailing"


def _pulling(cluster: Cluster, pod: str) -> bool:
    cs = container_status(cluster.pod(pod), "app")
    return bool(
        cs is not None
        and cs.state.waiting is not None
        and cs.state.waiting.reason in {"ErrImagePull", "ImagePullBackOff"}
    )


def _ready_since(cluster: Cluster, pod: str) -> datetime | None:
    ready = condition(cluster.pod(pod), "Ready")
    return ready.last_transition_time if ready is not None and ready.status == "True" else None


async def test_two_replicas_resolve_fast_and_damp_a_flapping_pod_alike(
    cluster: Cluster, sandbox: SandboxHandle, make_bus: MakeBus
) -> None:
    settings = replica_settings(
        cluster,
        sandbox,
        resolution={"rules": {ALERT: {"flap_stable_seconds": 20}}},  # > the calm between two cycles
    )
    replicas = Replicas(settings, sandbox, make_bus)
    watchers = [await replicas.start(), await replicas.start()]
    alerts = Alerts(await make_bus("probe", registry_=CollectorRegistry()), cluster.namespace)
    await alerts.start()
    try:
        cluster.create_deployment("web", replicas=1)
        (pod,) = await asyncio.to_thread(wait_until, "web running", lambda: cluster.running_pods("web", 1), 120)
        name = pod.metadata.name

        # a stable recovery: resolved within seconds of the pod showing Ready (default confirmation bound, 2 s)
        await asyncio.to_thread(cluster.chaos, "imagepull", f"pod/{name}")
        await alerts.wait("fired", ALERT)
        await asyncio.to_thread(cluster.heal, "imagepull", f"pod/{name}")
        await alerts.wait("resolved", ALERT, timeout=30)
        got = datetime.now(UTC)
        healthy = await asyncio.to_thread(_ready_since, cluster, name)
        assert healthy is not None
        assert (got - healthy).total_seconds() <= 5.0, (
            f"resolved {got - healthy} after Ready"
        )  # Ready has whole seconds

        # five more cycles within the flap window
        for cycle in range(5):
            await asyncio.to_thread(cluster.chaos, "imagepull", f"pod/{name}")
            await asyncio.to_thread(wait_until, f"failing ({cycle})", lambda: _pulling(cluster, name), 60)
            await asyncio.sleep(2.0)
            await asyncio.to_thread(cluster.heal, "imagepull", f"pod/{name}")
            await asyncio.to_thread(wait_until, f"healthy ({cycle})", lambda: _ready_since(cluster, name), 60)
            await asyncio.sleep(4.0)  # past the confirmation bound
        fired = alerts.of("fired", ALERT)
        assert len(fired) == 2, [e.data["labels"] for e in fired]  # one copy on the bus though both replicas decided
        assert fired[1].data["labels"]["flapping"] == "true"
        assert len(alerts.of("resolved", ALERT)) == 1
        fp = fired[0].data["fingerprint"]
        assert [w.engine.book.phase(fp) for w in watchers] == [Phase.FLAPPING, Phase.FLAPPING]

        final = None
        for _ in range(400):  # 20 s of calm, then one resolve
            resolves = alerts.of("resolved", ALERT)
            if len(resolves) == 2:
                final = resolves[1]
                break
            await asyncio.sleep(0.1)
        assert final is not None, [e.data for e in alerts.events]
        assert final.data["resolution"].startswith(
            "condition cleared and stable for 20s after flapping (4 damped flaps)"
        )
        await asyncio.sleep(2.0)
        assert len(alerts.of("resolved", ALERT)) == 2 and len(alerts.of("fired", ALERT)) == 2
        assert [w.engine.book.phase(fp) for w in watchers] == [Phase.RESOLVED, Phase.RESOLVED]
    finally:
        await alerts.stop()
        await replicas.close()
