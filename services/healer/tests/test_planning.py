"""The planner's guards, each proven by a pair: the same input acts without the guard and does not with it.

No mocks and no sleeps: the clock is an argument, the cluster a `Snapshot`, history a list.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta

import pytest

from opsbus.common.events.payloads import ActionKind, ResourceRef, Severity, WorkloadRef
from opsbus.healer.domain.planning import (
    AlertState,
    FreezeWindow,
    Grant,
    Guards,
    NoOp,
    PastAttempt,
    Plan,
    PlanningInput,
    Revision,
    Snapshot,
    next_step,
    plan,
    rollback_revision,
    rollout_stack,
    target_for,
)
from opsbus.healer.domain.policy import Policy, parse_policies

NOW = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)  # a Friday
POLICIES = parse_policies("""
policies:
  - name: crashloop
    match: {alertname: KubePodCrashLooping}
    cooldown: 10m
    max_attempts: 3
    attempt_window: 1h
    blast_radius: {max_pod_fraction: 0.34}
    ladder:
      - {action: delete_pod, verify: alert_resolved, timeout: 2m}
      - {action: rollout_restart, timeout: 5m}
      - {action: rollback, verify: deploy_succeeded, timeout: 10m}
  - name: node
    match: {alertname: KubeNodeNotReady}
    blast_radius: {max_nodes: 1}
    ladder:
      - {action: cordon_node, verify: node_cordoned, timeout: 1m}
      - {action: drain_node, verify: node_drained, timeout: 10m}
  - name: oom
    match: {alertname: OOMKilled}
    ladder:
      - {action: raise_memory_limit, params: {factor: 1.5, ceiling_bytes: 1000}}
