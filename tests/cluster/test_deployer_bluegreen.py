"""Blue-green on the sandbox: the Service's selector is the switch; promote ends with the stable Deployment on
the new template and nothing left over, abort (failing pre-promotion analysis) never touches the stable one,
and a failing post-promotion analysis switches the traffic back and removes the new stack."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from kubernetes import client

from opsbus.common.bus import Bus
from opsbus.common.events.payloads.deploy import (
    BlueGreenSpec,
    DeployFailed,
    DeployFailureReason,
    DeployRolledBack,
    DeploySucceeded,
    Strategy,
)
from opsbus.deployer.service import Deployer
from tests.cluster.kube import Cluster
from tests.cluster.test_deployer_canary import answer, deployment_names, metric
from tests.cluster.test_deployer_rollouts import (
    DeployEvents,
    FakePrometheus,
    client_bus,
    deploy_events,
    deployer,
    image_of,
    prometheus,
    request_event,
    rolled_out,
    settings,
)

pytestmark = [pytest.mark.cluster, pytest.mark.integration]
__all__ = ["client_bus", "deploy_events", "deployer", "prometheus", "settings"]  # fixtures shared with rollouts


def create_service(cluster: Cluster, name: str, app: str) -> None:
    body = client.V1Service(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1ServiceSpec(selector={"app": app}, ports=[client.V1ServicePort(port=80, target_port=8080)]),
    )
    cluster.core.create_namespaced_service(cluster.namespace, body)


def selector(cluster: Cluster, name: str) -> dict[str, str]:
    spec = cluster.core.read_namespaced_service(name, cluster.namespace).spec
    return dict(spec.selector or {}) if spec else {}


def pod_hashes(cluster: Cluster, labels: str) -> set[str]:
    pods = cluster.core.list_namespaced_pod(cluster.namespace, label_selector=labels).items
    return {str((p.metadata.labels or {}).get("pod-template-hash")) for p in pods if p.metadata}


async def test_blue_green_promote_switches_the_service_and_leaves_nothing_behind(
    cluster: Cluster, deployer: Deployer, client_bus: Bus, deploy_events: DeployEvents, prometheus: FakePrometheus
) -> None:
    cluster.create_deployment("web", replicas=2, image="registry.example/web:1")
    create_service(cluster, "web", "web")
    await rolled_out(cluster, "web")
    prometheus.answer = answer(0.99)
    spec = BlueGreenSpec.model_validate(
        {
            "active_service": "web",
            "pre_promotion_analysis": {"metrics": [metric(0.95)]},
            "post_promotion_analysis": {"metrics": [metric(0.95)]},
            "scale_down_delay_seconds": 3,
        }
    )
    request = request_event(
        cluster, "web", strategy=Strategy.BLUE_GREEN, images={"app": "registry.example/web:2"}, blue_green=spec
    )
    await client_bus.publisher.publish(request)

    green_selected = False
    for _ in range(300):
        if any(isinstance(e.payload(), DeploySucceeded | DeployFailed) for e in deploy_events.for_request(request.id)):
            break
        sel = await asyncio.to_thread(selector, cluster, "web")
        green = await asyncio.to_thread(pod_hashes, cluster, "app=web,opsbus.io/green=true")
        if sel.get("pod-template-hash") in green:
            green_selected = True  # traffic went to the new stack, and only to it
        await asyncio.sleep(0.2)
    done = (await deploy_events.wait(request.id, DeploySucceeded, timeout=5)).payload_as(DeploySucceeded)
    assert green_selected
    assert done.analysis[0].successful == 2  # the post-promotion analysis, measured after the switch
    await rolled_out(cluster, "web", timeout=30)
    assert image_of(cluster, "web") == "registry.example/web:2"
    assert selector(cluster, "web") == {"app": "web"}  # original selector restored
    for _ in range(60):
        if deployment_names(cluster) == ["web"]:
            break
        await asyncio.sleep(0.5)
    assert deployment_names(cluster) == ["web"]


async def test_blue_green_abort_by_failing_analysis_switches_back_and_removes_the_new_stack(
    cluster: Cluster, deployer: Deployer, client_bus: Bus, deploy_events: DeployEvents, prometheus: FakePrometheus
) -> None:
    cluster.create_deployment("api", replicas=2, image="registry.example/api:1")
    create_service(cluster, "api", "api")
    before = await rolled_out(cluster, "api")
    prometheus.answer = answer(0.3)
    spec = BlueGreenSpec.model_validate(
        {"active_service": "api", "pre_promotion_analysis": {"metrics": [metric(0.95)]}}
    )
    request = request_event(
        cluster, "api", strategy=Strategy.BLUE_GREEN, images={"app": "registry.example/api:2"}, blue_green=spec
    )
    await client_bus.publisher.publish(request)

    failed = (await deploy_events.wait(request.id, DeployFailed, timeout=90)).payload_as(DeployFailed)
    assert failed.reason is DeployFailureReason.ANALYSIS_FAILED
    rolled = (await deploy_events.wait(request.id, DeployRolledBack, timeout=30)).payload_as(DeployRolledBack)
    assert rolled.automatic
    assert selector(cluster, "api") == {"app": "api"}
    assert cluster.deployment("api").metadata.generation == before.metadata.generation
    assert image_of(cluster, "api") == "registry.example/api:1"
    names: list[Any] = []
    for _ in range(60):
        names = deployment_names(cluster)
        if names == ["api"] and not pod_hashes(cluster, "app=api,opsbus.io/green=true"):
            break
        await asyncio.sleep(0.5)
    assert names == ["api"]
    assert not pod_hashes(cluster, "app=api,opsbus.io/green=true")


async def test_blue_green_post_promotion_analysis_failure_switches_back_and_removes_the_new_stack(
    cluster: Cluster, deployer: Deployer, client_bus: Bus, deploy_events: DeployEvents, prometheus: FakePrometheus
) -> None:
    cluster.create_deployment("shop", replicas=2, image="registry.example/shop:1")
    create_service(cluster, "shop", "shop")
    before = await rolled_out(cluster, "shop")
    prometheus.answer = answer(0.3)  # the new stack serves badly once it takes the traffic
    spec = BlueGreenSpec.model_validate(
        {
            "active_service": "shop",
            # measured 3 s after the switch, so the test sees the traffic on the new stack first
            "post_promotion_analysis": {"metrics": [{**metric(0.95), "initial_delay_seconds": 3}]},
            "scale_down_delay_seconds": 600,  # the old stack is still there to switch back to
        }
    )
    request = request_event(
        cluster, "shop", strategy=Strategy.BLUE_GREEN, images={"app": "registry.example/shop:2"}, blue_green=spec
    )
    await client_bus.publisher.publish(request)

    green_selected = False
    for _ in range(450):
        if any(isinstance(e.payload(), DeploySucceeded | DeployFailed) for e in deploy_events.for_request(request.id)):
            break
        sel = await asyncio.to_thread(selector, cluster, "shop")
        green = await asyncio.to_thread(pod_hashes, cluster, "app=shop,opsbus.io/green=true")
        if sel.get("pod-template-hash") in green:
            green_selected = True
        await asyncio.sleep(0.2)
    failed = (await deploy_events.wait(request.id, DeployFailed, timeout=5)).payload_as(DeployFailed)
    assert green_selected, "the Service never switched to the new stack before the analysis failed"
    assert failed.reason is DeployFailureReason.ANALYSIS_FAILED
    assert "post-promotion" in failed.message
    rolled = (await deploy_events.wait(request.id, DeployRolledBack, timeout=30)).payload_as(DeployRolledBack)
    assert rolled.automatic and "traffic back on the old stack" in rolled.reason
    assert selector(cluster, "shop") == {"app": "shop"}
    assert cluster.deployment("shop").metadata.generation == before.metadata.generation  # never converged
    assert image_of(cluster, "shop") == "registry.example/shop:1"
    names: list[Any] = []
    for _ in range(60):
        names = deployment_names(cluster)
        if names == ["shop"] and not pod_hashes(cluster, "app=shop,opsbus.io/green=true"):
            break
        await asyncio.sleep(0.5)
    assert names == ["shop"]
    assert not pod_hashes(cluster, "app=shop,opsbus.io/green=true")
