"""Incidents, pure: which live incident an alert joins, when a workload's trouble is wider than its pods, and
when its pod template last changed; and the planner's use of them (a pod step passed for a workload-wide
incident, `when: changed` / `when: unchanged` steps, the last ready replica kept). No mocks, no clock reads.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from opsbus.common.events.payloads import ActionKind, ResourceRef, Severity, WorkloadRef
from opsbus.healer.domain.incidents import (
    Lead,
    Spread,
    change_preceded,
    changed_at,
    is_node_alert,
    keys_of,
    lead_for,
    own_key,
    workload_wide,
)
from opsbus.healer.domain.planning import (
    AlertState,
    Guards,
    IncidentFacts,
    NoOp,
    Pass,
    Plan,
    PlanningInput,
    Revision,
    Snapshot,
    plan,
)
from opsbus.healer.domain.policy import parse_policies

NOW = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)
WEB = WorkloadRef(kind="Deployment", namespace="demo", name="web")
POD = ResourceRef(kind="Pod", namespace="demo", name="web-1", api_version="v1", uid="u-1")
DEPLOY = WEB.as_resource_ref().model_copy(update={"uid": "d-1"})
POLICIES = parse_policies("""
policies:
  - name: crashloop
    match: {alertname: KubePodCrashLooping}
    change_window: 30m
    ladder:
      - {action: delete_pod, verify: alert_resolved, timeout: 2m}
      - {action: rollback, when: changed, verify: deploy_succeeded, timeout: 10m}
      - {action: rollout_restart, when: unchanged, verify: workload_available, timeout: 5m}
