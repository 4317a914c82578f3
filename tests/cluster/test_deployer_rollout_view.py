"""What the console's rollout view reads from the deployer, on the sandbox: a canary paused for a human at its
first step shows its requested steps, the step and stage it is at, and its new (`<name>-canary`) and old
ReplicaSets with their images; the latest rollouts are listed per namespace and nowhere else.

Against the real deployer (its wiring and request-reply endpoints), NATS JetStream, PostgreSQL and the sandbox
apiserver.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from opsbus.common.api.calling import Caller
from opsbus.common.bus import Bus
from opsbus.common.events.payloads.common import Actor, ActorKind
from opsbus.common.events.payloads.deploy import CanarySpec, DeployAborted, Strategy
from opsbus.common.rpc import RpcError, call
from opsbus.deployer.api import (
    CommandRequest,
    RecentRequest,
    ReplicaSetsResponse,
    RolloutList,
    RolloutSelector,
    RolloutView,
)
from opsbus.deployer.service import Deployer
from tests.cluster.kube import Cluster
from tests.cluster.test_deployer_rollouts import (
    DeployEvents,
    client_bus,
    deploy_events,
    deployer,
    prometheus,
    request_event,
    rolled_out,
    settings,
)

pytestmark = [pytest.mark.cluster, pytest.mark.integration]
__all__ = ["client_bus", "deploy_events", "deployer", "prometheus", "settings"]  # fixtures


async def paused(bus: Bus, request_id: str, timeout: float = 60) -> RolloutView:
    selector = RolloutSelector(request_id=request_id)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            view = await call(bus.nc, "deployer", "status", selector, RolloutView)
        except RpcError as exc:
            if exc.code != 404:  # 404: not picked up yet
                raise
        else:
            if view.phase == "paused":
                return view
        await asyncio.sleep(0.3)
    pytest.fail(f"rollout {request_id} did not pause within {timeout}s")


async def test_a_paused_canary_shows_its_steps_and_its_new_and_old_replica_sets(
    cluster: Cluster, deployer: Deployer, client_bus: Bus, deploy_events: DeployEvents
) -> None:
    cluster.create_deployment("shop", replicas=2, image="registry.example/shop:1")
    await rolled_out(cluster, "shop")
    spec = CanarySpec.model_validate({"steps": [{"weight": 50, "manual_promotion": True}, {"weight": 100}]})
    request = request_event(
        cluster,
        "shop",
        strategy=Strategy.CANARY,
        images={"app": "registry.example/shop:2"},
        canary=spec,
        reason="CHG-7",
    )
    await client_bus.publisher.publish(request)

    view = await paused(client_bus, request.id)
    assert view.state == "running" and view.strategy == "canary"
    assert view.step == 1 and view.stage == "manual"
    assert view.canary == spec and view.images == {"app": "registry.example/shop:2"}
    assert view.request_reason == "CHG-7"

    sets = await call(
        client_bus.nc, "deployer", "replicasets", RolloutSelector(request_id=request.id), ReplicaSetsResponse
    )
    assert sets.workload == f"Deployment/{cluster.namespace}/shop"
    roles = {(s.role, s.deployment): s for s in sets.replica_sets}
    new, old = roles[("new", "shop-canary")], roles[("old", "shop")]
    assert new.images == {"app": "registry.example/shop:2"} and new.replicas == 2
    assert old.images == {"app": "registry.example/shop:1"} and old.replicas == 2

    mine = await call(client_bus.nc, "deployer", "recent", RecentRequest(namespaces=(cluster.namespace,)), RolloutList)
    assert [r.request_id for r in mine.rollouts] == [request.id]
    running = RecentRequest(namespaces=(cluster.namespace,), state="succeeded")
    assert (await call(client_bus.nc, "deployer", "recent", running, RolloutList)).rollouts == ()
    elsewhere = await call(client_bus.nc, "deployer", "recent", RecentRequest(namespaces=("elsewhere",)), RolloutList)
    assert elsewhere.rollouts == ()

    operator = Actor(kind=ActorKind.APIKEY, id="key-ops-1")
    abort = CommandRequest(
        rollout=RolloutSelector(request_id=request.id),
        actor=operator,
        reason="seen enough",
        caller=Caller(actor=operator, request_id="req-1"),
    )
    await call(client_bus.nc, "deployer", "abort", abort, RolloutView)
    await deploy_events.wait(request.id, DeployAborted, timeout=60)
