"""The optimizer's applied changes as change timeline entries (`timeline.applied_change`, pure)."""

from __future__ import annotations

from opsbus.common.events.payloads import Actor, ActorKind, ChangeKind, ChangeOrigin, ChangeRecorded, WorkloadRef
from opsbus.common.events.payloads.common import ResourceQuantities, ResourceRequirements
from opsbus.common.events.payloads.scale import (
    ContainerRecommendation,
    CostEstimate,
    ReplicaRecommendation,
    ScaleApplied,
    ScaleMode,
)
from opsbus.optimizer.timeline import applied_change

WEB = WorkloadRef(kind="Deployment", namespace="shop", name="web")
MI = 1024 * 1024


def _applied(by: Actor) -> ScaleApplied:
    def req(cpu: int, memory: int) -> ResourceRequirements:
        q = ResourceQuantities(cpu_millicores=cpu, memory_bytes=memory)
        return ResourceRequirements(requests=q, limits=ResourceQuantities(memory_bytes=memory))

    return ScaleApplied(
        recommendation_id="rec-1",
        workload=WEB,
        containers=(
            ContainerRecommendation(container="app", current=req(1000, 512 * MI), recommended=req(250, 256 * MI)),
        ),
        replicas=ReplicaRecommendation(current=6, recommended=2),
        cost=CostEstimate(monthly_now=100, monthly_after=20, monthly_delta=-80),
        mode=ScaleMode.AUTO,
        applied_by=by,
    )


def test_an_automatic_apply_names_every_resource_and_the_replicas_in_the_watchers_paths() -> None:
    event = applied_change("prod", _applied(Actor(kind=ActorKind.SERVICE, id="optimizer")), "77", None, 1_700_000_000)
    change = event.payload_as(ChangeRecorded)
    path = "spec.template.spec.containers[app].resources"
    assert [(d.path, d.before, d.after) for d in change.diff] == [
        (f"{path}.requests.cpu", "1000m", "250m"),
        (f"{path}.requests.memory", str(512 * MI), str(256 * MI)),
        (f"{path}.limits.memory", str(512 * MI), str(256 * MI)),
        ("spec.replicas", "6", "2"),
    ]
    assert change.kinds == (ChangeKind.ACTION, ChangeKind.RESOURCES, ChangeKind.REPLICAS)
    assert change.origin is ChangeOrigin.OPTIMIZER and change.resource_version == "77"
    assert event.causationid is None and event.correlationid == event.id
    again = applied_change("prod", _applied(Actor(kind=ActorKind.SERVICE, id="optimizer")), "77", None, 1_700_000_001)
    assert again.id == event.id  # the same write (workload, resourceVersion): the same id


def test_a_person_applying_a_recommendation_is_the_origin() -> None:
    person = Actor(kind=ActorKind.USER, id="oncall@example.com")
    change = applied_change("prod", _applied(person), "78", None, 1_700_000_000).payload_as(ChangeRecorded)
    assert change.origin is ChangeOrigin.USER and change.actor == person
    assert "recommendation rec-1 (auto)" in change.summary
