"""Replica-ratio canary on the sandbox: a `<name>-canary` Deployment whose pods the stable Service selects,
promoted through steps, or removed by a failing analysis with the stable Deployment never touched."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from opsbus.common.bus import Bus
from opsbus.common.events.payloads.deploy import (
    AnalysisOutcome,
    CanarySpec,
    DeployFailed,
    DeployFailureReason,
    DeployProgressed,
    DeployRolledBack,
    DeploySucceeded,
    Strategy,
)
from opsbus.deployer.service import Deployer
from tests.cluster.kube import Cluster
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


def metric(threshold: float) -> dict[str, Any]:
    return {
        "name": "success-rate",
        "provider": {"query": "sum(rate(ok[1m]))/sum(rate(all[1m]))"},
        "success_condition": {"operator": ">=", "threshold": threshold},
        "interval_seconds": 1,
        "count": 2,
    }


def answer(value: float) -> tuple[int, dict[str, Any]]:
    return 200, {
        "status": "success",
        "data": {"resultType": "vector", "result": [{"metric": {}, "value": [0, str(value)]}]},
    }


def canary_pods(cluster: Cluster, app: str) -> list[Any]:
    return cluster.core.list_namespaced_pod(cluster.namespace, label_selector=f"app={app},opsbus.io/canary=true").items


def deployment_names(cluster: Cluster) -> list[str]:
    return [
        str(d.metadata.name) for d in cluster.apps.list_namespaced_deployment(cluster.namespace).items if d.metadata
    ]


async def test_canary_is_promoted_through_its_steps(
    cluster: Cluster, deployer: Deployer, client_bus: Bus, deploy_events: DeployEvents, prometheus: FakePrometheus
) -> None:
    cluster.create_deployment("web", replicas=4, image="registry.example/web:1")
    await rolled_out(cluster, "web")
    prometheus.answer = answer(0.99)
    spec = CanarySpec.model_validate(
        {"steps": [{"weight": 20, "pause_seconds": 2}, {"weight": 50, "analysis": {"metrics": [metric(0.95)]}}]}
    )
    request = request_event(
        cluster, "web", strategy=Strategy.CANARY, images={"app": "registry.example/web:2"}, canary=spec
    )
    await client_bus.publisher.publish(request)

    seen_canary: list[int] = []
    while not any(
        isinstance(e.payload(), DeploySucceeded | DeployFailed) for e in deploy_events.for_request(request.id)
    ):
        pods = await asyncio.to_thread(canary_pods, cluster, "web")
        seen_canary.append(len(pods))
        assert len(seen_canary) < 300, [e.type for e in deploy_events.for_request(request.id)]
        await asyncio.sleep(0.3)
    done = await deploy_events.wait(request.id, DeploySucceeded, timeout=5)
    steps = [
        (p.step, p.canary_weight)
        for e in deploy_events.for_request(request.id)
        if isinstance(p := e.payload(), DeployProgressed) and p.step is not None
    ]
    assert (1, 20) in steps and (2, 50) in steps
    assert max(seen_canary) >= 4  # 50% beside 4 stable replicas: 4 canary pods the Service also selects
    assert done.payload_as(DeploySucceeded).analysis[0].outcome is AnalysisOutcome.SUCCESSFUL
    await rolled_out(cluster, "web", timeout=30)
    assert image_of(cluster, "web") == "registry.example/web:2"
    assert "opsbus.io/canary" not in (cluster.deployment("web").spec.template.metadata.labels or {})
    assert deployment_names(cluster) == ["web"]  # no leftover canary


async def test_canary_aborted_by_failing_analysis_leaves_the_stable_untouched(
    cluster: Cluster, deployer: Deployer, client_bus: Bus, deploy_events: DeployEvents, prometheus: FakePrometheus
) -> None:
    cluster.create_deployment("api", replicas=2, image="registry.example/api:1")
    before = await rolled_out(cluster, "api")
    prometheus.answer = answer(0.42)
    spec = CanarySpec.model_validate({"steps": [{"weight": 50, "analysis": {"metrics": [metric(0.95)]}}]})
    request = request_event(
        cluster, "api", strategy=Strategy.CANARY, images={"app": "registry.example/api:2"}, canary=spec
    )
    await client_bus.publisher.publish(request)

    failed = (await deploy_events.wait(request.id, DeployFailed, timeout=90)).payload_as(DeployFailed)
    assert failed.reason is DeployFailureReason.ANALYSIS_FAILED
    assert failed.failed_step == 1
    assert failed.analysis[0].measurements[0].value == pytest.approx(0.42)
    rolled = (await deploy_events.wait(request.id, DeployRolledBack, timeout=30)).payload_as(DeployRolledBack)
    assert rolled.automatic

    after = cluster.deployment("api")
    assert after.metadata.generation == before.metadata.generation  # the stable Deployment was never written
    assert image_of(cluster, "api") == "registry.example/api:1"
    for _ in range(60):
        names = deployment_names(cluster)
        if names == ["api"] and not canary_pods(cluster, "api"):
            break
        await asyncio.sleep(0.5)
    assert names == ["api"]
    assert not canary_pods(cluster, "api")
