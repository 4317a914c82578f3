"""The deployer's writes on the change timeline: a rollout and its revert, each once, caused by the request.

Against the sandbox apiserver, a real nats-server and a real PostgreSQL (the harness of test_deployer_rollouts):
what a team subscribed to `change.recorded.sandbox.<namespace>` sees after a `deploy.requested`.
"""

from __future__ import annotations

import pytest

from opsbus.common.bus import Bus
from opsbus.common.events.payloads import ChangeKind, ChangeOrigin, ChangeRecorded
from opsbus.common.events.payloads.common import Actor, ActorKind
from opsbus.common.events.payloads.deploy import DeployAborted, DeployStarted, DeploySucceeded, Strategy
from opsbus.common.rpc import call
from opsbus.deployer.api import CommandRequest, RolloutSelector, RolloutView
from opsbus.deployer.service import Deployer
from tests.cluster.changes import change_log
from tests.cluster.kube import Cluster
from tests.cluster.test_deployer_rollouts import (
    CLUSTER,
    DeployEvents,
    client_bus,
    crashing_manifest,
    deploy_events,
    deployer,
    prometheus,
    request_event,
    rolled_out,
    settings,
)

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
