"""The watcher's change timeline for config objects created while it watches, against the sandbox apiserver.

A ConfigMap, a Secret and an HPA created after the watcher started each give one `created` change, every edit
after that exactly one change of its kind, deleting them one `deleted` change, and the watches keep going (a
later edit is still recorded) with nothing logged at warning or above: the ConfigMap/Secret creation used to
be refused by the event model (its name is no digest), which broke the informer's watch.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from kubernetes import client
from prometheus_client import CollectorRegistry

from opsbus.common.events.payloads import ChangeKind, ChangeRecorded
from opsbus.watcher.service import start
from opsbus.watcher.settings import WatcherSettings
from opsbus.watcher.watching import KubeClient
from tests.cluster import test_watcher_changes
from tests.cluster.conftest import SandboxHandle
from tests.cluster.kube import Cluster
from tests.cluster.test_watcher_changes import CLUSTER, MakeBus, Wire

pytestmark = [pytest.mark.cluster, pytest.mark.integration]


wire = test_watcher_changes.wire  # every message on the bus, the change.recorded among them


def _hpa(max_replicas: int) -> client.V2HorizontalPodAutoscaler:
    return client.V2HorizontalPodAutoscaler(
        metadata=client.V1ObjectMeta(name="app"),
        spec=client.V2HorizontalPodAutoscalerSpec(
            scale_target_ref=client.V2CrossVersionObjectReference(api_version="apps/v1", kind="Deployment", name="app"),
            min_replicas=1,
            max_replicas=max_replicas,
        ),
    )


def _kinds(changes: list[ChangeRecorded]) -> list[tuple[ChangeKind, ...]]:
    return [c.kinds for c in changes]


async def test_config_objects_created_while_watching_are_recorded_and_the_watch_goes_on(
    cluster: Cluster, sandbox: SandboxHandle, make_bus: MakeBus, wire: Wire, caplog: pytest.LogCaptureFixture
) -> None:
    ns = cluster.namespace
    hpas = client.AutoscalingV2Api(cluster.api)
    bus = await make_bus("watcher")
    await bus.ensure_streams()
    settings = WatcherSettings(cluster=CLUSTER, watcher={"kubeconfig": str(sandbox.kubeconfig), "namespaces": [ns]})
    kube = KubeClient.from_config(str(sandbox.kubeconfig))
    caplog.set_level(logging.INFO, logger="opsbus.watcher")
    watcher = await start(settings, bus, kube, CollectorRegistry())
    try:
        await asyncio.sleep(2)
        cluster.core.create_namespaced_config_map(
            ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="app"), data={"mode": "fast"})
        )
        cluster.core.create_namespaced_secret(
            ns, client.V1Secret(metadata=client.V1ObjectMeta(name="app"), string_data={"token": "t1"})
        )
        hpas.create_namespaced_horizontal_pod_autoscaler(ns, _hpa(3))
        for kind in ("ConfigMap", "Secret", "HorizontalPodAutoscaler"):
            await wire.wait(kind, "app", 1)

        cluster.core.patch_namespaced_config_map("app", ns, {"data": {"mode": "safe"}})
        cluster.core.patch_namespaced_secret("app", ns, {"stringData": {"token": "t2"}})
        hpas.patch_namespaced_horizontal_pod_autoscaler("app", ns, {"spec": {"maxReplicas": 5}})
        for kind in ("ConfigMap", "Secret", "HorizontalPodAutoscaler"):
            await wire.wait(kind, "app", 2)

        # Later edits still come through: the watches survived the creations.
        cluster.core.patch_namespaced_config_map("app", ns, {"data": {"mode": "slow"}})
        cluster.core.patch_namespaced_secret("app", ns, {"stringData": {"token": "t3"}})
        hpas.patch_namespaced_horizontal_pod_autoscaler("app", ns, {"spec": {"maxReplicas": 7}})
        for kind in ("ConfigMap", "Secret", "HorizontalPodAutoscaler"):
            await wire.wait(kind, "app", 3)

        cluster.core.delete_namespaced_config_map("app", ns)
        cluster.core.delete_namespaced_secret("app", ns)
        hpas.delete_namespaced_horizontal_pod_autoscaler("app", ns)
        for kind in ("ConfigMap", "Secret", "HorizontalPodAutoscaler"):
            await wire.wait(kind, "app", 4)
        await asyncio.sleep(3)  # a double would have arrived by now
    finally:
        await watcher.stop()
        await kube.close()

    config, secret, hpa = (wire.of(kind, "app") for kind in ("ConfigMap", "Secret", "HorizontalPodAutoscaler"))
    edited = [(ChangeKind.CREATED,), (ChangeKind.CONFIG,), (ChangeKind.CONFIG,), (ChangeKind.DELETED,)]
    assert _kinds(config) == edited and _kinds(secret) == edited
    assert _kinds(hpa) == [(ChangeKind.CREATED,), (ChangeKind.HPA,), (ChangeKind.HPA,), (ChangeKind.DELETED,)]
    for changes, key in ((config, "data[mode]"), (secret, "data[token]")):
        created = changes[0]
        assert created.summary.endswith(f"{created.object.kind} {ns}/app: created; {key} added")
        assert [(d.path, d.before) for d in created.diff] == [("metadata", None), (key, None)]
        assert (created.diff[1].after or "").startswith("sha256:")
        assert [d.path for c in changes[1:3] for d in c.diff] == [key, key]
        assert changes[3].summary == f"{created.object.kind} {ns}/app: deleted"
    assert [(d.path, d.before, d.after) for d in hpa[1].diff] == [("spec.maxReplicas", "3", "5")]
    assert [(d.path, d.before, d.after) for d in hpa[2].diff] == [("spec.maxReplicas", "5", "7")]
    assert hpa[0].workload is not None and hpa[0].workload.name == "app"
    troubles = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert troubles == []
