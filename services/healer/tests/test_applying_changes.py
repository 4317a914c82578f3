"""What the healer puts on the change timeline for each action it applies (`applying.write_of`, pure)."""

from __future__ import annotations

from datetime import UTC, datetime

from opsbus.common.changes import written
from opsbus.common.events import Envelope
from opsbus.common.events.payloads import (
    ActionKind,
    AlertAnnotations,
    AlertFired,
    AlertSource,
    ChangeKind,
    ChangeOrigin,
    ChangeRecorded,
    PolicyRef,
    RecoveryAction,
    ResourceRef,
    Severity,
    VerificationSpec,
    WorkloadRef,
)
from opsbus.healer.applying import write_of
from opsbus.healer.domain.planning import Plan

T0 = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)
WEB = WorkloadRef(kind="Deployment", namespace="shop", name="web")


def _alert() -> Envelope:
    fired = AlertFired(
        fingerprint="0123456789abcdef",
        alertname="KubeContainerOOMKilled",
        severity=Severity.CRITICAL,
        labels={"alertname": "KubeContainerOOMKilled", "namespace": "shop"},
        annotations=AlertAnnotations(summary="oom"),
        starts_at=T0,
        source=AlertSource.WATCHER,
        workload=WEB,
    )
    return Envelope.build(fired, service="watcher", cluster="prod", obj=WEB.as_object_ref())


def _plan(kind: ActionKind, target: ResourceRef, **params: str | int) -> Plan:
    return Plan(
        recovery_id="r1",
        policy=PolicyRef(name="p", version=1),
        step=2,
        steps_total=3,
        action=RecoveryAction(kind=kind, target=target, parameters=dict(params)),
        verification=VerificationSpec(check="alert_resolved", timeout_seconds=60),
        guards=(),
        reason="because",
    )


def test_a_memory_raise_is_a_resources_change_of_the_alerts_workload_in_the_watchers_path() -> None:
    cause = _alert()
    p = _plan(ActionKind.RAISE_MEMORY_LIMIT, WEB.as_resource_ref(), container="app", from_bytes=64, to_bytes=96)
    write = write_of(p, cause, T0, [])
    event = written(write, service="healer", cluster="prod", key="r1:2:change", now=T0, cause=cause)
    change = event.payload_as(ChangeRecorded)
    assert event.causationid == cause.id and change.origin is ChangeOrigin.HEALER
    assert change.kinds == (ChangeKind.ACTION, ChangeKind.RESOURCES)
    assert change.workload == WEB
    assert [(d.path, d.before, d.after) for d in change.diff] == [
        ("spec.template.spec.containers[app].resources.limits.memory", "64", "96")
    ]
    assert change.summary.endswith("recovery r1 step 2 for KubeContainerOOMKilled")


def test_pods_deleted_and_nodes_cordoned_say_what_went() -> None:
    pod = ResourceRef(kind="Pod", namespace="shop", name="web-1")
    assert [(k, e.before) for k, e in write_of(_plan(ActionKind.DELETE_POD, pod), _alert(), T0, []).entries] == [
        (ChangeKind.DELETED, "shop/web-1")
    ]
    failed = write_of(_plan(ActionKind.DELETE_FAILED_PODS, WEB.as_resource_ref()), _alert(), T0, ["a", "b"])
    assert [e.path for _, e in failed.entries] == ["pods[a]", "pods[b]"]
    node = write_of(_plan(ActionKind.CORDON_NODE, ResourceRef(kind="Node", name="n1")), _alert(), T0, [])
    assert [(k, e.path, e.before, e.after) for k, e in node.entries] == [
        (ChangeKind.NODE_TAINT, "spec.unschedulable", "false", "true")
    ]
