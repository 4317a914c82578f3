"""Ladder steps conditioned on the analyzer's top cause, pure: the shipped crashloop policy rolls back when the
top cause is a rollout, passes the rollback (with its reason) when the cause is another or too unsure, falls
back to the ReplicaSet history when no diagnosis has arrived, and waits a bounded time only when asked to.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from importlib.resources import files

from opsbus.common.events.payloads import ActionKind, CauseKind, Severity, WorkloadRef
from opsbus.healer.domain.conditions import History, TopCause, judge
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
from opsbus.healer.domain.policy import CauseWhen, Policy, When, parse_policies

NOW = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)
WEB = WorkloadRef(kind="Deployment", namespace="demo", name="web")
DEPLOY = WEB.as_resource_ref().model_copy(update={"uid": "d-1"})
GOOD, BAD = "a" * 8, "b" * 8
ROLLED = (Revision(1, GOOD, NOW - timedelta(days=3)), Revision(2, BAD, NOW - timedelta(minutes=4)))
QUIET = (Revision(1, GOOD, NOW - timedelta(days=3)), Revision(2, BAD, NOW - timedelta(days=2)))
ROLLBACK_STEP, RESTART_STEP = 2, 3


def crashloop() -> Policy:
    shipped = parse_policies(files("opsbus.healer.domain").joinpath("defaults.yaml").read_text())
    found = shipped.get("crashloop")
    assert found is not None
    return found


def top(kind: CauseKind | None, confidence: float = 0.8) -> TopCause:
    return TopCause("evt-1", 1, kind, confidence, "crash began 40s after the rollout of web" if kind else "")


def inp(
    step: int, revisions: tuple[Revision, ...], diagnosis: TopCause | None, policy: Policy | None = None
) -> PlanningInput:
    alert = AlertState(
        fingerprint="8f3a9c2d41e07b65",
        alertname="KubePodCrashLooping",
        severity=Severity.CRITICAL,
        labels={"alertname": "KubePodCrashLooping", "namespace": "demo", "pod": "web-1"},
        namespace="demo",
        event_time=NOW - timedelta(seconds=5),
        firing=True,
        workload=WEB,
    )
    snapshot = Snapshot(target=DEPLOY, workload_pods_total=3, workload_pods_ready=0, revision=2, revisions=revisions)
    return PlanningInput(
        recovery_id="r-1",
        alert=alert,
        policy=policy or crashloop(),
        policy_version=1,
        step=step,
        snapshot=snapshot,
        history=(),
        guards=Guards(),
        now=NOW,
        continuing=step > 1,
        incident=IncidentFacts(first_alert_at=NOW - timedelta(minutes=1), firing_alerts=3, diagnosis=diagnosis),
    )


def test_the_default_crashloop_policy_rolls_back_when_the_top_cause_is_a_rollout() -> None:
    # the ReplicaSet history alone would not: the rollout is two days old, outside change_window
    rollback = plan(inp(ROLLBACK_STEP, QUIET, top(CauseKind.ROLLOUT, 0.6)))
    assert isinstance(rollback, Plan) and rollback.action.kind is ActionKind.ROLLBACK, rollback
    assert rollback.action.parameters["to_revision"] == 1
    when = next(g for g in rollback.guards if g.name == "when")
    assert "top cause rollout at confidence 0.60" in (when.detail or "") and "revision 1" in (when.detail or "")


def test_another_top_cause_passes_the_rollback_with_the_cause_as_its_reason() -> None:
    passed = plan(inp(ROLLBACK_STEP, ROLLED, top(CauseKind.CONFIG_CHANGE, 0.9)))
    assert isinstance(passed, Pass), passed
    assert "for when: cause rollout (confidence >= 0.6)" in passed.reason
    assert "top cause config_change at confidence 0.90" in passed.reason


def test_a_rollout_below_the_confidence_bound_passes_the_rollback() -> None:
    passed = plan(inp(ROLLBACK_STEP, ROLLED, top(CauseKind.ROLLOUT, 0.59)))
    assert isinstance(passed, Pass) and "top cause rollout at confidence 0.59" in passed.reason, passed


def test_without_a_diagnosis_the_default_falls_back_to_the_rollout_history() -> None:
    rollback = plan(inp(ROLLBACK_STEP, ROLLED, None))
    assert isinstance(rollback, Plan) and rollback.action.kind is ActionKind.ROLLBACK, rollback
    when = next(g for g in rollback.guards if g.name == "when")
    assert "no diagnosis yet; by the rollout history (changed): revision 2 rolled out" in (when.detail or "")
    quiet = plan(inp(ROLLBACK_STEP, QUIET, None))
    assert isinstance(quiet, Pass) and "no diagnosis yet" in quiet.reason and "no rollout within" in quiet.reason
    restart = plan(inp(RESTART_STEP, QUIET, None))
    assert isinstance(restart, Plan) and restart.action.kind is ActionKind.ROLLOUT_RESTART
    unexplained = plan(inp(ROLLBACK_STEP, ROLLED, top(None)))  # the analyzer answered: no cause found
    assert isinstance(unexplained, Plan) and unexplained.action.kind is ActionKind.ROLLBACK, unexplained
    assert any("the analyzer found no cause" in (g.detail or "") for g in unexplained.guards)


def with_when(when: CauseWhen) -> Policy:
    policy = crashloop()
    ladder = list(policy.ladder)
    ladder[ROLLBACK_STEP - 1] = ladder[ROLLBACK_STEP - 1].model_copy(update={"when": when})
    return policy.model_copy(update={"ladder": tuple(ladder)})


def test_with_no_fallback_a_missing_diagnosis_passes_the_step_rather_than_waiting() -> None:
    strict = with_when(CauseWhen(cause=CauseKind.ROLLOUT, min_confidence=0.6))
    passed = plan(inp(ROLLBACK_STEP, ROLLED, None, strict))
    assert isinstance(passed, Pass), passed
    assert "no diagnosis yet: the healer does not wait for the analyzer" in passed.reason
    assert isinstance(plan(inp(ROLLBACK_STEP, ROLLED, top(CauseKind.ROLLOUT), strict)), Plan)


def test_a_policy_may_wait_a_bounded_time_for_the_diagnosis() -> None:
    waiting = with_when(CauseWhen(cause=CauseKind.ROLLOUT, without_diagnosis=When.CHANGED, wait=30.0))
    deferred = plan(inp(ROLLBACK_STEP, ROLLED, None, waiting))  # the alert fired 5 s ago
    assert isinstance(deferred, NoOp) and deferred.guard == "diagnosis" and not deferred.escalate, deferred
    assert deferred.retry_after == 25.0 and "waiting 25s more" in deferred.reason
    late = replace(inp(ROLLBACK_STEP, ROLLED, None, waiting), now=NOW + timedelta(seconds=30))
    assert isinstance(plan(late), Plan)  # the wait is over: judged by the rollout history
    arrived = plan(inp(ROLLBACK_STEP, QUIET, top(CauseKind.ROLLOUT), waiting))
    assert isinstance(arrived, Plan)  # the diagnosis is here: no wait


def test_judge_reads_only_its_arguments() -> None:
    changed, quiet = History(True, "revision 2 rolled out"), History(False, "no rollout")
    rollout = CauseWhen(cause=CauseKind.ROLLOUT, without_diagnosis=When.UNCHANGED)
    assert judge(When.ALWAYS, quiet, None, 0).applies
    assert judge(When.CHANGED, changed, top(CauseKind.NODE), 0).applies  # a history step ignores the diagnosis
    assert judge(rollout, changed, top(CauseKind.ROLLOUT, 0.5), 0).applies  # min_confidence defaults to 0.5
    assert not judge(rollout, changed, None, 0).applies and judge(rollout, quiet, None, 0).applies
    assert judge(rollout, quiet, None, -5).wait is None  # no `wait`: a clock behind the alert's never waits
    assert (
        judge(rollout.model_copy(update={"wait": 10.0}), quiet, None, -5).wait == 10.0
    )  # and never longer than `wait`
