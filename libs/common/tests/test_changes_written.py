"""`opsbus.common.changes`: opsbus's own writes as timeline entries (ids, origin, chain, template diffs)."""

from __future__ import annotations

from datetime import UTC, datetime

from opsbus.common.changes import Write, template_diff, written
from opsbus.common.events.envelope import Envelope, ObjectRef
from opsbus.common.events.payloads import (
    Actor,
    ActorKind,
    ChangeKind,
    ChangeOrigin,
    ChangeRecorded,
    ResourceRef,
    WorkloadRef,
)
from opsbus.common.events.payloads.audit import AuditOutcome, AuditRecorded

T0 = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)
WEB = WorkloadRef(kind="Deployment", namespace="shop", name="web")


def _template(image: str, memory: str, env: str = "1") -> dict[str, object]:
    return {
        "metadata": {"labels": {"app": "web"}},
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": image,
                    "env": [{"name": "WORKERS", "value": env}],
                    "resources": {"limits": {"memory": memory}},
                }
            ]
        },
    }


def _cause() -> Envelope:
    payload = AuditRecorded(
        actor=Actor(kind=ActorKind.SERVICE, id="watcher"),
        action="x",
        target=WEB.as_resource_ref(),
        outcome=AuditOutcome.EXECUTED,
        reason="r",
    )
    root = Envelope.build(payload, service="watcher", cluster="prod", obj=ObjectRef(kind="Pod", name="p"))
    return Envelope.build(payload, service="watcher", cluster="prod", obj=WEB.as_object_ref(), cause=root)


def test_template_diff_names_image_env_and_resources_in_the_watchers_paths() -> None:
    entries = template_diff(_template("web:1", "256Mi"), _template("web:2", "128Mi", env="4"))
    got = {(k, e.path, e.before, e.after) for k, e in entries}
    base = "spec.template.spec.containers[app]"
    assert got == {
        (ChangeKind.IMAGE, f"{base}.image", "web:1", "web:2"),
        (ChangeKind.ENV, f"{base}.env[WORKERS]", "1", "4"),
        (ChangeKind.RESOURCES, f"{base}.resources.limits.memory", "256Mi", "128Mi"),
    }
    assert template_diff(_template("web:1", "1Gi"), _template("web:1", "1Gi")) == []


def test_a_write_continues_its_cause_with_an_id_that_replays_keep() -> None:
    cause = _cause()
    write = Write(
        action="deploy",
        object=WEB.as_resource_ref(),
        workload=WEB,
        entries=template_diff(_template("web:1", "1Gi"), _template("web:2", "1Gi")),
        resource_version="42",
    )
    event = written(write, service="deployer", cluster="prod", key="r1:apply", now=T0, cause=cause)
    again = written(write, service="deployer", cluster="prod", key="r1:apply", now=T0, cause=cause)
    other = written(write, service="healer", cluster="prod", key="r1:apply", now=T0, cause=cause)
    assert event.id == again.id != other.id
    assert event.causationid == cause.id
    assert event.correlationid == cause.correlationid
    assert event.type == "io.opsbus.change.recorded.v1"
    assert event.nats_subject() == "change.recorded.prod.shop"
    change = event.payload_as(ChangeRecorded)
    assert change.origin is ChangeOrigin.DEPLOYER
    assert change.kinds == (ChangeKind.ACTION, ChangeKind.IMAGE)
    assert change.action == "deploy"
    assert change.summary == "deploy Deployment shop/web: containers[app].image web:1 -> web:2"
    assert change.resource_version == "42"


def test_a_person_behind_the_write_makes_it_theirs() -> None:
    person = Actor(kind=ActorKind.USER, id="alice")
    write = Write(action="resize", object=ResourceRef(kind="Node", name="n1"), detail="applied by alice")
    change = written(write, service="optimizer", cluster="prod", key="k", now=T0, actor=person).payload_as(
        ChangeRecorded
    )
    assert change.origin is ChangeOrigin.USER
    assert change.actor == person
    assert change.kinds == (ChangeKind.ACTION,)
    assert change.summary == "resize Node n1; applied by alice"
