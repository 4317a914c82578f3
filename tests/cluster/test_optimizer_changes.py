"""The optimizer's writes on the change timeline: an applied scale or resize once, by the optimizer or by the
person who applied the recommendation.

Against the sandbox apiserver, real NATS JetStream and PostgreSQL, and a Prometheus HTTP API on 127.0.0.1
serving eight days of idle usage (the harness of test_optimizer_rightsizing / test_optimizer_scaling).
"""

from __future__ import annotations

from contextlib import AsyncExitStack

import pytest

from opsbus.common.events import Envelope
from opsbus.common.events.payloads import Actor, ActorKind, ChangeKind, ChangeOrigin, ChangeRecorded
from opsbus.common.rpc import call
from opsbus.optimizer.domain.api import (
    ApplyRecommendationRequest,
    ApplyRecommendationResponse,
    ListRecommendationsRequest,
    RecommendationList,
)
from opsbus.optimizer.domain.planning import Action
from opsbus.optimizer.testing import FakePrometheus
from tests.cluster.kube import Cluster
from tests.cluster.test_optimizer_rightsizing import CLUSTER, Start, create_deployment, idle, running, wait_for
from tests.cluster.test_optimizer_scaling import OPERATOR, MakeBus, one_cycle, start_optimizer

pytestmark = pytest.mark.cluster
__all__ = ["start_optimizer"]  # the fixture shared with test_optimizer_scaling


def changes(events: list[Envelope]) -> list[ChangeRecorded]:
    return [e.payload_as(ChangeRecorded) for e in events]


async def test_an_automatic_scale_down_is_one_change_by_the_optimizer(
    cluster: Cluster, start_optimizer: Start, make_bus: MakeBus
) -> None:
    create_deployment(cluster, "shop", 6)
    p, bus = await one_cycle(cluster, start_optimizer, make_bus, "shop", 6, min_replicas=2)
    assert p.action is Action.APPLY, p.reason
    subject = f"change.recorded.{CLUSTER}.{cluster.namespace}"
    events = await wait_for(bus, subject, lambda es: len(es) >= 1)
    (event,) = events  # one, no double
    (change,) = changes(events)
    assert change.origin is ChangeOrigin.OPTIMIZER and change.action == "scale.apply"
    assert change.actor == Actor(kind=ActorKind.SERVICE, id="optimizer")
    assert ChangeKind.REPLICAS in change.kinds
    assert ("spec.replicas", "6", "2") in [(d.path, d.before, d.after) for d in change.diff]
    assert change.resource_version  # the apiserver's answer to the patch
    assert event.correlationid == event.id and event.causationid is None  # a cycle, not an answer to an event


async def test_a_recommendation_applied_by_a_person_is_their_change(
    cluster: Cluster, start_optimizer: Start, make_bus: MakeBus
) -> None:
    ns = cluster.namespace
    create_deployment(cluster, "books", 2)
    series = await running(cluster, "books", 2)
    async with AsyncExitStack() as stack:
        prom = await stack.enter_async_context(FakePrometheus(idle, lambda: series).running())
        optimizer = await start_optimizer(ns, prom.url, "recommend")
        bus = await make_bus("test")
        await optimizer.cycle()
        listed = await call(
            bus.nc, "optimizer", "list_recommendations", ListRecommendationsRequest(namespace=ns), RecommendationList
        )
        (rec,) = listed.recommendations
        req = ApplyRecommendationRequest(recommendation_id=rec.id, actor=OPERATOR)
        await call(bus.nc, "optimizer", "apply_recommendation", req, ApplyRecommendationResponse)
    (change,) = changes(await wait_for(bus, f"change.recorded.{CLUSTER}.{ns}", lambda es: len(es) >= 1))
    assert change.origin is ChangeOrigin.USER and change.actor == OPERATOR
    wanted = rec.recommendation.containers[0].recommended.requests.cpu_millicores
    cpu = "spec.template.spec.containers[app].resources.requests.cpu"
    assert (cpu, "1000m", f"{wanted}m") in [(d.path, d.before, d.after) for d in change.diff]
    assert change.kinds[:2] == (ChangeKind.ACTION, ChangeKind.RESOURCES)
    assert rec.id in change.summary
