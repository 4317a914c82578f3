"""Triage at intake, pure: what an alert's first step can be decided without the cluster, and that each answer
is the planner's own (the same guard, reason and retry time as `plan` gives with a snapshot of an existing
target). No mocks, no clock reads.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from opsbus.common.events.payloads import ActionKind, Severity, WorkloadRef
from opsbus.healer.domain.incidents import Lead
from opsbus.healer.domain.planning import (
    AlertState,
    FreezeWindow,
    Guards,
    NoOp,
    PastAttempt,
    PlanningInput,
    Snapshot,
    plan,
    target_for,
)
from opsbus.healer.domain.policy import parse_policies
from opsbus.healer.domain.triage import TriageInput, triage

NOW = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)
WEB = WorkloadRef(kind="Deployment", namespace="demo", name="web")
POLICIES = parse_policies("""
policies:
  - name: restart
    match: {alertname: KubePodCrashLooping}
    cooldown: 2m
    max_attempts: 2
    ladder:
      - {action: rollout_restart, verify: none, timeout: 1m}
""")
RESTART = POLICIES.policies[0]


def alert(**changes: object) -> AlertState:
    base = AlertState(
        fingerprint="8f3a9c2d41e07b65",
        alertname="KubePodCrashLooping",
        severity=Severity.CRITICAL,
        labels={"alertname": "KubePodCrashLooping", "namespace": "demo", "pod": "web-1"},
        namespace="demo",
        event_time=NOW - timedelta(seconds=5),
        firing=True,
        workload=WEB,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def attempt(minutes_ago: float, key: str = str(WEB), rid: str = "r-0") -> PastAttempt:
    return PastAttempt(rid, key, ActionKind.ROLLOUT_RESTART, NOW - timedelta(minutes=minutes_ago))


def inp(**changes: object) -> TriageInput:
    base = TriageInput(recovery_id="r-1", alert=alert(), policy=RESTART, history=(), leads=(), guards=Guards(), now=NOW)
    return replace(base, **changes)  # type: ignore[arg-type]


def planned(t: TriageInput) -> object:
    """What the planner decides for the same alert with a snapshot of an existing, healthy target."""
    target = target_for(RESTART.ladder[0], t.alert)
    assert target is not None
    snapshot = Snapshot(target=target, resource_version="1", workload_pods_total=3, workload_pods_ready=3)
    return plan(
        PlanningInput(
            recovery_id=t.recovery_id,
            alert=t.alert,
            policy=t.policy,
            policy_version=1,
            step=1,
            snapshot=snapshot,
            history=t.history,
            guards=t.guards,
            now=t.now,
        )
    )


FROZEN = Guards(freeze_windows=(FreezeWindow("release", start=NOW - timedelta(hours=1), end=NOW + timedelta(hours=1)),))
CASES = {
    "stale": (inp(alert=alert(event_time=NOW - timedelta(hours=1))), "freshness", None),
    "resolved": (inp(alert=alert(firing=False)), "alert_firing", None),
    "frozen": (inp(guards=FROZEN), "freeze_window", 3600.0),
    "budget": (inp(history=(attempt(3), attempt(4))), "attempt_budget", 3600.0 - 4 * 60),
    "cooldown": (inp(history=(attempt(0.5),)), "cooldown", 90.0),
    "rate limit": (
        inp(history=tuple(attempt(1 + i / 10, key=f"Deployment/demo/x{i}") for i in range(10))),
        "rate_limit",
        300.0 - 1.9 * 60,  # the oldest of the ten leaves the window first
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_first_step_decided_at_intake_is_the_planners_decision(case: str) -> None:
    t, guard, retry = CASES[case]
    got = triage(t)
    assert got.joins is None and got.key == str(WEB)
    assert isinstance(got.decision, NoOp)
    assert (got.decision.guard, got.decision.retry_after) == (guard, retry)
    assert not got.decision.escalate
    same = planned(t)
    assert isinstance(same, NoOp)
    assert (same.guard, same.reason, same.retry_after) == (guard, got.decision.reason, retry)
    assert got.decision.guards[-1].name == guard and not got.decision.guards[-1].passed


def test_an_alert_of_a_live_incident_joins_it_before_any_guard() -> None:
    live = Lead("lead-1", str(WEB), "restart", NOW - timedelta(seconds=10))
    got = triage(inp(leads=(live,), guards=FROZEN))
    assert got.joins == live and got.decision is None


def test_an_alert_no_cheap_guard_stops_is_left_to_the_ladder() -> None:
    got = triage(inp())
    assert got == type(got)(joins=None, key=str(WEB), decision=None)
    assert not isinstance(planned(inp()), NoOp)  # the planner acts on it


def test_what_needs_the_cluster_or_escalates_is_left_to_the_ladder() -> None:
    protected = alert(
        namespace="kube-system", workload=WorkloadRef(kind="Deployment", namespace="kube-system", name="dns")
    )
    assert triage(inp(alert=protected, guards=FROZEN)).decision is None  # escalated by the ladder, with evidence
    nameless = alert(workload=None, labels={"alertname": "KubePodCrashLooping"}, namespace=None)
    assert triage(inp(alert=nameless, guards=FROZEN)).decision is None  # no target: the ladder escalates it
