"""The deployer's writes on the change timeline: a rollout and its revert, each once, caused by the request; a
canary's scaling steps and promotion; a weighted canary's route writes (each step, and the abort's restore); a
blue-green switch of the Service's selector.

Against the sandbox apiserver, a real nats-server and a real PostgreSQL (the harness of test_deployer_rollouts):
what a team subscribed to `change.recorded.sandbox.<namespace>` sees after a `deploy.requested`.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from opsbus.common.bus import Bus
from opsbus.common.events.payloads import ChangeKind, ChangeOrigin, ChangeRecorded
from opsbus.common.events.payloads.common import Actor, ActorKind
from opsbus.common.events.payloads.deploy import (
    BlueGreenSpec,
    CanarySpec,
    DeployAborted,
    DeployRolledBack,
    DeployStarted,
    DeploySucceeded,
    RouterKind,
    Strategy,
)
from opsbus.common.rpc import call
from opsbus.deployer.api import CommandRequest, RolloutSelector, RolloutView
from opsbus.deployer.service import Deployer
from tests.cluster.changes import ChangeLog, change_log
from tests.cluster.kube import Cluster
from tests.cluster.test_deployer_bluegreen import create_service, pod_hashes
from tests.cluster.test_deployer_canary import answer, metric
from tests.cluster.test_deployer_rollouts import (
    CLUSTER,
    DeployEvents,
    FakePrometheus,
    client_bus,
    crashing_manifest,
    deploy_events,
    deployer,
    prometheus,
    request_event,
    rolled_out,
    settings,
)
from tests.cluster.test_deployer_traffic import create_route, read_route, router, weights

pytestmark = [pytest.mark.cluster, pytest.mark.integration]
__all__ = ["client_bus", "deploy_events", "deployer", "prometheus", "settings"]  # fixtures shared with rollouts

IMAGE = "spec.template.spec.containers[app].image"


async def test_a_rollout_is_one_change_caused_by_its_request(
    cluster: Cluster, deployer: Deployer, client_bus: Bus, deploy_events: DeployEvents
) -> None:
    cluster.create_deployment("web", replicas=2, image="registry.example/web:1.0")
    await rolled_out(cluster, "web")
    async with change_log(client_bus, f"change.recorded.{CLUSTER}.{cluster.namespace}") as changes:
        request = request_event(cluster, "web", strategy=Strategy.ROLLING, images={"app": "registry.example/web:2.0"})
        await client_bus.publisher.publish(request)
        started = await deploy_events.wait(request.id, DeployStarted, timeout=60)
        await deploy_events.wait(request.id, DeploySucceeded, timeout=120)
        event = await changes.wait(lambda e, c: c.origin is ChangeOrigin.DEPLOYER, timeout=10, what="the rollout")

    change = event.payload_as(ChangeRecorded)
    assert event.causationid == request.id and event.correlationid == request.id
    assert event.traceparent and started.traceparent  # written in deploy.started's transaction, in its trace
    assert event.traceparent.split("-")[1] == started.traceparent.split("-")[1]
    assert event.subject == f"Deployment/{cluster.namespace}/web"
    assert change.action == "deploy.rolling"
    assert change.kinds[0] is ChangeKind.ACTION and ChangeKind.IMAGE in change.kinds
    assert change.workload is not None and change.workload.name == "web"
    assert [(d.path, d.before, d.after) for d in change.diff] == [
        (IMAGE, "registry.example/web:1.0", "registry.example/web:2.0")
    ]
    assert change.actor == Actor(kind=ActorKind.SERVICE, id="deployer")
    assert change.resource_version  # the apiserver's answer to the write
    assert len(changes.matching(lambda e, c: c.origin is ChangeOrigin.DEPLOYER)) == 1  # no double


async def test_an_abort_records_the_revert_as_a_second_change_of_the_same_chain(
    cluster: Cluster, deployer: Deployer, client_bus: Bus, deploy_events: DeployEvents
) -> None:
    cluster.create_deployment("pay", replicas=2, image="registry.example/pay:1.0")
    await rolled_out(cluster, "pay")
    async with change_log(client_bus, f"change.recorded.{CLUSTER}.{cluster.namespace}") as changes:
        request = request_event(
            cluster,
            "pay",
            strategy=Strategy.ROLLING,
            manifest=crashing_manifest("pay", "registry.example/pay:1.1"),
            progress_deadline_seconds=600,
        )
        await client_bus.publisher.publish(request)
        await deploy_events.wait(request.id, DeployStarted, timeout=30)
        operator = Actor(kind=ActorKind.USER, id="oncall@example.com")
        selector = RolloutSelector(request_id=request.id)
        command = CommandRequest(rollout=selector, actor=operator, reason="wrong build")
        await call(client_bus.nc, "deployer", "abort", command, RolloutView)
        await deploy_events.wait(request.id, DeployAborted, timeout=60)
        revert = await changes.wait(lambda e, c: c.action == "deploy.rollback", timeout=10, what="the revert")

    ours = changes.matching(lambda e, c: c.origin is ChangeOrigin.DEPLOYER)
    assert [e.payload_as(ChangeRecorded).action for e in ours] == ["deploy.rolling", "deploy.rollback"]
    assert all(e.correlationid == request.id and e.causationid == request.id for e in ours)
    diff = {d.path: (d.before, d.after) for d in revert.payload_as(ChangeRecorded).diff}
    assert diff[IMAGE] == ("registry.example/pay:1.1", "registry.example/pay:1.0")


def _ours(changes: ChangeLog, request_id: str) -> list[tuple[str, ChangeRecorded]]:
    """The deployer's changes for one request, in order, each checked to be caused by the request."""
    out = []
    for e in changes.matching(lambda e, c: c.origin is ChangeOrigin.DEPLOYER):
        assert e.causationid == request_id and e.correlationid == request_id, e.payload_as(ChangeRecorded).summary
        out.append((e.subject, e.payload_as(ChangeRecorded)))
    return out


