"""Traffic-weighted canaries on the sandbox: the deployer writes the weights of a Gateway API HTTPRoute (v1) or an
Istio VirtualService (the CRDs `sandbox.sh up` installs at pinned versions), step by step and independently of the
canary's replicas; a failing analysis puts all traffic back on the stable in one write; an edit of the weights by
someone else pauses the rollout and is never overwritten.

kwok has no data plane, so no request is routed: the tests assert on the route objects, on the events the deployer
publishes and on the Deployments, which is what the deployer is responsible for.
"""

from __future__ import annotations

import asyncio
import copy
import time
from typing import Any

import pytest
from kubernetes import client

from opsbus.common.bus import Bus
from opsbus.common.events.payloads.deploy import (
    CanarySpec,
    DeployFailed,
    DeployFailureReason,
    DeployPhase,
    DeployProgressed,
    DeployRolledBack,
    DeploySucceeded,
    RouterKind,
    Strategy,
)
from opsbus.deployer.service import Deployer
from tests.cluster.kube import Cluster
from tests.cluster.test_deployer_bluegreen import selector
from tests.cluster.test_deployer_canary import answer, deployment_names, metric
from tests.cluster.test_deployer_rollout_view import paused
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

# kind -> (group, version, plural, the list of rules, the list of backends in a rule)
ROUTERS: dict[RouterKind, tuple[str, str, str, str, str]] = {
    RouterKind.HTTP_ROUTE: ("gateway.networking.k8s.io", "v1", "httproutes", "rules", "backendRefs"),
    RouterKind.VIRTUAL_SERVICE: ("networking.istio.io", "v1", "virtualservices", "http", "route"),
}
OTHER_RULE = {
    RouterKind.HTTP_ROUTE: {
        "matches": [{"path": {"type": "PathPrefix", "value": "/admin"}}],
        "backendRefs": [{"name": "admin", "port": 80}],
    },
    RouterKind.VIRTUAL_SERVICE: {
        "match": [{"uri": {"prefix": "/admin"}}],
        "route": [{"destination": {"host": "admin", "port": {"number": 80}}}],
    },
}


def route_body(kind: RouterKind, name: str) -> dict[str, Any]:
    group, version, _, _, _ = ROUTERS[kind]
    if kind is RouterKind.HTTP_ROUTE:
        spec: dict[str, Any] = {
            "parentRefs": [{"name": "public"}],
            "rules": [OTHER_RULE[kind], {"backendRefs": [{"name": name, "port": 80}]}],
        }
    else:
        spec = {
            "hosts": [f"{name}.example"],
            "http": [OTHER_RULE[kind], {"route": [{"destination": {"host": name, "port": {"number": 80}}}]}],
        }
    return {"apiVersion": f"{group}/{version}", "kind": kind.value, "metadata": {"name": name}, "spec": spec}


def custom(cluster: Cluster) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(cluster.api)


def create_route(cluster: Cluster, kind: RouterKind, name: str) -> None:
    """The route, and its two backends: the stable Service (selecting the app) and the canary's Service."""
    group, version, plural, _, _ = ROUTERS[kind]
    custom(cluster).create_namespaced_custom_object(group, version, cluster.namespace, plural, route_body(kind, name))
    for service, labels in ((name, {"app": name}), (f"{name}-canary", {"app": name, "opsbus.io/canary": "true"})):
        body = client.V1Service(
            metadata=client.V1ObjectMeta(name=service),
            spec=client.V1ServiceSpec(selector=labels, ports=[client.V1ServicePort(port=80, target_port=8080)]),
        )
        cluster.core.create_namespaced_service(cluster.namespace, body)


def read_route(cluster: Cluster, kind: RouterKind, name: str) -> dict[str, Any]:
    group, version, plural, _, _ = ROUTERS[kind]
    found = custom(cluster).get_namespaced_custom_object(group, version, cluster.namespace, plural, name)
    assert isinstance(found, dict)
    return found


def weights(route: dict[str, Any], kind: RouterKind) -> list[tuple[str, int | None]]:
    """The managed rule's backends (the last rule) as (service, weight)."""
    _, _, _, rules, backends = ROUTERS[kind]
    out = []
    for backend in route["spec"][rules][-1][backends]:
        service = backend["name"] if kind is RouterKind.HTTP_ROUTE else backend["destination"]["host"]
        out.append((str(service), backend.get("weight")))
    return out


def router(kind: RouterKind, name: str) -> dict[str, Any]:
    return {"kind": kind.value, "name": name, "stable_service": name, "canary_service": f"{name}-canary"}


