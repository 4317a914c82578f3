"""Ladder steps conditioned on the analyzer's top cause, end to end over a real nats-server and PostgreSQL.

The healer's real consumers (`consumer_specs`: `healer-diagnoses`, `healer-alerts`) feed its executor; the
cluster is the one port replaced (a Deployment whose last rollout is two days old, so its ReplicaSet history
alone would not call for a rollback). A `diagnosis.made` naming a rollout, stored before the alert, makes the
default-style ladder roll back; an alert with no diagnosis yet does not wait for one: the rollback step is
passed with its reason, the restart is planned, and the diagnosis that arrives later is still stored.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from opsbus.common.bus import Bus, Delivery
from opsbus.common.events import Envelope, ObjectRef
from opsbus.common.events.examples import example_payloads
from opsbus.common.events.payloads import (
    AlertAnnotations,
    AlertFired,
    AlertSource,
    DiagnosisMade,
    IncidentRef,
    ResourceRef,
    Severity,
    WorkloadRef,
)
from opsbus.common.settings import DatabaseSettings
from opsbus.common.store import Database, upgrade
from opsbus.healer.cluster import KubeCluster
from opsbus.healer.domain.planning import AlertState, Guards, Revision, Snapshot
from opsbus.healer.executing import Executor
from opsbus.healer.service import consumer_specs
from opsbus.healer.settings import HealerSettings
from opsbus.healer.store import MIGRATIONS, SCHEMA
from tests.integration.test_healer_deferrals import T0, Clock, outbox, rows, settle

pytestmark = pytest.mark.integration
MakeBus = Callable[..., Awaitable[Bus]]
CLUSTER = "it"
NS = "diag"
POLICIES = """
policies:
  - name: crashloop
    match: {alertname: KubePodCrashLooping}
    ladder:
      - action: rollback
        when: {cause: rollout, min_confidence: 0.6, without_diagnosis: changed}
        verify: deploy_succeeded
        timeout: 10m
      - {action: rollout_restart, when: unchanged, verify: workload_available, timeout: 1s}
"""


class OldRolloutCluster(KubeCluster):
    """A Deployment at revision 2 (another template than revision 1), rolled out two days ago; writes recorded."""

    def __init__(self) -> None:
        self.writes: list[str] = []

    async def snapshot(self, target: ResourceRef, alert: AlertState) -> Snapshot:
        revisions = (Revision(1, "a" * 8, T0 - timedelta(days=3)), Revision(2, "b" * 8, T0 - timedelta(days=2)))
        return Snapshot(
            target=target,
            resource_version="1",
            workload_pods_total=3,
            workload_pods_ready=0,
            revision=2,
            revisions=revisions,
        )

    async def rollout_restart(self, ns: str, name: str, rv: str | None, now: datetime) -> None:
        self.writes.append(f"restart {name}")

    async def workload_available(self, ns: str, name: str) -> tuple[bool, str]:
        return False, "0/3 available"

    def close(self) -> None:
        pass


@pytest.fixture
async def healer(database_url: str, make_bus: MakeBus) -> AsyncIterator[tuple[Executor, Bus, OldRolloutCluster]]:
    """The executor behind the healer's real durable consumers, as `service.setup` wires them."""
    await upgrade(DatabaseSettings.model_validate({"url": database_url}), MIGRATIONS, SCHEMA)
    db = Database.from_settings(DatabaseSettings.model_validate({"url": database_url}), application_name="healer")
    kube = OldRolloutCluster()
    ex = Executor(db=db, cluster=kube, guards=Guards(), cluster_name=CLUSTER, clock=Clock(), verify_poll=0.1)
    await ex.load_policies(POLICIES, author="test")
    bus = await make_bus("healer")
    await bus.ensure_streams()

    async def fired(d: Delivery) -> None:
        await ex.on_alert_fired(d.event)

    async def diagnosis(d: Delivery) -> None:
        await ex.on_diagnosis(d.event)

    handlers = {"healer-alerts": fired, "healer-diagnoses": diagnosis}
    for spec in consumer_specs(HealerSettings.model_validate({"cluster": CLUSTER})):
        if spec.legacy_durable in handlers:  # the name before its cluster was added (`bus.clusters`)
            bus.consumer(spec, handlers[spec.legacy_durable])
    await bus.start()
    yield ex, bus, kube
    await ex.close()
    await db.close()


