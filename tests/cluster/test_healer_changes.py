"""The healer's writes on the change timeline: each applied action once, origin healer, caused by the alert.

Against the sandbox apiserver, a real nats-server and a real PostgreSQL (the harness of test_healer_remediation):
the test plays the watcher, publishes `alert.fired` and reads the CHANGE stream after each recovery succeeded.
"""

# ruff: noqa: F401, F811 - `start_healer` is the fixture imported from the shared healer harness below

from __future__ import annotations

import pytest

from opsbus.common.events import Envelope
from opsbus.common.events.payloads import Actor, ActorKind, ChangeKind, ChangeOrigin, ChangeRecorded
from opsbus.healer.cluster import RESTARTED_AT
from tests.cluster.kube import Cluster
from tests.cluster.test_healer_actions import POLICIES, MakeBus, deployment_alert, ready, succeeded
from tests.cluster.test_healer_remediation import CLUSTER, StartHealer, start_healer, stream, types, wait_for_events

pytestmark = pytest.mark.cluster


def trace_of(event: Envelope) -> str | None:
    return event.traceparent.split("-")[1] if event.traceparent else None


def healer_changes(events: list[Envelope]) -> list[Envelope]:
    return [e for e in events if e.payload_as(ChangeRecorded).origin is ChangeOrigin.HEALER]


async def test_a_restart_and_a_scale_are_each_one_change_caused_by_their_alert(
    cluster: Cluster, start_healer: StartHealer, make_bus: MakeBus
) -> None:
    cluster.create_deployment("web", replicas=1)
    cluster.create_deployment("api", replicas=1)
    await ready(cluster, "web", 1)
    await ready(cluster, "api", 1)
    await start_healer(policies=POLICIES)
    bus = await make_bus("watcher")
    stuck = deployment_alert(cluster, "RolloutStuck", "web")
    await bus.publisher.publish(stuck)
    await succeeded(bus)
    low = deployment_alert(cluster, "CapacityLow", "api")
    await bus.publisher.publish(low)
    await wait_for_events(bus, "recovery.>", lambda es: types(es).count("succeeded") >= 2, 150)

    subject = f"change.recorded.{CLUSTER}.{cluster.namespace}"
    events = healer_changes(await wait_for_events(bus, subject, lambda es: len(healer_changes(es)) >= 2, 30))
    restart, scale = events  # one each, no doubles
    assert (restart.causationid, restart.correlationid) == (stuck.id, stuck.id)
    assert (scale.causationid, scale.correlationid) == (low.id, low.id)
    assert scale.subject == f"Deployment/{cluster.namespace}/api"
    recoveries = await stream(bus, "recovery.>")
    started = next(e for e in recoveries if e.type.endswith("started.v1") and e.causationid == stuck.id)
    assert trace_of(restart) == trace_of(started)  # the recovery's trace, like its other events
    first = restart.payload_as(ChangeRecorded)
    assert first.action == "rollout_restart" and first.kinds == (ChangeKind.ACTION, ChangeKind.TEMPLATE)
    assert first.object.kind == "Deployment" and first.object.name == "web"
    assert first.actor == Actor(kind=ActorKind.SERVICE, id="healer")
    annotations = cluster.deployment("web").spec.template.metadata.annotations
    assert first.diff[0].path == f"spec.template.metadata.annotations[{RESTARTED_AT}]"
    assert first.diff[0].after is not None and first.diff[0].after[:19] == annotations[RESTARTED_AT][:19]
    second = scale.payload_as(ChangeRecorded)
    assert second.action == "scale" and ChangeKind.REPLICAS in second.kinds
    assert [(d.path, d.after) for d in second.diff] == [("spec.replicas", "3")]
    assert "RolloutStuck" in first.summary and "CapacityLow" in second.summary
