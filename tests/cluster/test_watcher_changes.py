"""The watcher's change timeline against the sandbox apiserver and a real nats-server.

Nothing is recorded for what already exists when the watcher starts; then an image patch, a ConfigMap edit, a
Secret edit, a scale and a node taint each give exactly one `change.recorded` of the expected kind, and the
Secret's value (plain or base64) is in no message on the bus, whatever its subject.
"""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from kubernetes import client
from prometheus_client import CollectorRegistry

from opsbus.common.bus import Bus
from opsbus.common.events import Envelope
from opsbus.common.events.payloads import ChangeKind, ChangeOrigin, ChangeRecorded
from opsbus.watcher.service import start
from opsbus.watcher.settings import WatcherSettings
from opsbus.watcher.watching import KubeClient
from tests.cluster.conftest import SandboxHandle
from tests.cluster.kube import Cluster, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.integration]

MakeBus = Callable[..., Awaitable[Bus]]
CLUSTER = "sandbox"
SECRET_VALUE = f"hunter2-{uuid.uuid4().hex}"  # unique: found on the bus only if it leaked


class Wire:
    """Every message on the NATS server (core subscription to `>`), raw, and the change.recorded among them."""

    def __init__(self) -> None:
        self.raw: list[bytes] = []
        self.changes: list[Envelope] = []

    async def on_message(self, msg: Any) -> None:
        self.raw.append(bytes(msg.data) + b" " + msg.subject.encode() + b" " + repr(msg.headers or {}).encode())
        if msg.subject.startswith("change.recorded."):
            self.changes.append(Envelope.from_json(msg.data))

    def of(self, kind: str, name: str) -> list[ChangeRecorded]:
        payloads = [e.payload_as(ChangeRecorded) for e in self.changes]
        return [c for c in payloads if c.object.kind == kind and c.object.name == name]

    async def wait(self, kind: str, name: str, count: int, timeout: float = 30) -> list[ChangeRecorded]:
        deadline = time.monotonic() + timeout
        while len(self.of(kind, name)) < count:
            if time.monotonic() > deadline:
                seen = [e.payload_as(ChangeRecorded).summary for e in self.changes]
                pytest.fail(f"fewer than {count} change.recorded for {kind}/{name} within {timeout:.0f}s; saw {seen}")
            await asyncio.sleep(0.1)
        return self.of(kind, name)


def _deployment(cluster: Cluster) -> Any:
    env = [
        client.V1EnvVar(
            name="MODE",
            value_from=client.V1EnvVarSource(config_map_key_ref=client.V1ConfigMapKeySelector(name="app", key="mode")),
        ),
        client.V1EnvVar(
            name="TOKEN",
            value_from=client.V1EnvVarSource(secret_key_ref=client.V1SecretKeySelector(name="app", key="token")),
        ),
    ]
    labels = {"app": "web"}
    body = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="web", labels=labels),
        spec=client.V1DeploymentSpec(
            replicas=1,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[client.V1Container(name="app", image="web:1", env=env)]),
            ),
        ),
    )
    return cluster.apps.create_namespaced_deployment(cluster.namespace, body)


@pytest.fixture
async def node(cluster: Cluster) -> AsyncIterator[str]:
    name = f"changes-{uuid.uuid4().hex[:8]}"
    cluster.create_fake_node(name)

    def ready() -> bool:
        conditions = cluster.node(name).status.conditions or []
        return any(c.type == "Ready" and c.status == "True" for c in conditions)

    await asyncio.to_thread(wait_until, f"node {name} ready", ready, 60)
    try:
        yield name
    finally:
        cluster.core.delete_node(name)


@pytest.fixture
async def wire(make_bus: MakeBus) -> AsyncIterator[Wire]:
    bus = await make_bus("tester", registry_=CollectorRegistry())
    seen = Wire()
    sub = await bus.nc.subscribe(">", cb=seen.on_message)
    yield seen
    await sub.unsubscribe()


