"""The policy preview replays past alerts through the planner: the edited document and the one in force,
side by side. No mocks: policies are parsed from YAML, alerts are data, the clock is each alert's time."""

from __future__ import annotations

from datetime import UTC, datetime

from opsbus.common.events.payloads import Severity, WorkloadRef
from opsbus.healer.domain.planning import AlertState, Guards
from opsbus.healer.domain.policy import parse_policies
from opsbus.healer.domain.previewing import PastAlert, outcome, preview

FIRED = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)
CURRENT = parse_policies(
    """
policies:
  - name: crashloop
    match: {alertname: KubePodCrashLooping}
    ladder:
      - {action: delete_pod}
      - {action: rollout_restart}
""",
    version=3,
)


def crashloop(namespace: str = "shop", pod: str = "web-1") -> PastAlert:
    alert = AlertState(
        fingerprint=f"fp-{namespace}-{pod}",
        alertname="KubePodCrashLooping",
        severity=Severity.CRITICAL,
        labels={"alertname": "KubePodCrashLooping", "namespace": namespace, "pod": pod},
        namespace=namespace,
        event_time=FIRED,
        firing=True,
        workload=WorkloadRef(kind="Deployment", namespace=namespace, name="web"),
    )
    return PastAlert(f"incident-{namespace}-{pod}", alert)


def test_the_version_in_force_deletes_the_pod_the_edited_one_restarts_in_dry_run() -> None:
    edited = parse_policies("""
policies:
  - name: crashloop
    dry_run: true
    match: {alertname: KubePodCrashLooping}
    ladder:
      - {action: rollout_restart}
""")
    [row] = preview(edited, CURRENT, [crashloop()], Guards())
    assert (row.current.policy, row.current.step, row.current.action, row.current.decision) == (
        "crashloop",
        1,
        "delete_pod",
        "planned",
    )
    assert (row.edited.step, row.edited.action, row.edited.decision) == (1, "rollout_restart", "dry_run")
    assert row.changed


def test_an_alert_no_policy_matches_would_be_left_alone() -> None:
    edited = parse_policies("""
policies:
  - name: oom
    match: {alertname: OOMKilled}
    ladder:
      - {action: notify_only}
""")
    [row] = preview(edited, CURRENT, [crashloop()], Guards())
    assert row.edited.decision == "no_policy" and row.edited.policy is None
    assert row.current.decision != "no_policy"
    assert row.changed


def test_a_protected_namespace_is_refused_with_its_guard() -> None:
    result = outcome(CURRENT, crashloop(namespace="kube-system").alert, Guards())
    assert (result.decision, result.guard) == ("refused", "protected_namespace")


def test_steps_that_need_a_rollout_history_are_passed_and_say_why() -> None:
    edited = parse_policies("""
policies:
  - name: crashloop
    match: {alertname: KubePodCrashLooping}
    ladder:
      - {action: rollback, when: changed, verify: deploy_succeeded}
      - {action: rollout_restart}
""")
    result = outcome(edited, crashloop().alert, Guards())
    assert (result.step, result.action, result.decision) == (2, "rollout_restart", "planned")
    assert len(result.passed) == 1 and result.passed[0].startswith("1. rollback:")


def test_approval_is_reported_for_a_step_that_needs_it() -> None:
    edited = parse_policies("""
policies:
  - name: crashloop
    match: {alertname: KubePodCrashLooping}
    approval: {required_for: [rollout_restart]}
    ladder:
      - {action: rollout_restart}
""")
    assert outcome(edited, crashloop().alert, Guards()).decision == "approval"


def test_the_same_document_changes_nothing() -> None:
    rows = preview(CURRENT, CURRENT, [crashloop(), crashloop(pod="web-2")], Guards())
    assert [r.changed for r in rows] == [False, False]
    assert [r.incident_id for r in rows] == ["incident-shop-web-1", "incident-shop-web-2"]
