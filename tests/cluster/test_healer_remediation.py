"""The healer against the sandbox apiserver, real NATS JetStream and real PostgreSQL.

The healer runs in-process through its real wiring (`opsbus.healer.service.setup` inside a `Runtime`); the
test plays the watcher (publishes `alert.fired`/`alert.resolved`) and reads what the healer published from
the RECOVERY and AUDIT streams, and what it did from the cluster.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from opsbus.common.bus import Bus
from opsbus.common.events import Envelope, ObjectRef
from opsbus.common.events.payloads import (
    AlertAnnotations,
    AlertFired,
    AlertResolved,
    AlertSource,
    Severity,
    WorkloadRef,
)
from opsbus.common.rpc import call
from opsbus.common.runtime import Runtime
from opsbus.common.settings import DatabaseSettings
from opsbus.common.store import upgrade
from opsbus.healer import api
from opsbus.healer.settings import HealerSettings
from opsbus.healer.store import MIGRATIONS, SCHEMA
from tests.cluster.conftest import SandboxHandle
from tests.cluster.kube import Cluster, container_status, wait_until

pytestmark = pytest.mark.cluster
CLUSTER = "sandbox"

POLICY = """
policies:
  - name: crashloop
    match: {alertname: KubePodCrashLooping}
    dry_run: {dry_run}
    ladder:
      - {action: delete_pod, params: {grace_period_seconds: 0}, verify: pod_replaced, timeout: 60s}
  - name: node
    match: {alertname: KubeNodeNotReady}
    blast_radius: {max_nodes: 5}
    approval: {required_for: [drain_node], expires_after: 10m}
    ladder:
      - {action: cordon_node, verify: node_cordoned, timeout: 30s}
      - {action: drain_node, params: {grace_period_seconds: 0}, verify: node_drained, timeout: 60s}
  - name: drain-now
    match: {alertname: NodeDrainRequested}
    cooldown: 0s  # the cordon just before would otherwise (rightly) hold it back
    blast_radius: {max_nodes: 5}
    approval: {required_for: [drain_node], expires_after: 10m}
    ladder:
      - {action: drain_node, params: {grace_period_seconds: 0}, verify: node_drained, timeout: 60s}