async def test_canary_steps_and_promotion_are_changes_caused_by_the_request(
    cluster: Cluster, deployer: Deployer, client_bus: Bus, deploy_events: DeployEvents, prometheus: FakePrometheus
) -> None:
    cluster.create_deployment("cart", replicas=4, image="registry.example/cart:1")
    await rolled_out(cluster, "cart")
    prometheus.answer = answer(0.99)
    spec = CanarySpec.model_validate({"steps": [{"weight": 25, "pause_seconds": 1}, {"weight": 50}]})
    async with change_log(client_bus, f"change.recorded.{CLUSTER}.{cluster.namespace}") as changes:
        request = request_event(
            cluster, "cart", strategy=Strategy.CANARY, images={"app": "registry.example/cart:2"}, canary=spec
        )
        await client_bus.publisher.publish(request)
        await deploy_events.wait(request.id, DeploySucceeded, timeout=120)
        await changes.wait(lambda e, c: c.action == "deploy.canary.promote", timeout=10, what="the promotion")

    ours = _ours(changes, request.id)
    actions = [c.action for _, c in ours]
    assert actions[0] == "deploy.canary.create"
    assert "deploy.canary.promote" in actions
    scales = [c for _, c in ours if c.action == "deploy.canary.scale"]
    assert scales, actions  # every step that scaled the canary is on the timeline
    for scale in scales:
        assert ChangeKind.REPLICAS in scale.kinds
        assert scale.object.name == "cart-canary" and scale.workload is not None and scale.workload.name == "cart"
        (d,) = scale.diff
        assert d.path == "spec.replicas" and d.before != d.after
    replicas = [int(c.diff[0].after or 0) for c in scales]
    assert replicas[:-1] == sorted(replicas[:-1]) and replicas[-1] == 0  # grows step by step, then drained
    assert actions.index("deploy.canary.promote") < len(actions) - 1 - actions[::-1].index("deploy.canary.scale")
    subject, promote = next((s, c) for s, c in ours if c.action == "deploy.canary.promote")
    assert subject == f"Deployment/{cluster.namespace}/cart"
    assert ChangeKind.IMAGE in promote.kinds
    assert (IMAGE, "registry.example/cart:1", "registry.example/cart:2") in [
        (d.path, d.before, d.after) for d in promote.diff
    ]
    assert len({c.resource_version for _, c in ours}) == len(ours)  # one entry per write, none doubled