async def test_each_change_is_recorded_once_and_no_secret_value_reaches_the_bus(
    cluster: Cluster, sandbox: SandboxHandle, make_bus: MakeBus, node: str, wire: Wire
) -> None:
    ns = cluster.namespace
    cluster.core.create_namespaced_config_map(
        ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="app"), data={"mode": "fast"})
    )
    cluster.core.create_namespaced_secret(
        ns, client.V1Secret(metadata=client.V1ObjectMeta(name="app"), string_data={"token": "before-" + SECRET_VALUE})
    )
    _deployment(cluster)
    await asyncio.to_thread(wait_until, "web running", lambda: cluster.running_pods("web", 1), 120)

    bus = await make_bus("watcher")
    await bus.ensure_streams()
    settings = WatcherSettings(cluster=CLUSTER, watcher={"kubeconfig": str(sandbox.kubeconfig), "namespaces": [ns]})
    kube = KubeClient.from_config(str(sandbox.kubeconfig))
    watcher = await start(settings, bus, kube, CollectorRegistry())
    try:
        await asyncio.sleep(2)
        mine = [e for e in wire.changes if e.subject.split("/")[1] == ns or e.subject == f"Node/_/{node}"]
        assert mine == []  # what exists at start is not a change

        cluster.apps.patch_namespaced_deployment(
            "web", ns, {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "web:2"}]}}}}
        )
        (image,) = await wire.wait("Deployment", "web", 1)
        cluster.core.patch_namespaced_config_map("app", ns, {"data": {"mode": "safe"}})
        (config,) = await wire.wait("ConfigMap", "app", 1)
        cluster.core.patch_namespaced_secret("app", ns, {"stringData": {"token": "after-" + SECRET_VALUE}})
        (secret,) = await wire.wait("Secret", "app", 1)
        cluster.apps.patch_namespaced_deployment_scale("web", ns, {"spec": {"replicas": 2}})
        _, scale = await wire.wait("Deployment", "web", 2)
        taint = {"key": "opsbus.io/test", "value": "changes", "effect": "NoSchedule"}
        cluster.core.patch_node(node, {"spec": {"taints": [taint]}})
        (tainted,) = await wire.wait("Node", node, 1)
        await asyncio.sleep(3)  # a double would have arrived by now
    finally:
        await watcher.stop()
        await kube.close()

    assert len(wire.of("Deployment", "web")) == 2 and len(wire.of("ConfigMap", "app")) == 1
    assert len(wire.of("Secret", "app")) == 1 and len(wire.of("Node", node)) == 1
    assert all(c.origin is ChangeOrigin.OBSERVED for e in wire.changes for c in [e.payload_as(ChangeRecorded)])
    assert image.kinds == (ChangeKind.IMAGE,)
    assert [(d.path, d.before, d.after) for d in image.diff] == [
        ("spec.template.spec.containers[app].image", "web:1", "web:2")
    ]
    assert config.kinds == (ChangeKind.CONFIG,) and [d.path for d in config.diff] == ["data[mode]"]
    assert [str(w) for w in config.used_by] == [f"Deployment/{ns}/web"]
    assert secret.kinds == (ChangeKind.CONFIG,) and [d.path for d in secret.diff] == ["data[token]"]
    assert secret.diff[0].before != secret.diff[0].after and (secret.diff[0].after or "").startswith("sha256:")
    assert [str(w) for w in secret.used_by] == [f"Deployment/{ns}/web"]
    assert scale.kinds == (ChangeKind.REPLICAS,)
    assert [(d.path, d.before, d.after) for d in scale.diff] == [("spec.replicas", "1", "2")]
    assert tainted.kinds == (ChangeKind.NODE_TAINT,)
    assert [(d.path, d.after) for d in tainted.diff] == [("spec.taints[opsbus.io/test:NoSchedule]", "changes")]

    leaks = [SECRET_VALUE.encode(), base64.b64encode(("after-" + SECRET_VALUE).encode())]
    leaks.append(base64.b64encode(("before-" + SECRET_VALUE).encode()))
    assert wire.raw and not [m for m in wire.raw for leak in leaks if leak in m]