def crash(workload: str) -> Envelope:
    pod = f"{workload}-1"
    a = AlertFired(
        fingerprint=uuid.uuid4().hex[:16],
        alertname="KubePodCrashLooping",
        severity=Severity.CRITICAL,
        labels={"alertname": "KubePodCrashLooping", "namespace": NS, "pod": pod, "severity": "critical"},
        annotations=AlertAnnotations(summary="crash loop"),
        starts_at=T0 - timedelta(seconds=30),
        source=AlertSource.WATCHER,
        workload=WorkloadRef(kind="Deployment", namespace=NS, name=workload),
    )
    return Envelope.build(a, service="watcher", cluster=CLUSTER, obj=ObjectRef(kind="Pod", namespace=NS, name=pod))


def diagnosed(alert: Envelope) -> Envelope:
    """The analyzer's `diagnosis.made` for the incident the alert opens: its top cause is a rollout (0.89)."""
    fired = alert.payload_as(AlertFired)
    example = example_payloads()[DiagnosisMade.event_type]
    assert isinstance(example, DiagnosisMade)
    incident = IncidentRef(
        incident_id=alert.id,
        alert_fingerprint=fired.fingerprint,
        alertname=fired.alertname,
        workload=fired.workload,
        first_alert_at=fired.starts_at,
        alerts=(fired.fingerprint,),
    )
    payload = DiagnosisMade.model_validate({**example.model_dump(), "incident": incident.model_dump()})
    assert fired.workload is not None
    obj = ObjectRef(kind="Deployment", namespace=NS, name=fired.workload.name)
    return Envelope.build(payload, service="analyzer", cluster=CLUSTER, obj=obj)


async def planned(ex: Executor, alert: Envelope) -> list[dict[str, Any]]:
    """The `recovery.planned` events of the recovery the alert started (waits for the first)."""
    (rec,) = await settle(ex, f"select id from healer.recoveries where alert_event_id = '{alert.id}'")
    await settle(ex, "select 1 from healer.opsbus_outbox where event_type = 'io.opsbus.recovery.planned.v1'")
    found = await outbox(ex, "io.opsbus.recovery.planned.v1")
    return [e["data"] for e in found if e["data"]["recovery_id"] == rec["id"]]


async def test_a_diagnosis_before_the_alert_makes_the_ladder_roll_back(
    healer: tuple[Executor, Bus, OldRolloutCluster],
) -> None:
    ex, bus, _ = healer
    alert = crash("web")
    await bus.publisher.publish(diagnosed(alert))
    (stored,) = await settle(
        ex, f"select cause, confidence, revision from healer.diagnoses where incident_id = '{alert.id}'"
    )
    assert stored == {"cause": "rollout", "confidence": 0.89, "revision": 1}
    await bus.publisher.publish(alert)
    (step,) = await planned(ex, alert)
    assert step["action"]["kind"] == "rollback" and step["action"]["parameters"]["to_revision"] == 1, step
    when = next(g for g in step["guards"] if g["name"] == "when")
    assert "top cause rollout at confidence 0.89" in when["detail"], when


async def test_an_alert_before_its_diagnosis_does_not_wait_the_rollback_is_passed_with_its_reason(
    healer: tuple[Executor, Bus, OldRolloutCluster],
) -> None:
    ex, bus, kube = healer
    alert = crash("api")
    await bus.publisher.publish(alert)
    (step,) = await planned(ex, alert)
    assert step["action"]["kind"] == "rollout_restart", step
    (passed,) = await rows(
        ex,
        "select a.message from healer.attempts a join healer.recoveries r on r.id = a.recovery_id "
        f"where r.alert_event_id = '{alert.id}' and a.step = 1",
    )
    assert "no diagnosis yet; by the rollout history (changed): no rollout within" in passed["message"], passed
    await settle(ex, "select 1 from healer.transitions where to_state = 'escalated'", timeout=15)
    assert kube.writes == ["restart api"]
    await bus.publisher.publish(diagnosed(alert))  # the late diagnosis is still kept (for the next step, revisions)
    await settle(ex, f"select 1 from healer.diagnoses where incident_id = '{alert.id}' and cause = 'rollout'")
