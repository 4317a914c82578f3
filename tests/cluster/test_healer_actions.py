"""Each workload action of the healer through its real executor against the sandbox apiserver (real NATS
and PostgreSQL), and an OOMKilled scenario end to end.

The test plays the watcher: it publishes `alert.fired` (and `alert.resolved` once the cluster shows the
fault gone) and reads what the healer published and what it changed in the cluster.
"""

# ruff: noqa: F401, F811 - `start_healer` is the fixture imported from the shared healer harness below

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes import client

from opsbus.common.bus import Bus
from opsbus.common.events import ObjectRef
from opsbus.common.events.payloads import AlertResolved
from opsbus.healer.cluster import RESTARTED_AT
from tests.cluster.kube import Cluster, container_status, wait_until
from tests.cluster.test_healer_remediation import (
    StartHealer,
    alert,
    envelope,
    start_healer,
    stream,
    types,
    wait_for_events,
)

pytestmark = pytest.mark.cluster
MiB = 1024 * 1024

POLICIES = """
policies:
  - name: restart
    match: {alertname: RolloutStuck}
    ladder:
      - {action: rollout_restart, verify: workload_available, timeout: 90s}
  - name: scale-out
    match: {alertname: CapacityLow}
    ladder:
      - {action: scale, params: {replicas: 3}, verify: workload_available, timeout: 90s}
  - name: oom
    match: {alertname: KubeContainerOOMKilled}
    cooldown: 0s
    max_attempts: 3
    ladder:
      - action: raise_memory_limit
        params: {factor: 1.5, ceiling_bytes: 83886080}  # 80 MiB: 64 MiB x 1.5 = 96 MiB is capped
        verify: alert_resolved
        timeout: 120s
  - name: failed-pods
    match: {alertname: KubePodsFailed}
    ladder:
      - {action: delete_failed_pods, verify: no_failed_pods, timeout: 60s}
"""

MakeBus = Callable[..., Awaitable[Bus]]


def deployment_with_limit(cluster: Cluster, name: str, replicas: int, memory: str) -> Any:
    labels = {"app": name}
    container = client.V1Container(
        name="app",
        image="registry.example/app:1.0",
        resources=client.V1ResourceRequirements(limits={"memory": memory}, requests={"memory": memory}),
    )
    body = client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels), spec=client.V1PodSpec(containers=[container])
            ),
        ),
    )
    return cluster.apps.create_namespaced_deployment(cluster.namespace, body)


def memory_limit(d: Any) -> str:
    return str(d.spec.template.spec.containers[0].resources.limits["memory"])


async def ready(cluster: Cluster, app: str, count: int) -> list[Any]:
    pods: list[Any] = await asyncio.to_thread(
        wait_until, f"{count} {app} pods running", lambda: cluster.running_pods(app, count), 120
    )
    return pods


def deployment_alert(cluster: Cluster, name: str, workload: str) -> Any:
    return envelope(
        alert(name, cluster.namespace, workload=workload),
        ObjectRef(kind="Deployment", namespace=cluster.namespace, name=workload),
    )


async def succeeded(bus: Bus, rid: str | None = None) -> dict[str, Any]:
    events = await wait_for_events(bus, "recovery.>", lambda es: "succeeded" in types(es, rid), 150)
    return next(e.data for e in events if e.type.endswith("succeeded.v1"))


async def test_rollout_restart_restarts_the_workload_once_and_verifies_it_available(
    cluster: Cluster, start_healer: StartHealer, make_bus: MakeBus
) -> None:
    cluster.create_deployment("web", replicas=2)
    before = {p.metadata.uid for p in await ready(cluster, "web", 2)}
    generation = cluster.deployment("web").metadata.generation
    await start_healer(policies=POLICIES)
    bus = await make_bus("watcher")
    await bus.publisher.publish(deployment_alert(cluster, "RolloutStuck", "web"))
    done = await succeeded(bus)
    assert done["action"]["kind"] == "rollout_restart"
    assert done["verification"] == {**done["verification"], "passed": True, "check": "workload_available"}
    d = cluster.deployment("web")
    assert RESTARTED_AT in (d.spec.template.metadata.annotations or {})
    assert d.metadata.generation == generation + 1  # one template change, not two
    after = await ready(cluster, "web", 2)
    assert before.isdisjoint(p.metadata.uid for p in after)  # every pod replaced by the restart
    assert types(await stream(bus, "recovery.>")) == ["planned", "started", "succeeded"]


async def test_scale_sets_the_replicas_and_waits_for_them(
    cluster: Cluster, start_healer: StartHealer, make_bus: MakeBus
) -> None:
    cluster.create_deployment("api", replicas=1)
    await ready(cluster, "api", 1)
    await start_healer(policies=POLICIES)
    bus = await make_bus("watcher")
    await bus.publisher.publish(deployment_alert(cluster, "CapacityLow", "api"))
    done = await succeeded(bus)
    assert done["action"]["kind"] == "scale" and done["action"]["parameters"]["replicas"] == 3
    assert "3/3 available" in done["verification"]["observed"]
    assert cluster.deployment("api").spec.replicas == 3
    await ready(cluster, "api", 3)


