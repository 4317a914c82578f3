"""StatefulSets on the sandbox: rolled out partition by partition, rolled back on request, and - the trap a
plain template revert falls into - rolled back after a crashing release with the stuck pod replaced."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from kubernetes import client

from opsbus.common.bus import Bus
from opsbus.common.events import Envelope, ObjectRef
from opsbus.common.events.payloads.common import WorkloadRef
from opsbus.common.events.payloads.deploy import (
    AnalysisSpec,
    DeployFailed,
    DeployFailureReason,
    DeployProgressed,
    DeployRequested,
    DeployRolledBack,
    DeploySucceeded,
    Strategy,
)
from opsbus.deployer.service import Deployer
from tests.cluster.kube import Cluster
from tests.cluster.test_deployer_checks import pod_check
from tests.cluster.test_deployer_rollouts import (
    CLUSTER,
    REQUESTER,
    DeployEvents,
    client_bus,
    deploy_events,
    deployer,
    prometheus,
    settings,
)

pytestmark = [pytest.mark.cluster, pytest.mark.integration]
__all__ = ["client_bus", "deploy_events", "deployer", "prometheus", "settings"]  # fixtures shared with rollouts


def create_statefulset(cluster: Cluster, name: str, replicas: int, image: str) -> None:
    labels = {"app": name}
    body = client.V1StatefulSet(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1StatefulSetSpec(
            replicas=replicas,
            service_name=name,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[client.V1Container(name="app", image=image)]),
            ),
        ),
    )
    cluster.apps.create_namespaced_stateful_set(cluster.namespace, body)


def pods_state(cluster: Cluster, app: str) -> list[tuple[str, str, bool]]:
    """(name, image, ready) of the app's live pods, by name."""
    out: list[tuple[str, str, bool]] = []
    for p in cluster.pods(app):
        ready = any(c.type == "Ready" and c.status == "True" for c in (p.status.conditions or []))
        out.append((p.metadata.name, p.spec.containers[0].image, ready))
    return sorted(out)


async def settled(cluster: Cluster, app: str, image: str, replicas: int, timeout: float = 90) -> None:
    want = [(f"{app}-{i}", image, True) for i in range(replicas)]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.to_thread(pods_state, cluster, app) == want:
            return
        await asyncio.sleep(0.5)
    pytest.fail(f"{app}: pods {pods_state(cluster, app)}, wanted {want}")


def sts_request(cluster: Cluster, name: str, **fields: Any) -> Envelope:
    payload = DeployRequested(
        cluster=CLUSTER,
        workload=WorkloadRef(kind="StatefulSet", namespace=cluster.namespace, name=name),
        requester=REQUESTER,
        **fields,
    )
    obj = ObjectRef(kind="StatefulSet", namespace=cluster.namespace, name=name)
    return Envelope.build(payload, service="gateway", cluster=CLUSTER, obj=obj)


async def test_statefulset_rolls_out_one_ordinal_at_a_time_then_rolls_back_on_request(
    cluster: Cluster, deployer: Deployer, client_bus: Bus, deploy_events: DeployEvents
) -> None:
    create_statefulset(cluster, "db", 3, "registry.example/db:1")
    await settled(cluster, "db", "registry.example/db:1", 3)
    request = sts_request(cluster, "db", strategy=Strategy.ROLLING, images={"app": "registry.example/db:2"})
    await client_bus.publisher.publish(request)
    done = (await deploy_events.wait(request.id, DeploySucceeded, timeout=120)).payload_as(DeploySucceeded)
    await settled(cluster, "db", "registry.example/db:2", 3)
    messages = [
        str(e.payload_as(DeployProgressed).message)
        for e in deploy_events.for_request(request.id)
        if isinstance(e.payload(), DeployProgressed)
    ]
    assert any("lowering it to 1" in m for m in messages) and any("lowering it to 0" in m for m in messages)
    sts: Any = cluster.apps.read_namespaced_stateful_set("db", cluster.namespace)
    assert sts.spec.update_strategy.rolling_update.partition == 0
    assert done.revision == 2 and done.replicas is not None and done.replicas.available == 3

    back = sts_request(cluster, "db", strategy=Strategy.ROLLBACK)
    await client_bus.publisher.publish(back)
    rolled = (await deploy_events.wait(back.id, DeployRolledBack, timeout=120)).payload_as(DeployRolledBack)
    assert not rolled.automatic and rolled.from_revision == 2
    await settled(cluster, "db", "registry.example/db:1", 3)


async def test_crashing_statefulset_release_rolls_back_and_the_stuck_pod_is_replaced(
    cluster: Cluster, deployer: Deployer, client_bus: Bus, deploy_events: DeployEvents
) -> None:
    create_statefulset(cluster, "cache", 3, "registry.example/cache:1")
    await settled(cluster, "cache", "registry.example/cache:1", 3)
    template = {
        "metadata": {"labels": {"app": "cache", "opsbus.io/chaos": "crashloop"}},
        "spec": {"containers": [{"name": "app", "image": "registry.example/cache:2-crashes"}]},
    }
    manifest = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "cache"},
        "spec": {"template": template},
    }
    analysis = AnalysisSpec.model_validate({"metrics": [pod_check("restarts", "restarts", inconclusive_limit=2)]})
    request = sts_request(
        cluster,
        "cache",
        strategy=Strategy.ROLLING,
        manifest=manifest,
        analysis=analysis,
        progress_deadline_seconds=600,  # a plain template revert would sit this long on the stuck pod
    )
    began = time.monotonic()
    await client_bus.publisher.publish(request)
    failed = (await deploy_events.wait(request.id, DeployFailed, timeout=90)).payload_as(DeployFailed)
    assert failed.reason is DeployFailureReason.ANALYSIS_FAILED and failed.rollback_pending
    await deploy_events.wait(request.id, DeployRolledBack, timeout=120)
    took = time.monotonic() - began
    await settled(cluster, "cache", "registry.example/cache:1", 3)
    labels = {p.metadata.name: p.metadata.labels for p in cluster.pods("cache")}
    assert not any("opsbus.io/chaos" in (lab or {}) for lab in labels.values())
    print(f"\ncrashing StatefulSet release rolled back, stuck pod replaced, in {took:.1f}s (deadline 600s)")
