"""The analyzer on the sandbox, with the real watcher publishing the change timeline and alerts: a bad image rollout
is diagnosed as the rollout (the watcher's own `change.recorded` as evidence, rollback suggested), while a
distractor rolled out in the same namespace at the same time is not the top cause.

Written while the sandbox was still being built on the development machine: not yet run there.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from opsbus.common.bus import Bus
from opsbus.common.events.payloads import ActionKind, DiagnosisMade
from opsbus.common.events.payloads.diagnosis import CauseKind, EvidenceKind
from tests.cluster.conftest import SandboxHandle
from tests.cluster.kube import Cluster, wait_until
from tests.cluster.test_watcher_alerts import CLUSTER, Alerts
from tests.cluster.test_watcher_replicas import Replicas, replica_settings
from tests.integration.analyzer_stack import AnalyzerStack, analyzer_stack, last_event

pytestmark = [pytest.mark.cluster, pytest.mark.integration]

MakeBus = Callable[..., Awaitable[Bus]]
BAD = "registry.example/app:2.0-typo"


@pytest.fixture
async def analyzer(database_url: str, nats_url: str, sandbox: SandboxHandle) -> AsyncIterator[AnalyzerStack]:
    async for stack in analyzer_stack(database_url, nats_url):
        await stack.start(cluster=CLUSTER, kubeconfig=str(sandbox.kubeconfig))
        yield stack


def _set_image(cluster: Cluster, name: str, image: str) -> None:
    body = {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}}
    cluster.apps.patch_namespaced_deployment(name, cluster.namespace, body)


def _pods_with(cluster: Cluster, app: str, image: str) -> list[Any] | None:
    pods = [p for p in cluster.pods(app) if p.spec.containers[0].image == image]
    return pods or None


async def test_bad_image_rollout_is_the_top_cause_not_the_distractor(
    cluster: Cluster, sandbox: SandboxHandle, make_bus: MakeBus, analyzer: AnalyzerStack
) -> None:
    replicas = Replicas(replica_settings(cluster, sandbox, thresholds={"resolve_after_seconds": 2}), sandbox, make_bus)
    await replicas.start()
    probe = await make_bus("probe", registry_=CollectorRegistry())
    alerts = Alerts(probe, cluster.namespace)
    await alerts.start()
    try:
        for name in ("web", "cart"):
            cluster.create_deployment(name, replicas=1)
        for name in ("web", "cart"):
            await asyncio.to_thread(wait_until, f"{name} running", lambda n=name: cluster.running_pods(n, 1), 120)
        await asyncio.sleep(2.0)  # the watcher's cache holds both: what follows are changes
        await asyncio.to_thread(_set_image, cluster, "web", BAD)
        await asyncio.to_thread(_set_image, cluster, "cart", "registry.example/app:1.1")  # the distractor, later
        (pod, *_) = await asyncio.to_thread(wait_until, "web's new pod", lambda: _pods_with(cluster, "web", BAD), 60)
        await asyncio.to_thread(cluster.chaos, "imagepull", f"pod/{pod.metadata.name}")
        fired = await alerts.wait("fired", "KubePodImagePullFailing")
        made = await last_event(probe, "DIAGNOSIS", f"diagnosis.made.{CLUSTER}.{cluster.namespace}", timeout=30)
        d = made.payload_as(DiagnosisMade)
        assert made.correlationid == fired.id
        top = d.causes[0]
        assert (top.kind, top.suggested_action) == (CauseKind.ROLLOUT, ActionKind.ROLLBACK), d
        assert top.target is not None and top.target.name == "web"
        assert top.evidence[0].kind is EvidenceKind.CHANGE and BAD.split(":")[1] in (top.evidence[0].detail or "")
        assert {e.ref for e in top.evidence} & {"ImagePullBackOff", "ErrImagePull"}
        assert all(c.target is None or c.target.name != "cart" for c in d.causes)
    finally:
        await alerts.stop()
        await replicas.close()