"""

StartHealer = Callable[..., Awaitable[Runtime[HealerSettings]]]


@pytest.fixture
async def start_healer(
    database_url: str, nats_url: str, sandbox: SandboxHandle, tmp_path: Path
) -> AsyncIterator[StartHealer]:
    from opsbus.healer.service import setup  # noqa: PLC0415

    await upgrade(DatabaseSettings.model_validate({"url": database_url}), MIGRATIONS, SCHEMA)
    runs: list[tuple[Runtime[HealerSettings], asyncio.Task[int]]] = []

    async def start(
        *, dry_run: bool = False, policies: str = POLICY, options: dict[str, Any] | None = None
    ) -> Runtime[HealerSettings]:
        policy = tmp_path / f"policies-{len(runs)}.yaml"
        policy.write_text(policies.replace("{dry_run}", "false"))
        settings = HealerSettings.model_validate(
            {
                "cluster": CLUSTER,
                "nats": {"url": nats_url},
                "database": {"url": database_url},
                "http": {"port": 0},
                "shutdown_grace_seconds": 5,
                "healer": {
                    "policy_file": str(policy),
                    "kubeconfig": str(sandbox.kubeconfig),
                    "dry_run": dry_run,
                    "protected_namespaces": ["kube-system", "protected-ns"],
                    **(options or {}),
                },
            }
        )
        rt = Runtime("healer", settings)

        async def wired(r: Runtime[HealerSettings]) -> None:
            await setup(r)

        task = asyncio.create_task(rt.run(wired, install_signals=False), name="healer-under-test")
        runs.append((rt, task))
        deadline = time.monotonic() + 30
        while not rt._ready:
            if task.done():
                await task
            assert time.monotonic() < deadline, "healer did not become ready"
            await asyncio.sleep(0.05)
        return rt

    yield start
    for rt, task in runs:
        if not task.done():
            rt.request_shutdown()
        await asyncio.wait_for(task, 30)


def alert(
    name: str, ns: str, *, pod: str | None = None, node: str | None = None, workload: str | None = None
) -> AlertFired:
    labels = {"alertname": name, "cluster": CLUSTER, "severity": "critical"}
    if pod:
        labels.update(namespace=ns, pod=pod, container="app")
    if node:
        labels["node"] = node
    return AlertFired(
        fingerprint=uuid.uuid4().hex[:16],
        alertname=name,
        severity=Severity.CRITICAL,
        labels=labels,
        annotations=AlertAnnotations(summary=f"{name} in the sandbox"),
        starts_at=datetime.now(UTC) - timedelta(seconds=30),
        source=AlertSource.WATCHER,
        workload=WorkloadRef(kind="Deployment", namespace=ns, name=workload) if workload else None,
    )


def envelope(payload: AlertFired | AlertResolved, obj: ObjectRef, *, at: datetime | None = None) -> Envelope:
    return Envelope.build(payload, service="watcher", cluster=CLUSTER, obj=obj, time=at)


async def stream(bus: Bus, subject: str) -> list[Envelope]:
    """Every event stored on `subject` so far (an ephemeral consumer reads the stream from the start)."""
    sub = await bus.js.pull_subscribe(subject, durable=None)
    out: list[Envelope] = []
    try:
        while True:
            try:
                msgs = await sub.fetch(100, timeout=0.5)
            except Exception:
                break
            for m in msgs:
                out.append(Envelope.from_json(m.data))
                await m.ack()
    finally:
        await sub.unsubscribe()
    return out


async def wait_for_events(
    bus: Bus, subject: str, pred: Callable[[list[Envelope]], bool], timeout: float
) -> list[Envelope]:
    deadline = time.monotonic() + timeout
    while True:
        events = await stream(bus, subject)
        if pred(events):
            return events
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting on {subject}; saw {[(e.type, e.data.get('reason')) for e in events]}")
        await asyncio.sleep(0.5)


def types(events: list[Envelope], rid: str | None = None) -> list[str]:
    return [e.type.split(".")[3] for e in events if rid is None or e.data.get("recovery_id") == rid]


async def crashlooping_pod(cluster: Cluster, app: str) -> Any:
    cluster.create_deployment(app, replicas=1)
    pods = await asyncio.to_thread(wait_until, f"{app} running", lambda: cluster.running_pods(app, 1), 120)
    name = pods[0].metadata.name
    await asyncio.to_thread(cluster.chaos, "crashloop", f"pod/{name}")

    def looping() -> Any:
        p = cluster.pod(name)
        cs = container_status(p)
        return (
            p
            if cs is not None and cs.state.waiting is not None and cs.state.waiting.reason == "CrashLoopBackOff"
            else None
        )

    return await asyncio.to_thread(wait_until, f"{name} crash looping", looping, 90)


async def test_crashlooping_pod_is_deleted_replaced_and_recorded(
    cluster: Cluster, start_healer: StartHealer, make_bus: Callable[..., Awaitable[Bus]]
) -> None:
    pod = await crashlooping_pod(cluster, "web")
    await start_healer()
    bus = await make_bus("watcher")
    event = envelope(
        alert("KubePodCrashLooping", cluster.namespace, pod=pod.metadata.name, workload="web"),
        ObjectRef(kind="Pod", namespace=cluster.namespace, name=pod.metadata.name),
    )
    t0 = time.monotonic()
    await bus.publisher.publish(event)

    def replaced() -> Any:
        pods = cluster.pods("web")
        return pods if pods and all(p.metadata.uid != pod.metadata.uid for p in pods) else None

    new = await asyncio.to_thread(wait_until, "the crash-looping pod replaced by its ReplicaSet", replaced, 60)
    applied = time.monotonic() - t0
    assert new[0].metadata.name != pod.metadata.name
    recovery = await wait_for_events(bus, "recovery.>", lambda es: "succeeded" in types(es), 90)
    assert types(recovery) == ["planned", "started", "succeeded"]
    assert {e.correlationid for e in recovery} == {event.id}
    done = recovery[-1].data
    assert done["action"]["kind"] == "delete_pod" and done["verification"]["passed"] is True
    audit = await wait_for_events(
        bus, "audit.recorded.>", lambda es: any(e.data["outcome"] == "executed" for e in es), 30
    )
    executed = [e.data for e in audit if e.data["outcome"] == "executed"]
    assert executed[0]["action"] == "recovery.delete_pod"
    assert executed[0]["target"]["name"] == pod.metadata.name
    print(f"alert.fired -> pod deleted and replaced: {applied:.2f}s")


async def test_alert_resolved_before_execution_is_not_acted_on(
    cluster: Cluster, start_healer: StartHealer, make_bus: Callable[..., Awaitable[Bus]], database_url: str
) -> None:
    pod = await crashlooping_pod(cluster, "api")
    rt = await start_healer()
    bus = await make_bus("watcher")
    fired = alert("KubePodCrashLooping", cluster.namespace, pod=pod.metadata.name, workload="api")
    obj = ObjectRef(kind="Pod", namespace=cluster.namespace, name=pod.metadata.name)
    at = datetime.now(UTC)
    resolved = AlertResolved(**fired.model_dump(exclude={"ends_at"}), ends_at=at, resolution="condition cleared")
    # The backlog case: the resolution is known when the (older) fired event is handled.
    await bus.publisher.publish(envelope(resolved, obj, at=at))
    await asyncio.sleep(2.0)
    await bus.publisher.publish(envelope(fired, obj, at=at - timedelta(seconds=5)))
    audit = await wait_for_events(
        bus, "audit.recorded.>", lambda es: any(e.data["outcome"] == "skipped" for e in es), 30
    )
    skipped = next(e.data for e in audit if e.data["outcome"] == "skipped")
    assert "resolved before execution" in skipped["reason"]
    assert skipped["details"]["guard"] == "alert_firing"
    assert cluster.pod(pod.metadata.name).metadata.uid == pod.metadata.uid  # untouched
    assert "started" not in types(await stream(bus, "recovery.>"))
    assert rt.settings.healer.dry_run is False


async def test_a_crashing_pod_of_a_rollouts_canary_is_left_to_the_deployer(
    cluster: Cluster, start_healer: StartHealer, make_bus: Callable[..., Awaitable[Bus]]
) -> None:
    pod = await crashlooping_pod(cluster, "pay-canary")
    # what the deployer puts on a canary's pods (and on its `<name>-canary` Deployment)
    cluster.core.patch_namespaced_pod(
        pod.metadata.name, cluster.namespace, {"metadata": {"labels": {"opsbus.io/canary": "true"}}}
    )
    await start_healer()
    bus = await make_bus("watcher")
    obj = ObjectRef(kind="Pod", namespace=cluster.namespace, name=pod.metadata.name)
    fired = alert("KubePodCrashLooping", cluster.namespace, pod=pod.metadata.name, workload="pay-canary")
    await bus.publisher.publish(envelope(fired, obj))
    audit = await wait_for_events(
        bus, "audit.recorded.>", lambda es: any(e.data["outcome"] == "skipped" for e in es), 30
    )
    skipped = next(e.data for e in audit if e.data["outcome"] == "skipped")
    assert skipped["details"]["guard"] == "rollout", skipped
    assert "the canary" in skipped["reason"] and "deployer" in skipped["reason"], skipped
    await asyncio.sleep(2)
    assert cluster.pod(pod.metadata.name).metadata.uid == pod.metadata.uid  # untouched
    assert "started" not in types(await stream(bus, "recovery.>"))


async def test_dry_run_changes_nothing_and_records_the_plan(
    cluster: Cluster, start_healer: StartHealer, make_bus: Callable[..., Awaitable[Bus]]
) -> None:
    pod = await crashlooping_pod(cluster, "dry")
    await start_healer(dry_run=True)
    bus = await make_bus("watcher")
    obj = ObjectRef(kind="Pod", namespace=cluster.namespace, name=pod.metadata.name)
    await bus.publisher.publish(
        envelope(alert("KubePodCrashLooping", cluster.namespace, pod=pod.metadata.name, workload="dry"), obj)
    )
    recovery = await wait_for_events(bus, "recovery.>", lambda es: "planned" in types(es), 30)
    planned = recovery[0].data
    assert planned["dry_run"] is True and planned["action"]["kind"] == "delete_pod"
    audit = await wait_for_events(bus, "audit.recorded.>", bool, 30)
    assert audit[0].data["outcome"] == "dry_run"
    await asyncio.sleep(3)
    assert cluster.pod(pod.metadata.name).metadata.uid == pod.metadata.uid
    assert types(await stream(bus, "recovery.>")) == ["planned"]


async def test_not_ready_node_is_cordoned_and_drain_waits_for_approval_then_respects_the_pdb(
    cluster: Cluster, start_healer: StartHealer, make_bus: Callable[..., Awaitable[Bus]]
) -> None:
    node = f"healer-{uuid.uuid4().hex[:6]}"
    cluster.create_fake_node(node)
    try:
        await asyncio.to_thread(
            wait_until,
            f"{node} Ready",
            lambda: any(c.type == "Ready" and c.status == "True" for c in (cluster.node(node).status.conditions or [])),
            60,
        )
        for i in range(2):
            cluster.create_pod(f"on-{i}", node=node)
            cluster.core.patch_namespaced_pod(
                f"on-{i}", cluster.namespace, {"metadata": {"labels": {"app": "drainme"}}}
            )
        await asyncio.to_thread(wait_until, "pods running on the node", lambda: len(cluster.pods("drainme")) == 2, 60)
        pdb = client.V1PodDisruptionBudget(
            metadata=client.V1ObjectMeta(name="keep-one"),
            spec=client.V1PodDisruptionBudgetSpec(
                min_available=1, selector=client.V1LabelSelector(match_labels={"app": "drainme"})
            ),
        )
        client.PolicyV1Api(cluster.api).create_namespaced_pod_disruption_budget(cluster.namespace, pdb)
        await asyncio.to_thread(cluster.chaos, "notready", f"node/{node}")
        await start_healer()
        bus = await make_bus("watcher")
        nobj = ObjectRef(kind="Node", name=node)
        await bus.publisher.publish(envelope(alert("KubeNodeNotReady", cluster.namespace, node=node), nobj))
        await asyncio.to_thread(wait_until, f"{node} cordoned", lambda: cluster.node(node).spec.unschedulable, 60)
        # Drain on its own alert: planned with an approval request, nothing evicted yet.
        await bus.publisher.publish(envelope(alert("NodeDrainRequested", cluster.namespace, node=node), nobj))
        events = await wait_for_events(bus, "recovery.>", lambda es: any(e.data.get("approval") for e in es), 60)
        ask = next(e.data for e in events if e.data.get("approval"))
        assert ask["action"]["kind"] == "drain_node"
        pending = await call(bus.nc, "healer", "list_pending", api.ListPendingRequest(), api.PendingList)
        assert [(p.recovery_id, p.step) for p in pending.items] == [(ask["recovery_id"], 1)]
        await asyncio.sleep(2)
        assert len(cluster.pods("drainme")) == 2
        answer = await call(
            bus.nc,
            "healer",
            "approve",
            api.ApproveRequest(recovery_id=ask["recovery_id"], step=1, approver="alice", comment="go"),
            api.ApprovalAnswer,
        )
        assert answer.status == "approved"
        # The PDB lets one pod go; the other stays until the budget allows it.
        await asyncio.to_thread(wait_until, "one pod evicted", lambda: len(cluster.pods("drainme")) == 1, 60)
        await asyncio.sleep(3)
        assert len(cluster.pods("drainme")) == 1
        types_seen = types(await stream(bus, "recovery.>"), ask["recovery_id"])
        assert types_seen[:3] == ["planned", "approved", "started"]
    finally:
        await asyncio.to_thread(cluster.sandbox, "heal", "notready", f"node/{node}")
        cluster.core.delete_node(node)
