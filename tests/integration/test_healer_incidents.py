"""Incidents under storms: the healer's executor against a real PostgreSQL, with an injected clock.

The cluster is the one port replaced (a recorder of the writes, with the snapshots a storm shows: every pod of
a workload crashing, a node NotReady under many pods). What is proven is what the healer stores, decides and
announces: one incident per workload or node, one action for it, its members joined and never forgotten, and
one escalation naming them all. The same storms against the sandbox: tests/cluster/test_healer_storms.py.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta

import pytest

from opsbus.common.events import Envelope, ObjectRef
from opsbus.common.events.payloads import (
    AlertAnnotations,
    AlertFired,
    AlertSource,
    ResourceRef,
    Severity,
    WorkloadRef,
)
from opsbus.common.settings import DatabaseSettings
from opsbus.common.store import Database, upgrade
from opsbus.healer.cluster import KubeCluster
from opsbus.healer.domain.planning import AlertState, Guards, Snapshot
from opsbus.healer.executing import Executor
from opsbus.healer.store import MIGRATIONS, SCHEMA
from tests.integration.test_healer_deferrals import T0, Clock, outbox, resolved, rows, settle

pytestmark = pytest.mark.integration
CLUSTER = "it"
NS = "demo"
POLICIES = """
policies:
  - name: crashloop
    match: {alertname: KubePodCrashLooping}
    cooldown: 10m
    blast_radius: {max_pod_fraction: 0.34}
    ladder:
      - {action: delete_pod, verify: alert_resolved, timeout: 2s}
      - {action: rollout_restart, verify: workload_available, timeout: 1s}
  - name: node-not-ready
    match: {alertname: KubeNodeNotReady}
    ladder:
      - {action: cordon_node, verify: alert_resolved, timeout: 60s}
