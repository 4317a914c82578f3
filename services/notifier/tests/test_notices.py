"""Notices built from the deployer's terminal events: severity, reason and message, and how the default templates
and the PagerDuty body present them (`deploy.rollback_failed` pages, `deploy.skipped` is informational). The
Slack notice of a recovery step waiting for approval carries Approve and Reject buttons naming the step (the
contract in `opsbus.common.api.chat` that the gateway's Slack endpoint reads back); other notices, and one no
longer firing, carry none."""

from __future__ import annotations

from typing import Any

import pytest

from opsbus.common.api.chat import ACTION_APPROVE, ACTION_REJECT, parse_step_value
from opsbus.common.events.examples import RECOVERY_ID, example_events
from opsbus.common.events.payloads import (
    DeployFailed,
    DeployRollbackFailed,
    DeployRolledBack,
    DeploySkipped,
    DeploySucceeded,
    RecoveryEscalated,
    RecoveryPlanned,
    RecoveryStarted,
)
from opsbus.notifier.domain.config import parse_config
from opsbus.notifier.domain.grouping import Notification, notification_id
from opsbus.notifier.domain.notices import Notice, notice_from
from opsbus.notifier.domain.routing import match_routes
from opsbus.notifier.rendering import Links, Renderer, pagerduty_body, slack_body

LINKS = Links(gateway_url="https://opsbus.example.com", jaeger_url=None)


def notice_of(event_type: str) -> Notice:
    notice = notice_from(example_events()[event_type])
    assert notice is not None
    return notice


def notification_of(notice: Notice) -> Notification:
    key = f'0:{{alertname="{notice.labels["alertname"]}"}}'
    return Notification(
        id=notification_id(key, "e0", 1),
        group_key=key,
        epoch="e0",
        seq=1,
        receiver="oncall",
        status="firing",
        group_labels={"alertname": notice.labels["alertname"]},
        common_labels=dict(notice.labels),
        alerts=(notice,),
        repeat=False,
    )


@pytest.mark.parametrize(
    ("event_type", "severity"),
    [
        (DeployRollbackFailed.event_type, "critical"),
        (RecoveryEscalated.event_type, "critical"),
        (DeployFailed.event_type, "warning"),
        (DeployRolledBack.event_type, "warning"),
        (DeploySkipped.event_type, "info"),
        (DeploySucceeded.event_type, "info"),
    ],
)
def test_severity_of_non_alert_events(event_type: str, severity: str) -> None:
    notice = notice_of(event_type)
    assert notice.severity == severity
    assert notice.labels["severity"] == severity


def test_rollback_failed_says_the_workload_needs_a_human_and_pages() -> None:
    notice = notice_of(DeployRollbackFailed.event_type)
    assert notice.labels["alertname"] == "DeployRollbackFailed"
    assert notice.labels["event_type"] == "deploy.rollback_failed"
    assert notice.labels["workload"] == "checkout" and notice.labels["namespace"] == "payments"
    assert notice.title == "deploy rollback failed: Deployment/payments/checkout"
    assert notice.reason == (
        "rollback to revision 41 did not complete after the rollout failed (analysis_failed): "
        "the workload needs a human"
    )
    n = notification_of(notice)
    rendered = Renderer(LINKS).for_receiver(None).render(n)
    assert rendered.title.startswith("[FIRING:1] DeployRollbackFailed")
    assert "Reason: rollback to revision 41 did not complete" in rendered.text
    assert "rollback did not complete: 4 of 10 replicas updated, no progress for 630s" in rendered.text
    assert "severity critical" in rendered.text
    assert f"Incident: https://opsbus.example.com/v1/incidents/{notice.correlationid}" in rendered.text
    body = pagerduty_body(n, rendered, LINKS, routing_key="k")
    assert body["event_action"] == "trigger" and body["payload"]["severity"] == "critical"


def test_skipped_explains_that_nothing_changed_and_is_informational() -> None:
    notice = notice_of(DeploySkipped.event_type)
    assert notice.labels["alertname"] == "DeploySkipped"
    assert notice.reason == "stale request (5400s old): nothing was changed"
    n = notification_of(notice)
    rendered = Renderer(LINKS).for_receiver(None).render(n)
    assert rendered.title == "[FIRING:1] DeploySkipped"
    assert "severity info" in rendered.text
    assert "freshness bound is 3600s: nothing was changed" in rendered.text  # the deployer's own message
    assert pagerduty_body(n, rendered, LINKS, routing_key="k")["payload"]["severity"] == "info"


