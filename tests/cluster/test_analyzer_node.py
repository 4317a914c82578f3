"""The analyzer on the sandbox when a node goes NotReady and takes its pods down: the node is the top cause.

`sandbox.sh chaos nodedown node/N` makes the node's fake kubelet report Ready=False (the controller manager taints
it), then marks the node's pods unready as the node lifecycle controller does (stages/chaos-pod-node-down.yaml).
The workload whose replicas all ran there loses them: the real watcher fires KubeDeploymentReplicasMismatch (a
workload alert, no pod named) and records the node's condition change; the analyzer reads where the unready pods
run through the Kubernetes API and finds them all on that node. A rollout of another workload of the namespace at
the same time must not be named.

Real watcher, real NATS and PostgreSQL, real apiserver, controller manager and kwok.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from opsbus.common.bus import Bus
from opsbus.common.events.payloads import ActionKind
from opsbus.common.events.payloads.diagnosis import CauseKind, DiagnosisOutcome, EvidenceKind
from tests.cluster.conftest import SandboxHandle
from tests.cluster.kube import Cluster, is_running_and_ready, wait_until
from tests.cluster.test_analyzer_diagnosis import analyzer
from tests.cluster.test_analyzer_evidence import Diagnoses, diagnoses, diagnosis
from tests.cluster.test_watcher_alerts import Alerts
from tests.cluster.test_watcher_replicas import Replicas, replica_settings
from tests.integration.analyzer_stack import AnalyzerStack

pytestmark = [pytest.mark.cluster, pytest.mark.integration]
__all__ = ["analyzer", "diagnoses"]  # fixtures shared with the other analyzer cluster tests

MakeBus = Callable[..., Awaitable[Bus]]


def _pin(cluster: Cluster, name: str, node: str, replicas: int) -> None:
    """Scale the (empty) deployment up with every pod bound to `node`."""
    body = {"spec": {"replicas": replicas, "template": {"spec": {"nodeName": node}}}}
    cluster.apps.patch_namespaced_deployment(name, cluster.namespace, body)


def _all_down(cluster: Cluster) -> bool:
    pods = cluster.pods("web")
    return len(pods) == 2 and not any(is_running_and_ready(p) for p in pods)


def _other_node(cluster: Cluster, node: str) -> str:
    items: list[Any] = cluster.core.list_node(label_selector="type=kwok").items
    names = sorted(str(n.metadata.name) for n in items)
    return next(n for n in names if n != node and cluster.node_ready(n))


async def test_a_node_going_not_ready_is_the_top_cause_of_its_pods_going_down(
    cluster: Cluster, sandbox: SandboxHandle, make_bus: MakeBus, analyzer: AnalyzerStack, diagnoses: Diagnoses
) -> None:
    node = f"an-{uuid.uuid4().hex[:6]}"
    await asyncio.to_thread(cluster.create_fake_node, node)
    thresholds = {"resolve_after_seconds": 2, "deployment_unavailable_seconds": 1, "node_not_ready_seconds": 0}
    replicas = Replicas(replica_settings(cluster, sandbox, thresholds=thresholds), sandbox, make_bus)
    alerts = Alerts(await make_bus("probe", registry_=CollectorRegistry()), cluster.namespace)
    await alerts.start()
    try:
        await asyncio.to_thread(wait_until, f"{node} Ready", lambda: cluster.node_ready(node), 60)
        for name, where in (("web", node), ("cart", await asyncio.to_thread(_other_node, cluster, node))):
            cluster.create_deployment(name, replicas=0)
            await asyncio.to_thread(_pin, cluster, name, where, 2)
        for name in ("web", "cart"):
            await asyncio.to_thread(
                wait_until,
                f"{name} rolled out",
                lambda n=name: cluster.rollout_complete(n) and cluster.running_pods(n, 2),
                120,
            )
        web_pods = sorted(p.metadata.name for p in cluster.pods("web"))
        await replicas.start()
        await asyncio.sleep(2.0)  # the watcher's first list is in its cache: what follows are changes

        await asyncio.to_thread(cluster.chaos, "nodedown", f"node/{node}")
        # the distractor: another workload of the namespace (on a healthy node) rolled out at the same time
        body: dict[str, Any] = {
            "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "registry.example/app:1.1"}]}}}
        }
        await asyncio.to_thread(cluster.apps.patch_namespaced_deployment, "cart", cluster.namespace, body)

        unready = await asyncio.to_thread(
            wait_until,
            "web's pods marked unready on the NotReady node",
            lambda: [p for p in cluster.pods("web") if not is_running_and_ready(p)] if _all_down(cluster) else None,
            60,
        )
        assert all(p.spec.node_name == node for p in unready)
        await alerts.wait("fired", "KubeDeploymentReplicasMismatch")
        (fired,) = [
            e for e in alerts.of("fired", "KubeDeploymentReplicasMismatch") if e.data["labels"]["deployment"] == "web"
        ]

        # The node's change may reach the timeline just after the alert: then a revision names it.
        found = await diagnoses.wait(
            lambda e, d: e.correlationid == fired.id and bool(d.causes) and d.causes[0].kind is CauseKind.NODE,
            timeout=60,
            what="the node as top cause of the web incident",
        )
    finally:
        await alerts.stop()
        await replicas.close()
        await asyncio.to_thread(cluster.heal, "nodedown", f"node/{node}")
        await asyncio.to_thread(cluster.core.delete_node, node)

    d = diagnosis(found)
    assert d.outcome is DiagnosisOutcome.EXPLAINED, d
    top = d.causes[0]
    assert top.target is not None and (top.target.kind, top.target.name) == ("Node", node), top
    assert top.suggested_action is ActionKind.CORDON_NODE, top
    assert top.scores.scope == 1.0, top  # every unready pod of web ran on that node
    changes = [e for e in top.evidence if e.kind is EvidenceKind.CHANGE]
    assert changes and any(node in (e.detail or "") for e in changes), top.evidence
    assert any("Ready" in (e.detail or "") for e in changes), top.evidence
    assert all(c.target is None or c.target.name != "cart" for c in d.causes), d
    assert set(web_pods) == {p.metadata.name for p in unready}
