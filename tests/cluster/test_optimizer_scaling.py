"""The optimizer's replica changes, its respect for HPAs and PodDisruptionBudgets, a recommendation applied
through its endpoint, and a restart between two cycles, against the sandbox apiserver, real NATS JetStream,
real PostgreSQL and a Prometheus HTTP API on 127.0.0.1 serving eight days of usage for the test's pods.

Every workload here is over-provisioned (about 0.1 core used per pod against 1 core requested), so the
horizontal formula asks for fewer replicas: what the optimizer does with that wish is what is checked.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest
from kubernetes import client

from opsbus.common.bus import Bus
from opsbus.common.events.payloads.common import Actor, ActorKind
from opsbus.common.rpc import RpcError, call
from opsbus.optimizer import store
from opsbus.optimizer.domain.api import (
    ApplyRecommendationRequest,
    ApplyRecommendationResponse,
    ListRecommendationsRequest,
    RecommendationList,
)
from opsbus.optimizer.domain.planning import Action, Plan
from opsbus.optimizer.testing import FakePrometheus
from tests.cluster.conftest import SandboxHandle
from tests.cluster.kube import Cluster
from tests.cluster.test_optimizer_rightsizing import (
    CLUSTER,
    Start,
    create_deployment,
    idle,
    optimizers,
    requests_of,
    running,
    stream,
    wait_for,
)

pytestmark = pytest.mark.cluster
OPERATOR = Actor(kind=ActorKind.USER, id="oncall@example.com")


@pytest.fixture
async def start_optimizer(database_url: str, nats_url: str, sandbox: SandboxHandle) -> AsyncIterator[Start]:
    async with optimizers(database_url, nats_url, sandbox) as start:
        yield start


def replicas_of(cluster: Cluster, name: str) -> int:
    return int(cluster.deployment(name).spec.replicas)


def create_hpa(cluster: Cluster, name: str, target: str) -> Any:
    body = client.V2HorizontalPodAutoscaler(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V2HorizontalPodAutoscalerSpec(
            scale_target_ref=client.V2CrossVersionObjectReference(
                api_version="apps/v1", kind="Deployment", name=target
            ),
            min_replicas=2,
            max_replicas=10,
            metrics=[
                client.V2MetricSpec(
                    type="Resource",
                    resource=client.V2ResourceMetricSource(
                        name="cpu", target=client.V2MetricTarget(type="Utilization", average_utilization=70)
                    ),
                )
            ],
        ),
    )
    return client.AutoscalingV2Api(cluster.api).create_namespaced_horizontal_pod_autoscaler(cluster.namespace, body)


def create_pdb(cluster: Cluster, name: str, app: str, min_available: int) -> Any:
    body = client.V1PodDisruptionBudget(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1PodDisruptionBudgetSpec(
            min_available=min_available, selector=client.V1LabelSelector(match_labels={"app": app})
        ),
    )
    return client.PolicyV1Api(cluster.api).create_namespaced_pod_disruption_budget(cluster.namespace, body)


MakeBus = Callable[..., Awaitable[Bus]]


async def one_cycle(
    cluster: Cluster, start: Start, make_bus: MakeBus, app: str, replicas: int, **guardrails: object
) -> tuple[Plan, Bus]:
    """Run `app`'s pods, start an optimizer in auto mode on eight days of idle usage, run one cycle."""
    series = await running(cluster, app, replicas)
    async with AsyncExitStack() as stack:
        prom = await stack.enter_async_context(FakePrometheus(idle, lambda: series).running())
        optimizer = await start(cluster.namespace, prom.url, "auto", **guardrails)
        bus = await make_bus("test")
        report = await optimizer.cycle()
    (p,) = report.plans
    return p, bus


async def test_auto_mode_sheds_idle_replicas_down_to_min_replicas(
    cluster: Cluster, start_optimizer: Start, make_bus: MakeBus
) -> None:
    ns = cluster.namespace
    create_deployment(cluster, "shop", 6)
    p, bus = await one_cycle(cluster, start_optimizer, make_bus, "shop", 6, min_replicas=2)
    assert p.action is Action.APPLY, p.reason
    assert p.replicas_target == 2 and p.replicas_step == 2  # the formula says 1; min replicas holds it at 2
    assert replicas_of(cluster, "shop") == 2
    applied = await wait_for(bus, f"scale.applied.{CLUSTER}.{ns}", lambda es: len(es) >= 1)
    assert applied[0].data["replicas"] == {"current": 6, "recommended": 2}
    assert applied[0].data["cost"]["monthly_delta"] < 0


async def test_an_hpa_managed_workload_keeps_its_replicas_in_auto_mode(
    cluster: Cluster, start_optimizer: Start, make_bus: MakeBus
) -> None:
    ns = cluster.namespace
    create_deployment(cluster, "search", 4)
    create_hpa(cluster, "search", "search")
    p, bus = await one_cycle(cluster, start_optimizer, make_bus, "search", 4, min_replicas=1)
    assert p.replicas_target is None and p.replicas_step is None
    assert "replicas left to HPA search" in p.reason
    assert p.action is Action.APPLY  # requests are still right-sized: the HPA scales on their share
    assert replicas_of(cluster, "search") == 4
    applied = await wait_for(bus, f"scale.applied.{CLUSTER}.{ns}", lambda es: len(es) >= 1)
    assert applied[0].data.get("replicas") is None  # no replica count was written
    recs = await wait_for(bus, f"scale.recommended.{CLUSTER}.{ns}", lambda es: len(es) >= 1)
    assert all(e.data.get("replicas") is None for e in recs)


