"""The watcher against the sandbox apiserver and a real nats-server: a chaos fault produces exactly one
`alert.fired` with the right labels and evidence within seconds, and `alert.resolved` after it is healed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from kubernetes import client
from nats.js.api import DeliverPolicy
from prometheus_client import CollectorRegistry

from opsbus.common.bus import Bus
from opsbus.common.events import Envelope
from opsbus.common.events.payloads.alert import AlertFired, AlertResolved
from opsbus.watcher.service import Watcher, start
from opsbus.watcher.settings import WatcherSettings
from opsbus.watcher.watching import KubeClient
from tests.cluster.conftest import SandboxHandle
from tests.cluster.kube import Cluster, container_status, is_running_and_ready, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.integration]

MakeBus = Callable[..., Awaitable[Bus]]
CLUSTER = "sandbox"
FIRE_TIMEOUT_S = 60


class StreamEvents:
    """Every event of one family on the bus for one namespace, read back from its stream from the start."""

    family, stream = "alert.*", "ALERT"

    def __init__(self, bus: Bus, namespace: str) -> None:
        self.bus = bus
        self.namespace = namespace
        self.events: list[Envelope] = []
        self._sub: Any = None

    async def start(self) -> None:
        self._sub = await self.bus.js.subscribe(
            f"{self.family}.{CLUSTER}.{self.namespace}",
            stream=self.stream,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.ALL,
            cb=self._on,
        )

    async def _on(self, msg: Any) -> None:
        self.events.append(Envelope.from_json(msg.data))

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()


class Alerts(StreamEvents):
    """Every alert event on the bus for one namespace, read back from the ALERT stream."""

    def of(self, verb: str, alertname: str) -> list[Envelope]:
        return [e for e in self.events if e.verb == verb and e.data.get("alertname") == alertname]

    async def wait(self, verb: str, alertname: str, timeout: float = FIRE_TIMEOUT_S) -> Envelope:
        deadline = time.monotonic() + timeout
        while not self.of(verb, alertname):
            if time.monotonic() > deadline:
                seen = [(e.type, e.data.get("alertname"), e.subject) for e in self.events]
                pytest.fail(f"no alert.{verb} {alertname} within {timeout:.0f}s; seen {seen}")
            await asyncio.sleep(0.05)
        return self.of(verb, alertname)[0]


@pytest.fixture
async def watched(cluster: Cluster, sandbox: SandboxHandle, make_bus: MakeBus) -> AsyncIterator[tuple[Watcher, Alerts]]:
    bus = await make_bus("watcher")
    await bus.ensure_streams()
    settings = WatcherSettings(
        cluster=CLUSTER,
        watcher={
            "kubeconfig": str(sandbox.kubeconfig),
            "namespaces": [cluster.namespace],
            "log_timeout_seconds": 1.0,
            "thresholds": {
                "resolve_after_seconds": 2,
                "oom_recent_seconds": 5,
                "pending_unschedulable_seconds": 1,
                "replicas_mismatch_seconds": 1,
            },
        },
    )
    kube = KubeClient.from_config(str(sandbox.kubeconfig))
    watcher = await start(settings, bus, kube, CollectorRegistry())
    alerts = Alerts(bus, cluster.namespace)
    await alerts.start()
    try:
        yield watcher, alerts
    finally:
        await alerts.stop()
        await watcher.stop()
        await kube.close()


async def _running_pod(cluster: Cluster, name: str) -> Any:
    cluster.create_deployment(name, replicas=1)
    pods = await asyncio.to_thread(wait_until, f"{name} running", lambda: cluster.running_pods(name, 1), 120)
    return pods[0]


@pytest.mark.parametrize(
    ("fault", "alertname", "last_reason"),
    [("crashloop", "KubePodCrashLooping", "Error"), ("oomkilled", "KubeContainerOOMKilled", "OOMKilled")],
)
async def test_container_fault_fires_once_with_evidence_and_resolves_on_heal(
    cluster: Cluster, watched: tuple[Watcher, Alerts], fault: str, alertname: str, last_reason: str
) -> None:
    _, alerts = watched
    pod = await _running_pod(cluster, "web")
    name = pod.metadata.name

    await asyncio.to_thread(cluster.chaos, fault, f"pod/{name}")
    switched_on = time.monotonic()
    fired = await alerts.wait("fired", alertname)
    took = time.monotonic() - switched_on
    payload = fired.payload_as(AlertFired)
    assert fired.subject == f"Pod/{cluster.namespace}/{name}"
    assert fired.nats_subject() == f"alert.fired.{CLUSTER}.{cluster.namespace}"
    assert payload.labels["namespace"] == cluster.namespace
    assert payload.labels["pod"] == name
    assert payload.labels["container"] == "app"
    assert payload.labels["workload"] == "web"
    assert payload.labels["cluster"] == CLUSTER
    assert payload.workload is not None and payload.workload.kind == "Deployment"
    app = next(c for c in payload.evidence.containers if c.name == "app")
    assert app.last_termination_reason == last_reason
    assert app.restart_count >= 1
    # kwok serves no logs: the alert says so instead of failing or waiting
    assert payload.evidence.logs == ()
    assert "logs" in payload.annotations.extra
    print(f"{fault}: chaos on -> alert.fired in {took:.2f}s")

    await asyncio.to_thread(cluster.heal, fault, f"pod/{name}")
    resolved = (await alerts.wait("resolved", alertname, timeout=90)).payload_as(AlertResolved)
    assert resolved.fingerprint == payload.fingerprint
    assert resolved.resolution == "condition cleared"
    await asyncio.sleep(1.0)
    assert len(alerts.of("fired", alertname)) == 1, "fired more than once"
    assert len(alerts.of("resolved", alertname)) == 1
    others = {e.data.get("alertname") for e in alerts.events} - {alertname}
    assert not others, f"one fault, one alert: also got {others}"


async def test_pod_deleted_while_firing_resolves(cluster: Cluster, watched: tuple[Watcher, Alerts]) -> None:
    _, alerts = watched
    cluster.create_pod("lonely")
    await asyncio.to_thread(
        wait_until, "pod running", lambda: (p := cluster.pod("lonely")) and is_running_and_ready(p) and p, 120
    )
    await asyncio.to_thread(cluster.chaos, "crashloop", "pod/lonely")
    fired = await alerts.wait("fired", "KubePodCrashLooping")
    cluster.core.delete_namespaced_pod("lonely", cluster.namespace, grace_period_seconds=0)
    resolved = (await alerts.wait("resolved", "KubePodCrashLooping", timeout=60)).payload_as(AlertResolved)
    assert resolved.fingerprint == fired.data["fingerprint"]
    assert resolved.resolution == "object deleted"


async def test_node_not_ready_fires_and_resolves(cluster: Cluster, watched: tuple[Watcher, Alerts]) -> None:
    watcher, _ = watched
    node = f"wn-{cluster.namespace[-6:]}"
    cluster.create_fake_node(node)
    bus_alerts = Alerts(watched[1].bus, "_")
    await bus_alerts.start()
    try:
        await asyncio.to_thread(
            wait_until,
            "node Ready",
            lambda: (
                not [f for f in watcher.engine.findings if f == f"Node/{node}"] and cluster.node(node).status.conditions
            ),
            60,
        )
        await asyncio.to_thread(cluster.chaos, "notready", f"node/{node}")
        deadline = time.monotonic() + FIRE_TIMEOUT_S
        while not [e for e in bus_alerts.of("fired", "KubeNodeNotReady") if e.subject == f"Node/_/{node}"]:
            assert time.monotonic() < deadline, f"no KubeNodeNotReady for {node}: {bus_alerts.events}"
            await asyncio.sleep(0.05)
        await asyncio.to_thread(cluster.heal, "notready", f"node/{node}")
        deadline = time.monotonic() + 90
        while not [e for e in bus_alerts.of("resolved", "KubeNodeNotReady") if e.subject == f"Node/_/{node}"]:
            assert time.monotonic() < deadline, f"no resolve for {node}: {bus_alerts.events}"
            await asyncio.sleep(0.05)
        fired = [e for e in bus_alerts.of("fired", "KubeNodeNotReady") if e.subject == f"Node/_/{node}"]
        assert len(fired) == 1
        assert fired[0].data["labels"]["node"] == node
    finally:
        await bus_alerts.stop()
        cluster.core.delete_node(node)


async def test_image_pull_failure_fires_once_across_backoff_and_resolves_on_heal(
    cluster: Cluster, watched: tuple[Watcher, Alerts]
) -> None:
    _, alerts = watched
    pod = await _running_pod(cluster, "web")
    name = pod.metadata.name
    await asyncio.to_thread(cluster.chaos, "imagepull", f"pod/{name}")
    fired = (await alerts.wait("fired", "KubePodImagePullFailing")).payload_as(AlertFired)
    assert fired.labels["pod"] == name
    assert fired.labels["container"] == "app"
    assert fired.labels["workload"] == "web"
    assert fired.workload is not None and fired.workload.kind == "Deployment"
    app = next(c for c in fired.evidence.containers if c.name == "app")
    assert app.state == "waiting" and app.reason in {"ErrImagePull", "ImagePullBackOff"}
    assert fired.annotations.description is not None and "not found" in fired.annotations.description
    # the kubelet alternates ErrImagePull and ImagePullBackOff: one fault, still one alert
    await asyncio.to_thread(
        wait_until,
        "the pod to pass through both pull reasons",
        lambda: _waiting_reason(cluster, name) not in {None, app.reason},
        60,
    )
    await asyncio.sleep(1.5)
    assert len(alerts.of("fired", "KubePodImagePullFailing")) == 1

    await asyncio.to_thread(cluster.heal, "imagepull", f"pod/{name}")
    resolved = (await alerts.wait("resolved", "KubePodImagePullFailing", timeout=90)).payload_as(AlertResolved)
    assert resolved.fingerprint == fired.fingerprint
    assert resolved.resolution == "condition cleared"
    assert len(alerts.of("fired", "KubePodImagePullFailing")) == 1
    others = {e.data.get("alertname") for e in alerts.events} - {"KubePodImagePullFailing"}
    assert not others, f"one fault, one alert: also got {others}"


def _waiting_reason(cluster: Cluster, pod: str) -> str | None:
    cs = container_status(cluster.pod(pod), "app")
    return cs.state.waiting.reason if cs is not None and cs.state.waiting is not None else None


async def test_unschedulable_rollout_fires_for_the_pending_pod_and_resolves_on_rollback(
    cluster: Cluster, watched: tuple[Watcher, Alerts]
) -> None:
    _, alerts = watched
    healthy = await _running_pod(cluster, "web")
    await asyncio.to_thread(cluster.chaos, "unschedulable", "deployment/web")
    fired_env = await alerts.wait("fired", "KubePodNotScheduled")
    fired = fired_env.payload_as(AlertFired)
    pending = fired.labels["pod"]
    assert pending != healthy.metadata.name, "the new release's pod is the unschedulable one"
    assert pending.startswith("web-")
    assert fired.labels["workload"] == "web"
    assert "node" not in fired.labels
    assert fired.annotations.description is not None and "node(s)" in fired.annotations.description
    scheduling = [e for e in fired.evidence.events if e.reason == "FailedScheduling"]
    assert scheduling, f"the scheduler's event is evidence: {fired.evidence.events}"
    assert cluster.pod(pending).status.phase == "Pending"

    await asyncio.to_thread(cluster.heal, "unschedulable", "deployment/web")  # rolls back: the pending pod goes
    resolved = (await alerts.wait("resolved", "KubePodNotScheduled", timeout=90)).payload_as(AlertResolved)
    assert resolved.fingerprint == fired.fingerprint
    assert resolved.resolution == "object deleted"
    await asyncio.sleep(1.0)
    assert len(alerts.of("fired", "KubePodNotScheduled")) == 1
    assert len(alerts.of("resolved", "KubePodNotScheduled")) == 1


def _pod_template(app: str, node_selector: dict[str, str] | None = None) -> client.V1PodTemplateSpec:
    return client.V1PodTemplateSpec(
        metadata=client.V1ObjectMeta(labels={"app": app}),
        spec=client.V1PodSpec(
            containers=[client.V1Container(name="app", image="registry.example/app:1.0")],
            node_selector=node_selector,
        ),
    )


def _create_statefulset(cluster: Cluster, name: str) -> None:
    body = client.V1StatefulSet(
        metadata=client.V1ObjectMeta(name=name, labels={"app": name}),
        spec=client.V1StatefulSetSpec(
            replicas=2,
            service_name=name,
            selector=client.V1LabelSelector(match_labels={"app": name}),
            template=_pod_template(name),
        ),
    )
    cluster.apps.create_namespaced_stateful_set(cluster.namespace, body)


def _create_daemonset(cluster: Cluster, name: str) -> None:
    # Pinned to one of the sandbox's own nodes: other tests add and remove nodes on the shared cluster.
    nodes = cluster.core.list_node(label_selector="kwok.x-k8s.io/kwokctl-scale=node").items
    node = sorted(str(n.metadata.name) for n in nodes if n.metadata is not None)[0]
    body = client.V1DaemonSet(
        metadata=client.V1ObjectMeta(name=name, labels={"app": name}),
        spec=client.V1DaemonSetSpec(
            selector=client.V1LabelSelector(match_labels={"app": name}),
            template=_pod_template(name, {"kubernetes.io/hostname": node}),
        ),
    )
    cluster.apps.create_namespaced_daemon_set(cluster.namespace, body)


@pytest.mark.parametrize(("kind", "pods"), [("StatefulSet", 2), ("DaemonSet", 1)])
async def test_workload_replicas_mismatch_fires_for_statefulset_and_daemonset(
    cluster: Cluster, watched: tuple[Watcher, Alerts], kind: str, pods: int
) -> None:
    _, alerts = watched
    alertname = f"Kube{kind}ReplicasMismatch"
    name = kind.lower()
    (_create_statefulset if kind == "StatefulSet" else _create_daemonset)(cluster, name)
    running = await asyncio.to_thread(wait_until, f"{name} running", lambda: cluster.running_pods(name, pods), 120)
    victim = sorted(p.metadata.name for p in running)[-1]
    await asyncio.to_thread(cluster.chaos, "imagepull", f"pod/{victim}")

    fired_env = await alerts.wait("fired", alertname)
    fired = fired_env.payload_as(AlertFired)
    assert fired_env.subject == f"{kind}/{cluster.namespace}/{name}"
    assert fired.labels["namespace"] == cluster.namespace
    assert fired.labels["workload"] == name
    assert fired.labels[name] == name
    assert fired.workload is not None and (fired.workload.kind, fired.workload.name) == (kind, name)
    assert f"1 of {pods} pods not ready" in fired.annotations.summary
    # the pod's own alert says which pod and why; the workload alert says the workload is short
    pod_alert = (await alerts.wait("fired", "KubePodImagePullFailing")).payload_as(AlertFired)
    assert pod_alert.labels["pod"] == victim and pod_alert.labels["workload"] == name

    await asyncio.to_thread(cluster.heal, "imagepull", f"pod/{victim}")
    resolved = (await alerts.wait("resolved", alertname, timeout=90)).payload_as(AlertResolved)
    assert resolved.fingerprint == fired.fingerprint
    assert resolved.resolution == "condition cleared"
    await asyncio.sleep(1.0)
    assert len(alerts.of("fired", alertname)) == 1
    assert len(alerts.of("resolved", alertname)) == 1