""")


def policy(name: str) -> Policy:
    found = POLICIES.get(name)
    assert found is not None
    return found


WORKLOAD = WorkloadRef(kind="Deployment", namespace="payments", name="checkout")
POD = ResourceRef(kind="Pod", namespace="payments", name="checkout-1", api_version="v1", uid="u-1")
NODE = ResourceRef(kind="Node", name="node-a", api_version="v1", uid="n-1")


def alert(**changes: object) -> AlertState:
    base = AlertState(
        fingerprint="8f3a9c2d41e07b65",
        alertname="KubePodCrashLooping",
        severity=Severity.CRITICAL,
        labels={"alertname": "KubePodCrashLooping", "namespace": "payments", "pod": "checkout-1", "node": "node-a"},
        namespace="payments",
        event_time=NOW - timedelta(seconds=5),
        firing=True,
        workload=WORKLOAD,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def inp(**changes: object) -> PlanningInput:
    base = PlanningInput(
        recovery_id="r-1",
        alert=alert(),
        policy=policy("crashloop"),
        policy_version=3,
        step=1,
        snapshot=Snapshot(target=POD, resource_version="41", workload_pods_total=3),
        history=(),
        guards=Guards(),
        now=NOW,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def acts(decision: object) -> Plan:
    assert isinstance(decision, Plan), decision
    assert not decision.dry_run and decision.approval is None
    return decision


def refused(decision: object, guard: str) -> NoOp:
    assert isinstance(decision, NoOp), decision
    assert decision.guard == guard, decision
    assert decision.guards[-1].name == guard and not decision.guards[-1].passed
    return decision


def attempt(minutes_ago: float, *, recovery: str = "r-0", key: str = str(WORKLOAD), dry: bool = False) -> PastAttempt:
    return PastAttempt(recovery, key, ActionKind.DELETE_POD, NOW - timedelta(minutes=minutes_ago), dry)


def test_plan_names_action_target_preconditions_verification_and_passed_guards() -> None:
    p = acts(plan(inp()))
    assert p.action.kind is ActionKind.DELETE_POD
    assert p.action.target == POD
    assert p.action.disruptive
    assert p.preconditions == {"uid": "u-1", "resource_version": "41"}
    assert p.verification.check == "alert_resolved" and p.verification.timeout_seconds == 120
    assert p.policy.name == "crashloop" and p.policy.version == 3
    assert (p.step, p.steps_total) == (1, 3)
    assert all(g.passed for g in p.guards)
    assert {g.name for g in p.guards} >= {
        "freshness", "alert_firing", "target", "protected_namespace", "freeze_window",
        "attempt_budget", "cooldown", "rate_limit", "blast_radius",
    }  # fmt: skip


def test_stale_alert_is_skipped_with_its_age() -> None:
    acts(plan(inp(alert=alert(event_time=NOW - timedelta(minutes=14)))))
    noop = refused(plan(inp(alert=alert(event_time=NOW - timedelta(days=4)))), "freshness")
    assert "345600s old" in noop.reason and not noop.escalate


def test_freshness_does_not_apply_to_a_continuing_ladder() -> None:
    old = alert(event_time=NOW - timedelta(hours=1))
    acts(plan(inp(alert=old, continuing=True, step=2, snapshot=Snapshot(target=WORKLOAD.as_resource_ref()))))


def test_resolved_alert_is_not_acted_on() -> None:
    acts(plan(inp()))
    noop = refused(plan(inp(alert=alert(firing=False))), "alert_firing")
    assert "resolved before execution" in noop.reason


def test_missing_target_is_a_noop_and_an_unnameable_one_escalates() -> None:
    refused(plan(inp(snapshot=Snapshot(target=POD, exists=False))), "target")
    assert refused(plan(inp(snapshot=None)), "target").escalate


def test_a_rollouts_canary_or_preview_stack_is_left_to_the_deployer() -> None:
    canary_pod = Snapshot(target=POD, workload_pods_total=2, rollout_stack=rollout_stack({"opsbus.io/canary": "true"}))
    noop = refused(plan(inp(snapshot=canary_pod)), "rollout")
    assert not noop.escalate and "the canary" in noop.reason and "deployer" in noop.reason
    green = Snapshot(target=WORKLOAD.as_resource_ref(), rollout_stack=rollout_stack({"opsbus.io/green": "true"}))
    refused(plan(inp(step=2, continuing=True, snapshot=green)), "rollout")
    # the stable workload and its pods stay the healer's, whatever other labels they carry
    assert rollout_stack({"app": "shop", "opsbus.io/canary": "false"}) is None and rollout_stack(None) is None
    assert "rollout" in {g.name for g in acts(plan(inp())).guards}


def test_protected_namespace_is_untouched() -> None:
    kube_pod = POD.model_copy(update={"namespace": "kube-system"})
    acts(
        plan(
            inp(
                snapshot=Snapshot(target=kube_pod, workload_pods_total=3),
                guards=Guards(protected_namespaces=frozenset()),
            )
        )
    )
    noop = refused(plan(inp(snapshot=Snapshot(target=kube_pod, workload_pods_total=3))), "protected_namespace")
    assert noop.escalate


def test_freeze_windows_absolute_and_weekly() -> None:
    absolute = FreezeWindow("release", start=NOW - timedelta(hours=1), end=NOW + timedelta(hours=1))
    friday_pm = FreezeWindow("friday", weekdays=frozenset({4}), daily_start=time(9), daily_end=time(18))
    monday = FreezeWindow("monday", weekdays=frozenset({0}), daily_start=time(0), daily_end=time(23, 59))
    overnight = FreezeWindow("night", daily_start=time(22), daily_end=time(10))
    acts(plan(inp(guards=Guards(freeze_windows=(monday,)))))
    # Deferred (never dropped, nor escalated at once) until the window closes.
    for window, closes in ((absolute, 3600.0), (friday_pm, 8.5 * 3600), (overnight, 1800.0)):
        noop = refused(plan(inp(guards=Guards(freeze_windows=(window,)))), "freeze_window")
        assert window.name in noop.reason and not noop.escalate
        assert noop.retry_after == pytest.approx(closes)


def test_attempt_budget_per_target_within_the_window() -> None:
    spent = [attempt(50, recovery="a"), attempt(40, recovery="b"), attempt(30, recovery="c")]
    acts(plan(inp(history=[attempt(70, recovery="x"), *spent[:2]])))  # one fell out of the window
    acts(plan(inp(history=[*spent[:2], attempt(20, recovery="d", key="Deployment/other/x")])))
    acts(plan(inp(history=[*spent, attempt(1, recovery="e", dry=True)][1:])))  # dry runs do not count
    noop = refused(plan(inp(history=spent)), "attempt_budget")
    assert not noop.escalate and "3/3" in noop.reason
    assert noop.retry_after == pytest.approx(600.0)  # the oldest of the three leaves the hour's window


def test_cooldown_blocks_a_flapping_target_but_not_the_same_recoverys_next_step() -> None:
    acts(plan(inp(history=[attempt(11)])))
    noop = refused(plan(inp(history=[attempt(3)])), "cooldown")
    assert not noop.escalate and noop.retry_after == pytest.approx(7 * 60.0)  # deferred to the cooldown's end
    same = [attempt(1, recovery="r-1")]
    acts(plan(inp(history=same, step=2, continuing=True, snapshot=Snapshot(target=WORKLOAD.as_resource_ref()))))


def test_cluster_wide_rate_limit_defers() -> None:
    others = [attempt(m, recovery=f"o{m}", key=f"Deployment/ns/w{m}") for m in (1, 2, 3)]
    acts(plan(inp(history=others, guards=Guards(rate_limit_actions=4, rate_limit_window=300))))
    noop = refused(plan(inp(history=others, guards=Guards(rate_limit_actions=3, rate_limit_window=300))), "rate_limit")
    assert noop.retry_after == pytest.approx(120.0)
    assert not noop.escalate


def test_blast_radius_on_a_workloads_pods() -> None:
    acts(plan(inp(snapshot=Snapshot(target=POD, workload_pods_total=1))))  # one pod may always go
    acts(plan(inp(snapshot=Snapshot(target=POD, workload_pods_total=6, workload_pods_disrupted=1))))
    noop = refused(
        plan(inp(snapshot=Snapshot(target=POD, workload_pods_total=3, workload_pods_disrupted=1))), "blast_radius"
    )
    assert not noop.escalate and noop.retry_after == Guards().recheck_seconds


def test_blast_radius_on_nodes_counts_other_cordoned_nodes() -> None:
    node_alert = alert(alertname="KubeNodeNotReady", workload=None, namespace=None)
    base = inp(alert=node_alert, policy=policy("node"), snapshot=Snapshot(target=NODE))
    acts(plan(base))
    acts(plan(replace(base, snapshot=Snapshot(target=NODE, nodes_unschedulable=("node-a",)))))  # itself
    noop = refused(plan(replace(base, snapshot=Snapshot(target=NODE, nodes_unschedulable=("node-b",)))), "blast_radius")
    assert not noop.escalate and noop.retry_after == Guards().recheck_seconds


def test_drain_needs_approval_which_expires() -> None:
    node_alert = alert(alertname="KubeNodeNotReady", workload=None, namespace=None)
    base = inp(alert=node_alert, policy=policy("node"), step=2, continuing=True, snapshot=Snapshot(target=NODE))
    asked = plan(base)
    assert isinstance(asked, Plan) and asked.approval is not None
    assert asked.approval.expires_at == NOW + timedelta(minutes=30)
    granted = acts(plan(replace(base, grant=Grant("alice", NOW + timedelta(minutes=5)))))
    assert granted.guards[-1].name == "approval" and "alice" in (granted.guards[-1].detail or "")
    refused(plan(replace(base, grant=Grant("alice", NOW - timedelta(seconds=1)))), "approval")
    # cordon (step 1) needs none
    acts(plan(replace(base, step=1, continuing=False)))


def test_dry_run_global_and_per_policy_plans_without_acting() -> None:
    acts(plan(inp()))
    glob = plan(inp(guards=Guards(dry_run=True)))
    assert isinstance(glob, Plan) and glob.dry_run and "global" in glob.reason
    per = plan(inp(policy=policy("crashloop").model_copy(update={"dry_run": True})))
    assert isinstance(per, Plan) and per.dry_run and "policy crashloop" in per.reason


def test_memory_raise_is_bounded_by_factor_and_ceiling() -> None:
    oom = inp(alert=alert(alertname="OOMKilled"), policy=policy("oom"))
    target = WORKLOAD.as_resource_ref()
    p = acts(plan(replace(oom, snapshot=Snapshot(target=target, memory_limit_bytes=400, container="app"))))
    assert p.action.parameters == {
        "factor": 1.5,
        "ceiling_bytes": 1000,
        "from_bytes": 400,
        "to_bytes": 600,
        "container": "app",
    }
    p = acts(plan(replace(oom, snapshot=Snapshot(target=target, memory_limit_bytes=900, container="app"))))
    assert p.action.parameters["to_bytes"] == 1000
    refused(plan(replace(oom, snapshot=Snapshot(target=target, memory_limit_bytes=1000))), "bounds")
    refused(plan(replace(oom, snapshot=Snapshot(target=target, memory_limit_bytes=None))), "bounds")


def test_ladder_progression_and_targets() -> None:
    crash = policy("crashloop")
    assert next_step(crash, 1) == 2
    assert next_step(crash, 2) == 3
    assert next_step(crash, 3) is None
    assert target_for(crash.ladder[0], alert()) == ResourceRef(
        kind="Pod", namespace="payments", name="checkout-1", api_version="v1"
    )
    assert target_for(crash.ladder[1], alert()) == WORKLOAD.as_resource_ref()
    assert target_for(crash.ladder[1], alert(workload=None)) is None
    node = policy("node")
    assert target_for(node.ladder[1], alert()) == ResourceRef(kind="Node", name="node-a", api_version="v1")


def test_rollback_returns_to_the_newest_revision_with_another_template_skipping_restarts() -> None:
    revisions = (Revision(1, "good"), Revision(2, "bad"), Revision(3, "bad"))  # 3: a restart of 2
    assert rollback_revision(3, revisions) == 1
    assert rollback_revision(2, revisions) == 1
    assert rollback_revision(1, revisions) is None
    assert rollback_revision(None, revisions) is None
    step3 = inp(step=3, continuing=True)
    snap = Snapshot(target=WORKLOAD.as_resource_ref(), resource_version="7", revision=3, revisions=revisions)
    p = acts(plan(replace(step3, snapshot=snap)))
    assert p.action.kind is ActionKind.ROLLBACK and p.action.parameters["to_revision"] == 1
    nothing = refused(plan(replace(step3, snapshot=replace(snap, revision=1))), "rollback_target")
    assert nothing.escalate and "no older revision" in nothing.reason
