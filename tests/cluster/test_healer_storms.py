"""Storms against the sandbox apiserver, real NATS JetStream and PostgreSQL: the healer through its wiring.

The test plays the watcher (it publishes the alerts a storm raises) and reads what the healer published and
what it changed in the cluster: every replica of a Deployment crashing is one incident with one workload
action, verified, then escalated once (naming the other pods) while it still crashes; a NotReady node under
100+ pods is one cordon and no pod deletion.
"""

# ruff: noqa: F401, F811 - `start_healer` is the fixture imported from the shared healer harness below

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from opsbus.common.bus import Bus
from opsbus.common.events import ObjectRef
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

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]
MakeBus = Callable[..., Awaitable[Bus]]
POLICIES = """
policies:
  - name: crashloop
    match: {alertname: KubePodCrashLooping}
    cooldown: 10m
    blast_radius: {max_pod_fraction: 0.34}
    ladder:
      - {action: delete_pod, params: {grace_period_seconds: 0}, verify: alert_resolved, timeout: 30s}
      - {action: rollout_restart, verify: workload_available, timeout: 20s}
  - name: node-not-ready
    match: {alertname: KubeNodeNotReady}
    blast_radius: {max_nodes: 5}
    approval: {required_for: [drain_node], expires_after: 10m}
    ladder:
      - {action: cordon_node, verify: alert_resolved, timeout: 5m}
      - {action: drain_node, params: {grace_period_seconds: 0}, verify: node_drained, timeout: 60s}
"""


def crashing(cluster: Cluster, app: str, count: int) -> list[Any] | None:
    pods = [
        p
        for p in cluster.pods(app)
        if (cs := container_status(p)) is not None
        and cs.state.waiting is not None
        and cs.state.waiting.reason == "CrashLoopBackOff"
    ]
    return pods if len(pods) == count else None


async def test_every_replica_crashing_is_one_restart_verified_then_one_escalation(
    cluster: Cluster, start_healer: StartHealer, make_bus: MakeBus
) -> None:
    cluster.create_deployment("web", replicas=3)
    await asyncio.to_thread(wait_until, "web rolled out", lambda: cluster.rollout_complete("web"), 120)
    # Every replica replaced at once (the default 25% surge would keep the old pods while one new pod crashes):
    # every pod of the new template crashes, and so does every pod a restart brings up.
    everyone = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": "100%"}}
    cluster.apps.patch_namespaced_deployment("web", cluster.namespace, {"spec": {"strategy": everyone}})
    await asyncio.to_thread(cluster.chaos, "crashloop", "deployment/web")
    pods = await asyncio.to_thread(wait_until, "3 web pods crash looping", lambda: crashing(cluster, "web", 3), 180)
    await start_healer(policies=POLICIES)
    bus = await make_bus("watcher")
    fired = [
        envelope(
            alert("KubePodCrashLooping", cluster.namespace, pod=p.metadata.name, workload="web"),
            ObjectRef(kind="Pod", namespace=cluster.namespace, name=p.metadata.name),
        )
        for p in pods
    ]
    for event in fired:
        await bus.publisher.publish(event)

    recovery = await wait_for_events(bus, "recovery.>", lambda es: "escalated" in types(es), 240)
    started = [e.data for e in recovery if e.type.endswith("started.v1")]
    assert [s["action"]["kind"] for s in started] == ["rollout_restart"], started  # one workload action
    target = started[0]["action"]["target"]
    assert (target["kind"], target["namespace"], target["name"]) == ("Deployment", cluster.namespace, "web")
    (failed,) = [e.data for e in recovery if e.type.endswith("failed.v1")]
    assert failed["verification"]["check"] == "workload_available" and not failed["verification"]["passed"]
    await asyncio.sleep(3)  # nothing more comes: one escalation for the incident
    recovery = await stream(bus, "recovery.>")
    (escalation,) = [e for e in recovery if e.type.endswith("escalated.v1")]
    escalated = escalation.data
    # The incident's lead is whichever alert took the planning lock first; the other two are its members.
    lead = escalation.object.name
    assert lead in {p.metadata.name for p in pods}, escalation.object
    others = sorted(p.metadata.name for p in pods if p.metadata.name != lead)
    named = re.search(r"2 other alerts escalate with it \(([^)]*)\)", escalated["reason"])
    assert named is not None and sorted(named.group(1).split(", ")) == others, escalated["reason"]
    audit = await stream(bus, "audit.recorded.>")
    joined = [e.data for e in audit if e.data["action"] == "recovery.group"]
    assert sorted(j["target"]["name"] for j in joined) == others  # no pod forgotten
    assert not [e for e in audit if e.data["action"] == "recovery.delete_pod"]  # no pod deleted
    assert len(cluster.pods("web")) == 3


async def test_a_not_ready_node_under_100_pods_is_one_cordon_and_no_pod_deletion(
    cluster: Cluster, start_healer: StartHealer, make_bus: MakeBus
) -> None:
    node = f"storm-{uuid.uuid4().hex[:6]}"
    cluster.create_fake_node(node)
    try:
        await asyncio.to_thread(
            wait_until,
            f"{node} Ready",
            lambda: any(c.type == "Ready" and c.status == "True" for c in (cluster.node(node).status.conditions or [])),
            60,
        )
        cluster.create_deployment("many", replicas=105)
        cluster.apps.patch_namespaced_deployment(
            "many", cluster.namespace, {"spec": {"template": {"spec": {"nodeName": node}}}}
        )
        pods = await asyncio.to_thread(
            wait_until, "105 pods running on the node", lambda: cluster.running_pods("many", 105), 240
        )
        assert {p.spec.node_name for p in pods} == {node}
        uids = {p.metadata.uid for p in pods}
        await asyncio.to_thread(cluster.chaos, "notready", f"node/{node}")
        await start_healer(policies=POLICIES)
        bus = await make_bus("watcher")
        await bus.publisher.publish(
            envelope(alert("KubeNodeNotReady", cluster.namespace, node=node), ObjectRef(kind="Node", name=node))
        )
        await asyncio.to_thread(wait_until, f"{node} cordoned", lambda: cluster.node(node).spec.unschedulable, 60)
        for p in pods:  # every pod on the node alerts (and its policy would delete it)
            a = alert("KubePodCrashLooping", cluster.namespace, pod=p.metadata.name, node=node, workload="many")
            await bus.publisher.publish(
                envelope(a, ObjectRef(kind="Pod", namespace=cluster.namespace, name=p.metadata.name))
            )
        audit = await wait_for_events(
            bus,
            "audit.recorded.>",
            lambda es: sum(e.data["action"] == "recovery.group" for e in es) >= 105,
            180,
        )
        joined = {e.data["details"]["incident"] for e in audit if e.data["action"] == "recovery.group"}
        assert len(joined) == 1  # all 105 in the node's incident
        await asyncio.sleep(3)
        recovery = await stream(bus, "recovery.>")
        started = [e.data["action"]["kind"] for e in recovery if e.type.endswith("started.v1")]
        assert started == ["cordon_node"]  # one cordon
        assert {p.metadata.uid for p in cluster.pods("many")} == uids  # no pod deleted
    finally:
        await asyncio.to_thread(cluster.sandbox, "heal", "notready", f"node/{node}")
        cluster.core.delete_node(node)