async def test_a_pdb_holds_the_scale_down_at_its_min_available(
    cluster: Cluster, start_optimizer: Start, make_bus: MakeBus
) -> None:
    ns = cluster.namespace
    create_deployment(cluster, "cart", 6)
    create_pdb(cluster, "cart", "cart", 4)
    p, bus = await one_cycle(cluster, start_optimizer, make_bus, "cart", 6, min_replicas=1)
    assert p.action is Action.APPLY and p.replicas_step == 4, p.reason
    assert "PDB minAvailable 4" in p.reason
    assert replicas_of(cluster, "cart") == 4
    audit = await wait_for(
        bus, f"audit.recorded.{CLUSTER}.{ns}", lambda es: any(e.data["outcome"] == "executed" for e in es)
    )
    executed = next(e.data for e in audit if e.data["outcome"] == "executed")
    assert "PDB minAvailable 4" in executed["reason"]


async def test_a_recommendation_applied_through_the_endpoint_lands_once(
    cluster: Cluster, start_optimizer: Start, make_bus: MakeBus
) -> None:
    ns = cluster.namespace
    create_deployment(cluster, "books", 2)
    series = await running(cluster, "books", 2)
    async with AsyncExitStack() as stack:
        prom = await stack.enter_async_context(FakePrometheus(idle, lambda: series).running())
        optimizer = await start_optimizer(ns, prom.url, "recommend")
        bus = await make_bus("test")
        report = await optimizer.cycle()
        assert report.plans[0].action is Action.RECOMMEND
        assert requests_of(cluster, "books")[0] == {"cpu": "1", "memory": "1Gi"}  # recommend mode changes nothing
        listed = await call(
            bus.nc, "optimizer", "list_recommendations", ListRecommendationsRequest(namespace=ns), RecommendationList
        )
        (rec,) = listed.recommendations
        req = ApplyRecommendationRequest(recommendation_id=rec.id, actor=OPERATOR)
        answer = await call(bus.nc, "optimizer", "apply_recommendation", req, ApplyRecommendationResponse)
        assert answer.applied and not answer.dry_run and answer.resource_version
        with pytest.raises(RpcError) as again:
            await call(bus.nc, "optimizer", "apply_recommendation", req, ApplyRecommendationResponse)
    assert again.value.code == 409 and "applied" in again.value.description

    wanted = rec.recommendation.containers[0].recommended
    d = cluster.deployment("books")
    res = d.spec.template.spec.containers[0].resources
    # as recommended, not one clamped step: the operator chose it
    assert res.requests["cpu"] == f"{wanted.requests.cpu_millicores}m"
    assert wanted.requests.cpu_millicores is not None and wanted.requests.cpu_millicores < 700
    assert d.metadata.annotations["opsbus.io/optimizer-recommendation"] == rec.id
    applied = await wait_for(bus, f"scale.applied.{CLUSTER}.{ns}", lambda es: len(es) >= 1)
    assert len(applied) == 1
    assert applied[0].data["applied_by"] == {"kind": "user", "id": "oncall@example.com"}


async def test_an_optimizer_restarted_between_cycles_does_not_apply_a_second_step(
    cluster: Cluster, start_optimizer: Start, make_bus: MakeBus
) -> None:
    ns = cluster.namespace
    create_deployment(cluster, "ledger", 2)
    series = await running(cluster, "ledger", 2)
    async with AsyncExitStack() as stack:
        prom = await stack.enter_async_context(FakePrometheus(idle, lambda: series).running())
        first = await start_optimizer(ns, prom.url, "auto", cooldown_seconds=3600)
        bus = await make_bus("test")
        assert (await first.cycle()).plans[0].action is Action.APPLY
        after_first = requests_of(cluster, "ledger")
        assert after_first[0]["cpu"] == "700m"  # one clamped step
        await start_optimizer.stop(first)

        second = await start_optimizer(ns, prom.url, "auto", cooldown_seconds=3600)
        p = (await second.cycle()).plans[0]
        assert (p.action, p.guard) == (Action.BLOCKED, "cooldown"), p.reason

        # the crash window: the patch landed but the store never recorded it
        async with second.db.sessions.begin() as s:
            t = store.workload_state
            await s.execute(t.update().where(t.c.namespace == ns).values(last_applied_at=None))
        p = (await second.cycle()).plans[0]
        assert (p.action, p.guard) == (Action.BLOCKED, "cooldown"), p.reason  # the annotation on the object holds
    assert requests_of(cluster, "ledger")[0] == after_first[0]
    assert len(await stream(bus, f"scale.applied.{CLUSTER}.{ns}")) == 1