async def watch_weights(
    cluster: Cluster, kind: RouterKind, name: str, deploy_events: DeployEvents, request_id: str
) -> tuple[list[int], list[dict[str, str]]]:
    """The canary weights the route shows while the rollout runs (each distinct value once, in order), and the
    stable Service's selectors seen meanwhile (each distinct one once)."""
    seen: list[int] = []
    selectors: list[dict[str, str]] = []
    deadline = time.monotonic() + 150
    while not any(
        isinstance(e.payload(), DeploySucceeded | DeployFailed) for e in deploy_events.for_request(request_id)
    ):
        assert time.monotonic() < deadline, [e.type for e in deploy_events.for_request(request_id)]
        route = await asyncio.to_thread(read_route, cluster, kind, name)
        canary = dict(weights(route, kind)).get(f"{name}-canary")
        if canary is not None and (not seen or seen[-1] != canary):
            seen.append(canary)
        stable_selector = await asyncio.to_thread(selector, cluster, name)
        if stable_selector not in selectors:
            selectors.append(stable_selector)
        await asyncio.sleep(0.2)
    return seen, selectors


async def paused_message(deploy_events: DeployEvents, request_id: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in deploy_events.for_request(request_id):
            payload = event.payload()
            if isinstance(payload, DeployProgressed) and payload.phase is DeployPhase.PAUSED:
                return payload.message or ""
        await asyncio.sleep(0.2)
    pytest.fail(f"no paused deploy.progressed within {timeout:.0f}s: {deploy_events.for_request(request_id)}")


@pytest.mark.parametrize("kind", [RouterKind.HTTP_ROUTE, RouterKind.VIRTUAL_SERVICE])
async def test_weighted_canary_passes_10_30_60_100_and_the_stable_becomes_the_new_version(
    kind: RouterKind,
    cluster: Cluster,
    deployer: Deployer,
    client_bus: Bus,
    deploy_events: DeployEvents,
    prometheus: FakePrometheus,
) -> None:
    cluster.create_deployment("web", replicas=3, image="registry.example/web:1")
    await rolled_out(cluster, "web")
    await asyncio.to_thread(create_route, cluster, kind, "web")
    before = await asyncio.to_thread(read_route, cluster, kind, "web")
    prometheus.answer = answer(0.99)
    passing = {"metrics": [metric(0.95)]}
    spec = CanarySpec.model_validate(
        {
            "steps": [
                {"weight": 10, "pause_seconds": 1},
                {"weight": 30, "analysis": passing},
                {"weight": 60, "pause_seconds": 1},
                {"weight": 100, "analysis": passing},
            ],
            "router": {**router(kind, "web"), "canary_replicas": 1},
        }
    )
    request = request_event(
        cluster, "web", strategy=Strategy.CANARY, images={"app": "registry.example/web:2"}, canary=spec
    )
    await client_bus.publisher.publish(request)

    seen, selectors = await watch_weights(cluster, kind, "web", deploy_events, request.id)
    await deploy_events.wait(request.id, DeploySucceeded, timeout=5)
    assert seen == [10, 30, 60, 100, 0]  # each step on the route, then all traffic back on the (new) stable
    # While the route split the traffic the stable Service selected the stable ReplicaSet's pods only.
    assert any("pod-template-hash" in s for s in selectors), selectors
    assert selector(cluster, "web") == {"app": "web"}  # and it has its own selector back
    progressed = [
        (p.step, p.canary_weight)
        for e in deploy_events.for_request(request.id)
        if isinstance(p := e.payload(), DeployProgressed) and p.step is not None
    ]
    for step, weight in [(1, 10), (2, 30), (3, 60), (4, 100)]:
        assert (step, weight) in progressed, progressed

    after = await asyncio.to_thread(read_route, cluster, kind, "web")
    host = "web-canary"
    assert weights(after, kind) == [("web", 100), (host, 0)]
    _, _, _, rules, _ = ROUTERS[kind]
    assert after["spec"][rules][0] == before["spec"][rules][0]  # the other rule is untouched
    await rolled_out(cluster, "web", timeout=30)
    assert image_of(cluster, "web") == "registry.example/web:2"
    assert cluster.deployment("web").spec.replicas == 3  # the stable's size never followed the weights
    assert deployment_names(cluster) == ["web"]


@pytest.mark.parametrize("kind", [RouterKind.HTTP_ROUTE, RouterKind.VIRTUAL_SERVICE])
async def test_failing_analysis_at_30_percent_puts_all_traffic_back_on_the_stable(
    kind: RouterKind,
    cluster: Cluster,
    deployer: Deployer,
    client_bus: Bus,
    deploy_events: DeployEvents,
    prometheus: FakePrometheus,
) -> None:
    cluster.create_deployment("api", replicas=2, image="registry.example/api:1")
    stable_before = await rolled_out(cluster, "api")
    await asyncio.to_thread(create_route, cluster, kind, "api")
    prometheus.answer = answer(0.42)
    spec = CanarySpec.model_validate(
        {
            "steps": [{"weight": 10}, {"weight": 30, "analysis": {"metrics": [metric(0.95)]}}, {"weight": 60}],
            "router": router(kind, "api"),
        }
    )
    request = request_event(
        cluster, "api", strategy=Strategy.CANARY, images={"app": "registry.example/api:2"}, canary=spec
    )
    await client_bus.publisher.publish(request)

    seen, _ = await watch_weights(cluster, kind, "api", deploy_events, request.id)
    failed = (await deploy_events.wait(request.id, DeployFailed, timeout=5)).payload_as(DeployFailed)
    assert failed.reason is DeployFailureReason.ANALYSIS_FAILED
    assert failed.failed_step == 2
    assert failed.analysis[0].measurements[0].value == pytest.approx(0.42)
    rolled = (await deploy_events.wait(request.id, DeployRolledBack, timeout=30)).payload_as(DeployRolledBack)
    assert rolled.automatic
    assert seen[:2] == [10, 30]
    assert 60 not in seen

    route = await asyncio.to_thread(read_route, cluster, kind, "api")
    assert weights(route, kind) == [("api", 100), ("api-canary", 0)]
    assert selector(cluster, "api") == {"app": "api"}
    assert cluster.deployment("api").metadata.generation == stable_before.metadata.generation
    assert image_of(cluster, "api") == "registry.example/api:1"
    for _ in range(60):
        if deployment_names(cluster) == ["api"]:
            break
        await asyncio.sleep(0.5)
    assert deployment_names(cluster) == ["api"]


async def test_an_edit_of_the_weights_by_someone_else_pauses_the_rollout_and_is_not_overwritten(
    cluster: Cluster, deployer: Deployer, client_bus: Bus, deploy_events: DeployEvents
) -> None:
    kind = RouterKind.HTTP_ROUTE
    cluster.create_deployment("shop", replicas=2, image="registry.example/shop:1")
    await rolled_out(cluster, "shop")
    await asyncio.to_thread(create_route, cluster, kind, "shop")
    spec = CanarySpec.model_validate(
        {"steps": [{"weight": 10, "pause_seconds": 3}, {"weight": 50}], "router": router(kind, "shop")}
    )
    request = request_event(
        cluster, "shop", strategy=Strategy.CANARY, images={"app": "registry.example/shop:2"}, canary=spec
    )
    await client_bus.publisher.publish(request)

    deadline = time.monotonic() + 60
    while True:
        route = await asyncio.to_thread(read_route, cluster, kind, "shop")
        if weights(route, kind) == [("shop", 90), ("shop-canary", 10)]:
            break
        assert time.monotonic() < deadline, weights(route, kind)
        await asyncio.sleep(0.1)
    # An operator moves the traffic by hand during the pause (a replace on the version just read).
    edited = copy.deepcopy(route)
    edited["spec"]["rules"][-1]["backendRefs"][0]["weight"] = 70
    edited["spec"]["rules"][-1]["backendRefs"][1]["weight"] = 30
    group, version, plural, _, _ = ROUTERS[kind]
    await asyncio.to_thread(
        custom(cluster).replace_namespaced_custom_object, group, version, cluster.namespace, plural, "shop", edited
    )

    message = await paused_message(deploy_events, request.id, timeout=30)
    assert "edited by someone else" in message
    assert "opsbus set 90/10" in message
    assert "70/30" in message
    status = await paused(client_bus, request.id)  # what `GET /v1/deployments/{id}` shows
    assert status.canary_weight == 10
    assert status.step == 1
    await asyncio.sleep(4)  # well past the step's pause: the deployer still writes nothing
    route = await asyncio.to_thread(read_route, cluster, kind, "shop")
    assert weights(route, kind) == [("shop", 70), ("shop-canary", 30)]
    assert not any(
        isinstance(e.payload(), DeploySucceeded | DeployFailed) for e in deploy_events.for_request(request.id)
    )

    # Putting opsbus's weights back resumes the rollout, which then finishes normally.
    route["spec"]["rules"][-1]["backendRefs"][0]["weight"] = 90
    route["spec"]["rules"][-1]["backendRefs"][1]["weight"] = 10
    await asyncio.to_thread(
        custom(cluster).replace_namespaced_custom_object, group, version, cluster.namespace, plural, "shop", route
    )
    await deploy_events.wait(request.id, DeploySucceeded, timeout=90)
    final = await asyncio.to_thread(read_route, cluster, kind, "shop")
    assert weights(final, kind) == [("shop", 100), ("shop-canary", 0)]
    assert image_of(cluster, "shop") == "registry.example/shop:2"
