"""The watcher against the sandbox apiserver and a real nats-server: a chaos fault produces exactly one
`alert.fired` with the right labels and evidence within seconds, and `alert.resolved` after it is healed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from nats.js.api import DeliverPolicy
from prometheus_client import CollectorRegistry

from opsbus.common.bus import Bus
from opsbus.common.events import Envelope
from opsbus.common.events.payloads.alert import AlertFired, AlertResolved
from opsbus.watcher.service import Watcher, start
from opsbus.watcher.settings import WatcherSettings
from opsbus.watcher.watching import KubeClient
from tests.cluster.conftest import SandboxHandle
from tests.cluster.kube import Cluster, is_running_and_ready, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.integration]

MakeBus = Callable[..., Awaitable[Bus]]
CLUSTER = "sandbox"
FIRE_TIMEOUT_S = 60


class Alerts:
    """Every alert event on the bus for one namespace, read back from the ALERT stream."""

    def __init__(self, bus: Bus, namespace: str) -> None:
        self.bus = bus
        self.namespace = namespace
        self.events: list[Envelope] = []
        self._sub: Any = None

    async def start(self) -> None:
        self._sub = await self.bus.js.subscribe(
            f"alert.*.{CLUSTER}.{self.namespace}",
            stream="ALERT",
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.ALL,
            cb=self._on,
        )

    async def _on(self, msg: Any) -> None:
        self.events.append(Envelope.from_json(msg.data))

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()

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
            "thresholds": {"resolve_after_seconds": 2, "oom_recent_seconds": 5, "pending_unschedulable_seconds": 1},
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