""")
CRASHLOOP = POLICIES.policies[0]


def pod_alert(pod: str = "web-1", node: str | None = "node-a", workload: WorkloadRef | None = WEB) -> AlertState:
    labels = {"alertname": "KubePodCrashLooping", "namespace": "demo", "pod": pod}
    if node:
        labels["node"] = node
    return AlertState(
        fingerprint="8f3a9c2d41e07b65",
        alertname="KubePodCrashLooping",
        severity=Severity.CRITICAL,
        labels=labels,
        namespace="demo",
        event_time=NOW - timedelta(seconds=5),
        firing=True,
        workload=workload,
    )


def node_alert(node: str = "node-a") -> AlertState:
    return replace(
        pod_alert(),
        alertname="KubeNodeNotReady",
        labels={"alertname": "KubeNodeNotReady", "node": node},
        namespace=None,
        workload=None,
    )


def lead(key: str, policy: str = "crashloop", minutes_ago: float = 1, rid: str = "lead-1") -> Lead:
    return Lead(rid, key, policy, NOW - timedelta(minutes=minutes_ago))


def test_keys_a_node_alert_groups_by_node_a_pod_alert_by_workload_and_node() -> None:
    assert is_node_alert(node_alert()) and not is_node_alert(pod_alert())
    assert own_key(node_alert()) == "Node/_/node-a"
    assert own_key(pod_alert()) == "Deployment/demo/web"
    assert keys_of(pod_alert()) == ("Deployment/demo/web", "Node/_/node-a")
    assert own_key(pod_alert(workload=None)) is None  # a bare pod groups with nothing of its own
    assert keys_of(pod_alert(workload=None, node=None)) == ()


def test_a_pod_alert_joins_its_workloads_live_incident_of_the_same_policy_within_the_window() -> None:
    web = lead("Deployment/demo/web")
    assert lead_for(pod_alert("web-2"), "crashloop", [web], 600, NOW) == web
    assert lead_for(pod_alert("web-2"), "oomkilled", [web], 600, NOW) is None  # another fault, another incident
    assert lead_for(pod_alert("web-2"), "crashloop", [lead("Deployment/demo/web", minutes_ago=11)], 600, NOW) is None
    assert lead_for(pod_alert("web-2"), "crashloop", [web], 0, NOW) is None  # grouping switched off
    assert (
        lead_for(pod_alert("api-1", workload=WEB.model_copy(update={"name": "api"})), "crashloop", [web], 600, NOW)
        is None
    )
    older, newer = lead("Deployment/demo/web", minutes_ago=3, rid="a"), lead("Deployment/demo/web", rid="b")
    assert lead_for(pod_alert(), "crashloop", [newer, older], 600, NOW) == older  # the first incident gathers


def test_a_pod_on_a_node_with_a_live_node_incident_joins_the_node_whatever_its_policy() -> None:
    node, web = lead("Node/_/node-a", policy="node-not-ready"), lead("Deployment/demo/web")
    assert lead_for(pod_alert(), "crashloop", [web, node], 600, NOW) == node
    assert lead_for(pod_alert(node="node-b"), "crashloop", [web, node], 600, NOW) == web
    assert lead_for(node_alert(), "node-not-ready", [node], 600, NOW) == node  # the node's own alert again
    assert lead_for(node_alert("node-b"), "node-not-ready", [node], 600, NOW) is None


def test_a_workload_is_wide_when_more_pods_fail_than_the_blast_radius_lets_go_one_at_a_time() -> None:
    assert workload_wide(Spread(total=3, ready=0), 0.34)  # all three crash
    assert workload_wide(Spread(total=3, ready=1), 0.34)  # two of three
    assert not workload_wide(Spread(total=3, ready=2), 0.34)  # one of three: replace that pod
    assert not workload_wide(Spread(total=2, ready=1), 0.34)
    assert not workload_wide(Spread(total=1, ready=0), 0.34)  # a single replica is one pod
    assert workload_wide(Spread(total=3, ready=None, firing_alerts=3), 0.34)  # the alerts say so when counts do not
    assert not workload_wide(Spread(total=10, ready=7), 0.5)  # 3 of 10 within a 50 % radius


def test_the_change_is_the_first_revision_of_the_current_template_restarts_do_not_count() -> None:
    t = [NOW - timedelta(minutes=m) for m in (60, 20, 5)]
    good, bad = "a" * 8, "b" * 8
    revisions = (Revision(1, good, t[0]), Revision(2, bad, t[1]), Revision(3, bad, t[2]))  # 3: a restart of 2
    assert changed_at(3, revisions) == t[1]
    assert changed_at(2, revisions) == t[1]
    assert changed_at(1, revisions) is None  # nothing older: no change to undo
    assert changed_at(9, revisions) is None
    assert changed_at(3, (Revision(2, bad, t[1]), Revision(3, bad, t[2]))) is None  # only restarts
    first_alert = NOW
    assert change_preceded(t[1], first_alert, 1800)
    assert not change_preceded(t[1], first_alert, 600)  # 20 min before: outside a 10 min window
    assert not change_preceded(NOW + timedelta(minutes=5), first_alert, 1800)  # after the fault began
    assert not change_preceded(None, first_alert, 1800)


def inp(step: int, snapshot: Snapshot, firing: int = 1, alert: AlertState | None = None) -> PlanningInput:
    return PlanningInput(
        recovery_id="r-1",
        alert=alert or pod_alert(),
        policy=CRASHLOOP,
        policy_version=1,
        step=step,
        snapshot=snapshot,
        history=(),
        guards=Guards(),
        now=NOW,
        continuing=step > 1,
        incident=IncidentFacts(first_alert_at=NOW - timedelta(minutes=1), firing_alerts=firing),
    )


def test_a_pod_step_is_passed_when_the_whole_workload_fails_and_taken_when_one_pod_does() -> None:
    wide = plan(inp(1, Snapshot(target=POD, workload_pods_total=3, workload_pods_ready=0)))
    assert isinstance(wide, Pass) and "3 of 3 pods fail" in wide.reason, wide
    by_alerts = plan(inp(1, Snapshot(target=POD, workload_pods_total=3), firing=2))
    assert isinstance(by_alerts, Pass), by_alerts
    one = plan(inp(1, Snapshot(target=POD, workload_pods_total=3, workload_pods_ready=2)))
    assert isinstance(one, Plan) and one.action.kind is ActionKind.DELETE_POD


def test_rollback_when_a_rollout_preceded_the_first_alert_restart_when_none_did() -> None:
    good, bad = "a" * 8, "b" * 8
    rolled = (Revision(1, good, NOW - timedelta(days=3)), Revision(2, bad, NOW - timedelta(minutes=4)))
    after_rollout = Snapshot(target=DEPLOY, workload_pods_total=3, workload_pods_ready=0, revision=2, revisions=rolled)
    rollback = plan(inp(2, after_rollout))
    assert isinstance(rollback, Plan) and rollback.action.kind is ActionKind.ROLLBACK, rollback
    assert rollback.action.parameters["to_revision"] == 1
    assert any(g.name == "when" and "revision 2 rolled out" in (g.detail or "") for g in rollback.guards)
    restart = plan(inp(3, after_rollout))
    assert isinstance(restart, Pass) and "when: unchanged" in restart.reason

    old = (Revision(1, good, NOW - timedelta(days=3)), Revision(2, bad, NOW - timedelta(days=2)))
    quiet = replace(after_rollout, revisions=old)
    no_change = plan(inp(2, quiet))
    assert isinstance(no_change, Pass) and "no rollout within 1800s" in no_change.reason, no_change
    restart = plan(inp(3, quiet))
    assert isinstance(restart, Plan) and restart.action.kind is ActionKind.ROLLOUT_RESTART


def test_the_last_ready_replica_is_never_deleted_and_a_recreate_restart_of_ready_pods_is_refused() -> None:
    ready_pod = Snapshot(target=POD, workload_pods_total=2, workload_pods_ready=1, target_ready=True)
    kept = plan(inp(1, ready_pod))
    assert isinstance(kept, NoOp) and kept.guard == "blast_radius" and "last ready replica" in kept.reason
    assert kept.retry_after is not None  # deferred, not dropped
    other_ready = replace(ready_pod, workload_pods_ready=2)
    assert isinstance(plan(inp(1, other_ready)), Plan)
    recreate = Snapshot(target=DEPLOY, workload_pods_total=3, workload_pods_ready=1, recreate=True)
    refused = plan(inp(3, recreate))
    assert isinstance(refused, NoOp) and refused.escalate and "Recreate" in refused.reason
    assert isinstance(plan(inp(3, replace(recreate, workload_pods_ready=0))), Plan)
