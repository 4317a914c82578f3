"""The analyzer on the sandbox, with the real watcher publishing the change timeline and alerts, one test per
signature: a bad image rollout (ImagePullBackOff -> the rollout, rollback), a memory-limit cut (OOMKilled -> the
resource change, raise_memory_limit) and a ConfigMap edit the workload reads through envFrom (crash loop -> the
ConfigMap). Each time another workload of the namespace is rolled out right after the real change, and it must
not be named. The top cause's first evidence is the watcher's own `change.recorded`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes import client
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


def _patch_container(cluster: Cluster, name: str, container: dict[str, Any]) -> None:
    body = {"spec": {"template": {"spec": {"containers": [{"name": "app", **container}]}}}}
    cluster.apps.patch_namespaced_deployment(name, cluster.namespace, body)


def _with_limit(cluster: Cluster) -> None:
    _patch_container(cluster, "web", {"resources": {"limits": {"memory": "512Mi"}}})


def _reads_settings(cluster: Cluster) -> None:
    settings = client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="web-settings"), data={"DB_URL": "postgres://db:5432/shop"}
    )
    cluster.core.create_namespaced_config_map(cluster.namespace, settings)
    _patch_container(cluster, "web", {"envFrom": [{"configMapRef": {"name": "web-settings"}}]})


def _edit_settings(cluster: Cluster) -> None:
    body = {"data": {"DB_URL": "postgress://db:5432/shop"}}
    cluster.core.patch_namespaced_config_map("web-settings", cluster.namespace, body)


@dataclass(frozen=True)
class Fault:
    """One fault: what the workload looks like before, the change that breaks it, the chaos that shows the
    symptom (on the pod the change rolled out, or on the running pod when the change rolls nothing out), and the
    cause the analyzer must put first."""

    id: str
    change: Callable[[Cluster], None]
    marker: Callable[[Any], bool] | None  # tells the new pod; None: the change rolls out no pod
    chaos: str
    alertname: str
    kind: CauseKind
    action: ActionKind
    target: str
    evidence: str  # in the top cause's first evidence detail
    prepare: Callable[[Cluster], None] | None = None


FAULTS = [
    Fault(
        "bad-image",
        lambda c: _patch_container(c, "web", {"image": BAD}),
        lambda p: p.spec.containers[0].image == BAD,
        "imagepull",
        "KubePodImagePullFailing",
        CauseKind.ROLLOUT,
        ActionKind.ROLLBACK,
        "web",
        "2.0-typo",
    ),
    Fault(
        "memory-limit-cut",
        lambda c: _patch_container(c, "web", {"resources": {"limits": {"memory": "64Mi"}}}),
        lambda p: (p.spec.containers[0].resources.limits or {}).get("memory") == "64Mi",
        "oomkilled",
        "KubeContainerOOMKilled",
        CauseKind.RESOURCE_CHANGE,
        ActionKind.RAISE_MEMORY_LIMIT,
        "web",
        "64Mi",
        prepare=_with_limit,
    ),
    Fault(
        "configmap-edit",
        _edit_settings,
        None,
        "crashloop",
        "KubePodCrashLooping",
        CauseKind.CONFIG_CHANGE,
        ActionKind.NOTIFY_ONLY,
        "web-settings",
        "DB_URL",
        prepare=_reads_settings,
    ),
]


async def _running(cluster: Cluster, app: str) -> Any:
    def ready() -> Any:
        done = cluster.rollout_complete(app)
        return cluster.running_pods(app, 1) if done is not None else None

    (pod,) = await asyncio.to_thread(wait_until, f"{app} rolled out and running", ready, 120)
    return pod


@pytest.mark.parametrize("fault", FAULTS, ids=[f.id for f in FAULTS])
async def test_the_change_behind_a_fault_is_the_top_cause_not_the_distractor(
    cluster: Cluster, sandbox: SandboxHandle, make_bus: MakeBus, analyzer: AnalyzerStack, fault: Fault
) -> None:
    replicas = Replicas(replica_settings(cluster, sandbox, thresholds={"resolve_after_seconds": 2}), sandbox, make_bus)
    probe = await make_bus("probe", registry_=CollectorRegistry())
    alerts = Alerts(probe, cluster.namespace)
    await alerts.start()
    try:
        # The workloads as they were long before the fault: in place before the watcher starts, so its first list
        # takes them as they are (the timeline holds changes from then on, as in a cluster opsbus watched for days).
        for name in ("web", "cart"):
            cluster.create_deployment(name, replicas=1)
        if fault.prepare is not None:
            await asyncio.to_thread(fault.prepare, cluster)
        running = {name: await _running(cluster, name) for name in ("web", "cart")}
        await replicas.start()
        await asyncio.sleep(2.0)  # the watcher's first list is in its cache: what follows are changes
        await asyncio.to_thread(fault.change, cluster)
        # the distractor: another workload of the namespace rolled out right after the real change
        await asyncio.to_thread(_patch_container, cluster, "cart", {"image": "registry.example/app:1.1"})
        if fault.marker is None:
            pod = running["web"]
        else:
            marker = fault.marker
            (pod, *_) = await asyncio.to_thread(
                wait_until, "web's new pod", lambda: [p for p in cluster.pods("web") if marker(p)] or None, 60
            )
        await asyncio.to_thread(cluster.chaos, fault.chaos, f"pod/{pod.metadata.name}")
        fired = await alerts.wait("fired", fault.alertname)
        made = await last_event(probe, "DIAGNOSIS", f"diagnosis.made.{CLUSTER}.{cluster.namespace}", timeout=30)
        d = made.payload_as(DiagnosisMade)
        assert made.correlationid == fired.id
        top = d.causes[0]
        assert (top.kind, top.suggested_action) == (fault.kind, fault.action), d
        assert top.target is not None and top.target.name == fault.target, d
        assert top.evidence[0].kind is EvidenceKind.CHANGE and fault.evidence in (top.evidence[0].detail or ""), d
        assert all(c.target is None or c.target.name != "cart" for c in d.causes), d
    finally:
        await alerts.stop()
        await replicas.close()