async def test_blue_green_switch_is_a_service_change_caused_by_the_request(
    cluster: Cluster, deployer: Deployer, client_bus: Bus, deploy_events: DeployEvents, prometheus: FakePrometheus
) -> None:
    cluster.create_deployment("shop", replicas=2, image="registry.example/shop:1")
    create_service(cluster, "shop", "shop")
    await rolled_out(cluster, "shop")
    old_hashes = await asyncio.to_thread(pod_hashes, cluster, "app=shop")
    prometheus.answer = answer(0.99)
    spec = BlueGreenSpec.model_validate({"active_service": "shop", "scale_down_delay_seconds": 1})
    async with change_log(client_bus, f"change.recorded.{CLUSTER}.{cluster.namespace}") as changes:
        request = request_event(
            cluster, "shop", strategy=Strategy.BLUE_GREEN, images={"app": "registry.example/shop:2"}, blue_green=spec
        )
        await client_bus.publisher.publish(request)
        await deploy_events.wait(request.id, DeploySucceeded, timeout=120)
        await changes.wait(lambda e, c: c.action == "deploy.bluegreen.restore", timeout=10, what="the restore")

    ours = _ours(changes, request.id)
    actions = [c.action for _, c in ours]
    assert actions[0] == "deploy.bluegreen.create"
    assert actions.index("deploy.bluegreen.switch") < actions.index("deploy.bluegreen.promote"), actions
    subject, switch = next((s, c) for s, c in ours if c.action == "deploy.bluegreen.switch")
    assert subject == f"Service/{cluster.namespace}/shop"
    assert switch.workload is not None and switch.workload.name == "shop"
    (d,) = switch.diff
    assert d.path == "spec.selector"
    before, after = json.loads(d.before or "{}"), json.loads(d.after or "{}")
    assert after["app"] == "shop" and after["pod-template-hash"] != before.get("pod-template-hash")
    assert after["pod-template-hash"] not in old_hashes  # traffic to the new stack's pods
    _, promote = next((s, c) for s, c in ours if c.action == "deploy.bluegreen.promote")
    assert (IMAGE, "registry.example/shop:1", "registry.example/shop:2") in [
        (x.path, x.before, x.after) for x in promote.diff
    ]
    _, restore = next((s, c) for s, c in ours if c.action == "deploy.bluegreen.restore")
    assert json.loads(restore.diff[0].after or "{}") == {"app": "shop"}  # the original selector back


async def test_route_weight_writes_and_the_abort_restore_are_changes_caused_by_the_request(
    cluster: Cluster, deployer: Deployer, client_bus: Bus, deploy_events: DeployEvents, prometheus: FakePrometheus
) -> None:
    kind = RouterKind.HTTP_ROUTE
    cluster.create_deployment("api", replicas=2, image="registry.example/api:1")
    await rolled_out(cluster, "api")
    await asyncio.to_thread(create_route, cluster, kind, "api")
    prometheus.answer = answer(0.42)  # the analysis at 30% fails: the route goes back to 100/0
    spec = CanarySpec.model_validate(
        {
            "steps": [{"weight": 10}, {"weight": 30, "analysis": {"metrics": [metric(0.95)]}}, {"weight": 60}],
            "router": router(kind, "api"),
        }
    )
    async with change_log(client_bus, f"change.recorded.{CLUSTER}.{cluster.namespace}") as changes:
        request = request_event(
            cluster, "api", strategy=Strategy.CANARY, images={"app": "registry.example/api:2"}, canary=spec
        )
        await client_bus.publisher.publish(request)
        await deploy_events.wait(request.id, DeployRolledBack, timeout=150)
        await changes.wait(lambda e, c: c.action == "deploy.canary.route_restore", timeout=10, what="the restore")

    ours = _ours(changes, request.id)
    routes = [(s, c) for s, c in ours if c.object.kind == "HTTPRoute"]
    assert [c.action for _, c in routes] == ["deploy.canary.route"] * 2 + ["deploy.canary.route_restore"], ours
    assert {s for s, _ in routes} == {f"HTTPRoute/{cluster.namespace}/api"}
    steps = []
    for _, change in routes:
        assert change.workload is not None and change.workload.name == "api"
        assert ChangeKind.ACTION in change.kinds
        (d,) = change.diff  # the managed rule only; the /admin rule is not ours
        assert d.path == "spec.rules[1].weight"
        steps.append((json.loads(d.before or "null"), json.loads(d.after or "null")))
    assert steps == [
        ({"api": 1, "api-canary": 0}, {"api": 90, "api-canary": 10}),
        ({"api": 90, "api-canary": 10}, {"api": 70, "api-canary": 30}),
        ({"api": 70, "api-canary": 30}, {"api": 100, "api-canary": 0}),
    ]
    route = await asyncio.to_thread(read_route, cluster, kind, "api")
    assert weights(route, kind) == [("api", 100), ("api-canary", 0)]
    assert routes[-1][1].resource_version == route["metadata"]["resourceVersion"]  # the last write is the route now
    assert len({c.resource_version for _, c in routes}) == 3  # one entry per write, none doubled