async def test_oomkilled_container_gets_a_bounded_memory_raise_and_the_alert_resolves(
    cluster: Cluster, start_healer: StartHealer, make_bus: MakeBus
) -> None:
    deployment_with_limit(cluster, "mem", 1, "64Mi")
    (pod,) = await ready(cluster, "mem", 1)
    name = pod.metadata.name
    await asyncio.to_thread(cluster.chaos, "oomkilled", f"pod/{name}")

    def oom_killed() -> Any:
        cs = container_status(cluster.pod(name))
        last = cs.last_state.terminated if cs is not None and cs.last_state else None
        return last if last is not None and last.reason == "OOMKilled" else None

    await asyncio.to_thread(wait_until, f"{name} OOMKilled", oom_killed, 90)
    await start_healer(policies=POLICIES)
    bus = await make_bus("watcher")
    fired = alert("KubeContainerOOMKilled", cluster.namespace, pod=name, workload="mem")
    obj = ObjectRef(kind="Pod", namespace=cluster.namespace, name=name)
    first = envelope(fired, obj)
    await bus.publisher.publish(first)

    # The raise is applied, capped at the ceiling (64 MiB x 1.5 = 96 MiB > 80 MiB).
    raised = await asyncio.to_thread(
        wait_until,
        "memory limit raised",
        lambda: d if memory_limit(d := cluster.deployment("mem")) != "64Mi" else None,
        60,
    )
    assert int(memory_limit(raised)) == 80 * MiB
    # The new pod, with the new limit, runs without OOM kills: as the watcher would, resolve the alert.
    (new_pod,) = await asyncio.to_thread(
        wait_until,
        "a new pod with the raised limit running",
        lambda: [p for p in cluster.running_pods("mem", 1) or [] if p.metadata.name != name] or None,
        120,
    )
    assert new_pod.spec.containers[0].resources.limits["memory"] == str(80 * MiB)
    resolved = AlertResolved(
        **fired.model_dump(exclude={"ends_at"}), ends_at=datetime.now(UTC), resolution="no OOM kill since the raise"
    )
    await bus.publisher.publish(envelope(resolved, obj))
    done = await succeeded(bus)
    assert done["action"]["parameters"] == {
        **done["action"]["parameters"],
        "from_bytes": 64 * MiB,
        "to_bytes": 80 * MiB,
    }
    assert done["verification"]["passed"] is True and done["verification"]["observed"] == "alert resolved"

    # It OOMs again at the ceiling: the bound holds, nothing is raised, humans are called.
    again = alert("KubeContainerOOMKilled", cluster.namespace, pod=new_pod.metadata.name, workload="mem")
    await bus.publisher.publish(envelope(again, ObjectRef(kind="Pod", namespace=cluster.namespace, name=name)))
    events = await wait_for_events(bus, "recovery.>", lambda es: "escalated" in types(es), 60)
    escalated = next(e.data for e in events if e.type.endswith("escalated.v1"))
    assert "already at the ceiling" in escalated["reason"]
    assert int(memory_limit(cluster.deployment("mem"))) == 80 * MiB
    assert types(events).count("started") == 1


async def test_delete_failed_pods_removes_only_failed_pods(
    cluster: Cluster, start_healer: StartHealer, make_bus: MakeBus
) -> None:
    # Pods kwok leaves alone (a chaos label no stage selects), marked Failed as a kubelet would.
    for i in range(3):
        body = client.V1Pod(
            metadata=client.V1ObjectMeta(name=f"batch-{i}", labels={"app": "batch", "opsbus.io/chaos": "held"}),
            spec=client.V1PodSpec(
                containers=[client.V1Container(name="app", image="registry.example/batch:1")], restart_policy="Never"
            ),
        )
        cluster.core.create_namespaced_pod(cluster.namespace, body)
    for i in range(2):
        cluster.core.patch_namespaced_pod_status(
            f"batch-{i}", cluster.namespace, {"status": {"phase": "Failed", "reason": "Error"}}
        )
    cluster.create_deployment("keep", replicas=1)
    (keep,) = await ready(cluster, "keep", 1)
    await start_healer(policies=POLICIES)
    bus = await make_bus("watcher")
    fired = alert("KubePodsFailed", cluster.namespace)
    fired = fired.model_copy(update={"labels": {**fired.labels, "namespace": cluster.namespace}})
    await bus.publisher.publish(envelope(fired, ObjectRef(kind="Namespace", name=cluster.namespace)))
    done = await succeeded(bus)
    assert done["action"]["kind"] == "delete_failed_pods"
    assert done["verification"]["observed"] == "0 failed pods left"
    left: list[Any] = cluster.core.list_namespaced_pod(cluster.namespace).items
    names = {p.metadata.name for p in left}
    assert "batch-0" not in names and "batch-1" not in names
    assert "batch-2" in names  # not failed: untouched
    assert keep.metadata.name in names