"""


class StormCluster(KubeCluster):
    """Every pod of every workload crashes (none ready); writes are recorded; workloads never come back."""

    def __init__(self, replicas: int = 3) -> None:
        self.replicas = replicas
        self.writes: list[str] = []

    async def snapshot(self, target: ResourceRef, alert: AlertState) -> Snapshot:
        if target.kind == "Node":
            return Snapshot(target=target, resource_version="7")
        return Snapshot(target=target, resource_version="1", workload_pods_total=self.replicas, workload_pods_ready=0)

    async def delete_pod(self, ns: str, name: str, uid: str | None, rv: str | None, grace: int | None) -> None:
        self.writes.append(f"delete pod {name}")

    async def rollout_restart(self, ns: str, name: str, rv: str | None, now: datetime) -> None:
        self.writes.append(f"restart {name}")

    async def cordon(self, name: str, rv: str | None) -> None:
        self.writes.append(f"cordon {name}")

    async def workload_available(self, ns: str, name: str) -> tuple[bool, str]:
        return False, f"0/{self.replicas} available"

    def close(self) -> None:
        pass


Make = Callable[..., Awaitable[Executor]]


@pytest.fixture
async def make(database_url: str) -> AsyncIterator[Make]:
    await upgrade(DatabaseSettings.model_validate({"url": database_url}), MIGRATIONS, SCHEMA)
    made: list[tuple[Executor, Database]] = []

    async def build(clock: Clock, cluster: StormCluster, guards: Guards | None = None) -> Executor:
        db = Database.from_settings(DatabaseSettings.model_validate({"url": database_url}), application_name="healer")
        ex = Executor(
            db=db,
            cluster=cluster,
            guards=guards or Guards(),
            cluster_name=CLUSTER,
            clock=clock,
            owner=f"replica-{len(made)}",
            verify_poll=0.1,
        )
        await ex.load_policies(POLICIES, author="test")
        made.append((ex, db))
        return ex

    yield build
    for ex, db in made:
        await ex.close()
        await db.close()


def crash(pod: str, workload: str, node: str = "node-a", severity: Severity = Severity.CRITICAL) -> Envelope:
    labels = {"alertname": "KubePodCrashLooping", "namespace": NS, "pod": pod, "node": node, "workload": workload}
    a = AlertFired(
        fingerprint=uuid.uuid4().hex[:16],
        alertname="KubePodCrashLooping",
        severity=severity,
        labels={**labels, "severity": severity.value},
        annotations=AlertAnnotations(summary="crash loop"),
        starts_at=T0 - timedelta(seconds=30),
        source=AlertSource.WATCHER,
        workload=WorkloadRef(kind="Deployment", namespace=NS, name=workload),
    )
    return Envelope.build(a, service="watcher", cluster=CLUSTER, obj=ObjectRef(kind="Pod", namespace=NS, name=pod))


def node_down(node: str) -> Envelope:
    a = AlertFired(
        fingerprint=uuid.uuid4().hex[:16],
        alertname="KubeNodeNotReady",
        severity=Severity.CRITICAL,
        labels={"alertname": "KubeNodeNotReady", "node": node, "severity": "critical"},
        annotations=AlertAnnotations(summary="node not ready"),
        starts_at=T0 - timedelta(seconds=30),
        source=AlertSource.WATCHER,
    )
    return Envelope.build(a, service="watcher", cluster=CLUSTER, obj=ObjectRef(kind="Node", name=node))


async def test_all_pods_of_a_workload_crashing_are_one_incident_one_restart_then_one_escalation(make: Make) -> None:
    clock, kube = Clock(), StormCluster()
    ex = await make(clock, kube)
    alerts = [crash(f"web-{i}", "web", node=f"node-{i}") for i in range(3)]
    for event in alerts:
        await ex.on_alert_fired(event)
    await settle(ex, "select 1 from healer.recoveries where status = 'escalated' having count(*) = 3", timeout=20)
    assert kube.writes == ["restart web"]  # one workload action, no pod deleted
    recs = await rows(ex, "select id, incident_id, status, alert_event_id from healer.recoveries order by created_at")
    (lead,) = [r for r in recs if r["id"] == r["incident_id"]]
    assert lead["alert_event_id"] == alerts[0].id
    assert {r["incident_id"] for r in recs} == {lead["id"]}  # no alert forgotten: all three in the incident
    moves = await rows(
        ex, f"select transition, reason from healer.transitions where recovery_id = '{lead['id']}' order by id"
    )
    assert [m["transition"] for m in moves] == ["plan", "pass", "apply", "exhaust"]
    assert "workload-wide: 3 of 3 pods fail" in moves[1]["reason"]
    (escalated,) = await outbox(ex, "io.opsbus.recovery.escalated.v1")  # one page for the incident
    reason = escalated["data"]["reason"]
    assert "ladder exhausted" in reason and "2 other alerts escalate with it (web-1, web-2)" in reason, reason
    for member in (r for r in recs if r["id"] != lead["id"]):
        joined = await rows(
            ex, f"select transition, reason from healer.transitions where recovery_id = '{member['id']}' order by id"
        )
        assert [j["transition"] for j in joined] == ["join", "give_up"]
        assert f"joined incident {lead['id']} of Deployment/demo/web" in joined[0]["reason"]


async def test_a_node_not_ready_under_120_pods_is_one_cordon_and_no_pod_deletion(make: Make) -> None:
    clock, kube = Clock(), StormCluster()
    ex = await make(clock, kube)
    down = node_down("node-a")
    await ex.on_alert_fired(down)
    await settle(ex, "select 1 from healer.recoveries where status = 'verifying'")
    pods = [crash(f"w{w}-{i}", f"w{w}") for w in range(40) for i in range(3)]
    for event in pods:
        await ex.on_alert_fired(event)
    await settle(
        ex, "select 1 from healer.recoveries where status = 'deferred' and lease_owner is null having count(*) = 120"
    )
    assert kube.writes == ["cordon node-a"]
    (lead,) = await rows(ex, f"select id from healer.recoveries where alert_event_id = '{down.id}'")
    members = await rows(
        ex, "select incident_id, deferred_by, due_at, act_by from healer.recoveries where id <> incident_id"
    )
    assert len(members) == 120
    assert {(m["incident_id"], m["deferred_by"], m["due_at"], m["act_by"]) for m in members} == {
        (lead["id"], "incident", None, None)
    }  # waiting for the node's incident, not for a time, and no bound (and page) of their own
    queue = await ex.deferral_queue()
    assert queue.depth == 0  # members are not the guards' queue

    # The node comes back and its pods with it: every alert resolves; the incident ends, nothing more is done.
    clock.now = T0 + timedelta(minutes=1)
    for event in [down, *pods]:
        await ex.on_alert_resolved(resolved(event))
    await settle(ex, "select 1 from healer.recoveries where status = 'resolved'", timeout=20)
    assert await ex.wake_deferred() == [] and await ex.wake_deferred() == []  # two rounds of 100: closed, none planned
    finals = await rows(ex, "select status, count(*) as n from healer.recoveries group by status order by status")
    assert {f["status"]: f["n"] for f in finals} == {"closed": 120, "resolved": 1}
    assert kube.writes == ["cordon node-a"]
    assert not await outbox(ex, "io.opsbus.recovery.escalated.v1")


async def test_a_namespace_wide_crash_is_one_incident_per_workload_worked_through_in_severity_order(
    make: Make,
) -> None:
    clock, kube = Clock(), StormCluster()
    ex = await make(clock, kube, Guards(rate_limit_actions=1, rate_limit_window=60))
    severity = {"a": Severity.WARNING, "b": Severity.CRITICAL, "c": Severity.INFO}
    storm = [crash(f"{w}-{i}", w, node=f"n{i}", severity=s) for w, s in severity.items() for i in range(3)]
    for event in storm:
        await ex.on_alert_fired(event)
    await settle(
        ex,
        "select 1 from healer.recoveries where lease_owner is null and status <> 'acting' "
        "and status <> 'verifying' and status <> 'open' having count(*) = 9",
        timeout=20,
    )
    leads = await rows(ex, "select group_key, status from healer.recoveries where id = incident_id order by group_key")
    assert [r["group_key"] for r in leads] == ["Deployment/demo/a", "Deployment/demo/b", "Deployment/demo/c"]
    assert kube.writes == ["restart a"]  # the first workload acted; the others deferred by the rate limit
    for minute in range(1, 4):
        clock.now = T0 + timedelta(seconds=61 * minute)
        for rid in await ex.wake_deferred():
            await settle(
                ex,
                f"select 1 from healer.recoveries where id = '{rid}' and status not in ('acting', 'verifying') "
                "and lease_owner is null",
            )
    assert kube.writes == ["restart a", "restart b", "restart c"]  # one per workload: critical b before info c
    members = await rows(
        ex, "select count(*) as n from healer.recoveries where id <> incident_id and status = 'escalated'"
    )
    assert members[0]["n"] == 6  # each workload's other two pods escalated with its incident, none forgotten
    assert len(await outbox(ex, "io.opsbus.recovery.escalated.v1")) == 3