def test_a_route_matching_severity_critical_takes_rollback_failed_but_not_skipped() -> None:
    config = parse_config(
        """\
route:
  receiver: chat
  routes:
    - receiver: pager
      matchers: ['severity="critical"']
receivers:
  - name: chat
  - name: pager
"""
    )

    def receivers(event_type: str) -> list[str]:
        return [r.receiver for r in match_routes(config.root, notice_of(event_type).labels)]

    assert receivers(DeployRollbackFailed.event_type) == ["pager"]
    assert receivers(DeploySkipped.event_type) == ["chat"]


def test_a_diagnosis_tells_the_top_cause_its_evidence_and_is_routable_by_cause() -> None:
    from opsbus.common.events.payloads import DiagnosisMade, DiagnosisOutcome  # noqa: PLC0415

    event = example_events()[DiagnosisMade.event_type]
    notice = notice_of(DiagnosisMade.event_type)
    assert notice.labels["alertname"] == "DiagnosisMade" and notice.labels["cause"] == "rollout"
    assert notice.labels["workload"] == "checkout" and notice.correlationid == event.correlationid
    assert notice.reason is not None
    assert notice.reason.startswith("probable cause (rollout, confidence 0.89, suggested action rollback): ")
    assert notice.cause_evidence[0].startswith(
        "change 0195b2f0-9e21-7c4b-8a11-000000000004: image app: checkout:1.41.2"
    )
    n = notification_of(notice)
    rendered = Renderer(LINKS).for_receiver(None).render(n)
    assert "Reason: probable cause (rollout" in rendered.text
    assert "Evidence:\n- change 0195b2f0-9e21-7c4b-8a11-000000000004" in rendered.text
    assert "- log_template pool exhausted: <*> of <*> connections in use" in rendered.text
    assert f"Incident: https://opsbus.example.com/v1/incidents/{event.correlationid}" in rendered.text
    config = parse_config(
        """\
route:
  receiver: chat
  routes:
    - receiver: deployers
      matchers: ['cause="rollout"']
receivers:
  - name: chat
  - name: deployers
"""
    )
    assert [r.receiver for r in match_routes(config.root, notice.labels)] == ["deployers"]
    # unknown: no cause is invented; the message says what was checked
    unknown = event.model_copy(update={"data": {**event.data, "outcome": DiagnosisOutcome.UNKNOWN.value, "causes": []}})
    told = notice_from(unknown)
    assert told is not None and told.labels["cause"] == "unknown"
    assert told.reason == "no probable cause found: nothing examined explains this incident"
    assert told.cause_evidence[0].startswith("checked changes: 3")


def slack_of(event_type: str, **changes: Any) -> dict[str, Any]:
    notice = notice_from(example_events()[event_type])
    assert notice is not None
    n = notification_of(notice.model_copy(update=changes))
    return slack_body(n, Renderer(LINKS).for_receiver(None).render(n), LINKS)


def decision_buttons(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        e
        for b in body["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e.get("action_id") in (ACTION_APPROVE, ACTION_REJECT)
    ]


def test_a_step_waiting_for_approval_offers_approve_and_reject_naming_the_step() -> None:
    notice = notice_from(example_events()[RecoveryPlanned.event_type])
    assert notice is not None and notice.approval is not None
    assert (notice.approval.recovery_id, notice.approval.step) == (RECOVERY_ID, 2)
    approve, reject = decision_buttons(slack_of(RecoveryPlanned.event_type))
    assert (approve["action_id"], approve["style"], reject["action_id"], reject["style"]) == (
        ACTION_APPROVE,
        "primary",
        ACTION_REJECT,
        "danger",
    )
    assert parse_step_value(approve["value"]) == parse_step_value(reject["value"]) == (RECOVERY_ID, 2)
    assert approve["text"]["text"].startswith("Approve (until ") and "confirm" in approve
    links = [e for b in slack_of(RecoveryPlanned.event_type)["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert any(e.get("url", "").startswith("https://opsbus.example.com/v1/incidents/") for e in links)


def test_other_notices_and_a_resolved_one_carry_no_decision_buttons() -> None:
    assert decision_buttons(slack_of(RecoveryStarted.event_type)) == []
    assert decision_buttons(slack_of(RecoveryPlanned.event_type, status="resolved")) == []
    assert decision_buttons(slack_of(RecoveryPlanned.event_type, approval=None)) == []
