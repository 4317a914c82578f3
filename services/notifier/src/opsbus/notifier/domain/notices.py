"""What the notifier knows about one thing to tell people: a `Notice`, built from an opsbus event.

An alert (`alert.fired` / `alert.resolved`) is a notice that lives while it fires: the same fingerprint is
updated and finally resolved. Every other event the notifier routes (a recovery step, a rollout outcome, a
scaling recommendation, the analyzer's diagnosis with its top cause and evidence, labelled `cause=<kind>`) is
*ephemeral*: told once, then dropped from its group. A notice carries what the
on-call engineer needs in the message: the reason, the evidence (last log lines, Kubernetes Events), what
the healer did, and the ids that link it to the trace and the gateway; a step waiting for approval says
which (recovery id and step), for the chat channels that offer Approve and Reject buttons. Pure; no I/O.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from opsbus.common.events import Envelope
from opsbus.common.events.payloads import (
    AlertFired,
    AlertResolved,
    DeployFailed,
    DeployRollbackFailed,
    DeployRolledBack,
    DeploySkipped,
    DiagnosisMade,
    DiagnosisRevised,
    NotifyDelivered,
    NotifyFailed,
    RecoveryEscalated,
    RecoveryFailed,
    RecoveryPlanned,
    RecoverySucceeded,
)

Status = Literal["firing", "resolved"]

#: events the notifier never routes (its own outcomes, the audit trail, raw cluster changes)
IGNORED_FAMILIES = frozenset({"notify", "audit", "cluster", "dlq"})


class ApprovalAsk(BaseModel):
    """A planned recovery step waiting for a person: chat channels that can take the decision offer buttons."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    recovery_id: str
    step: int
    expires_at: datetime


class Notice(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    fingerprint: str
    status: Status
    ephemeral: bool = False
    labels: dict[str, str]
    title: str
    reason: str | None = None
    description: str | None = None
    severity: str = "info"
    event_id: str
    event_type: str
    subject: str
    starts_at: datetime
    ends_at: datetime | None = None
    correlationid: str | None = None
    traceparent: str | None = None
    runbook_url: str | None = None
    log_lines: list[str] = Field(default_factory=list)
    kube_events: list[str] = Field(default_factory=list)
    actions: list[str] = Field(default_factory=list, description="What the healer did, one line per step.")
    cause_evidence: list[str] = Field(
        default_factory=list,
        description="A diagnosis: the evidence of its top cause (or what was checked), one line each.",
    )
    approval: ApprovalAsk | None = Field(default=None, description="A `recovery.planned` waiting for approval.")


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:16]


def _event_type_label(envelope: Envelope) -> str:
    return "alert" if envelope.family == "alert" else f"{envelope.family}.{envelope.verb}"


def _alert_notice(
    envelope: Envelope, alert: AlertFired | AlertResolved, status: Status, ends_at: datetime | None
) -> Notice:
    labels = {**alert.labels, "cluster": alert.labels.get("cluster", envelope.cluster), "event_type": "alert"}
    labels.setdefault("severity", alert.severity.value)
    lines: list[str] = []
    for excerpt in alert.evidence.logs:
        lines.extend(
            f"[{excerpt.container}{' previous' if excerpt.previous else ''}] {line}" for line in excerpt.lines[-20:]
        )
    reasons = [c.reason for c in alert.evidence.containers if c.reason]
    return Notice(
        fingerprint=alert.fingerprint,
        status=status,
        labels=labels,
        title=alert.annotations.summary,
        reason=", ".join(dict.fromkeys(reasons)) or None,
        description=alert.annotations.description,
        severity=alert.severity.value,
        event_id=envelope.id,
        event_type=envelope.type,
        subject=envelope.subject,
        starts_at=alert.starts_at,
        ends_at=ends_at,
        correlationid=envelope.correlationid,
        traceparent=envelope.traceparent,
        runbook_url=str(alert.annotations.runbook_url) if alert.annotations.runbook_url else None,
        log_lines=lines[-40:],
        kube_events=[f"{e.type} {e.reason} (x{e.count}): {e.message}" for e in alert.evidence.events[-10:]],
    )


#: non-alert events by severity; anything not listed is `info` (started, progressed, succeeded, ...)
_SEVERITY = {
    # the workload needs a human: the healer gave up, or a rollback left it possibly half on each revision
    RecoveryEscalated.event_type: "critical",
    DeployRollbackFailed.event_type: "critical",
    DeployFailed.event_type: "warning",
    RecoveryFailed.event_type: "warning",
    DeployRolledBack.event_type: "warning",
    DeploySkipped.event_type: "info",  # nothing in the cluster changed
}


def _severity_of(envelope: Envelope) -> str:
    return _SEVERITY.get(envelope.type, "info")


def _actions(envelope: Envelope) -> tuple[str | None, list[str]]:
    payload = envelope.payload()
    if isinstance(payload, RecoveryEscalated):
        history = [
            f"step {a.step}: {a.action.value} on {a.target.kind}/{a.target.name} -> {a.outcome.value}"
            + (f" ({a.message})" if a.message else "")
            for a in payload.history
        ]
        return payload.reason, history
    if isinstance(payload, RecoveryPlanned | RecoveryFailed):
        act = payload.action
        line = f"step {payload.step}/{payload.steps_total}: {act.kind.value} on {act.target.kind}/{act.target.name}"
        return payload.reason, [line]
    if isinstance(payload, RecoverySucceeded):
        act = payload.action
        return None, [
            f"step {payload.step}/{payload.steps_total}: {act.kind.value} on "
            f"{act.target.kind}/{act.target.name} succeeded in {payload.duration_seconds:.0f}s"
        ]
    if isinstance(payload, DeployRollbackFailed):
        to = f" to revision {payload.to_revision}" if payload.to_revision else ""
        after = f" after the rollout failed ({payload.failure.value})" if payload.failure else ""
        return f"rollback{to} did not complete{after}: the workload needs a human", []
    if isinstance(payload, DeploySkipped):
        return f"{payload.reason} request ({payload.age_seconds:.0f}s old): nothing was changed", []
    reason = getattr(payload, "reason", None)
    return (str(reason) if isinstance(reason, str) else None), []


def _description(envelope: Envelope) -> str | None:
    message = getattr(envelope.payload(), "message", None)
    return message if isinstance(message, str) and message else None


def _diagnosis(payload: DiagnosisMade | DiagnosisRevised) -> tuple[str, str, list[str]]:
    """(cause label, reason line, evidence lines) of a diagnosis: its top cause, or `unknown` and what was checked."""
    top = payload.top()
    if top is None:
        checked = [f"checked {c.source}: {c.count}" + (f" ({c.detail})" if c.detail else "") for c in payload.checked]
        return "unknown", "no probable cause found: nothing examined explains this incident", checked
    reason = (
        f"probable cause ({top.kind.value}, confidence {top.confidence:.2f}, suggested action "
        f"{top.suggested_action.value}): {top.summary}"
    )
    evidence = [f"{e.kind.value} {e.ref}" + (f": {e.detail}" if e.detail else "") for e in top.evidence[:8]]
    return top.kind.value, reason, evidence


def notice_from(envelope: Envelope) -> Notice | None:
    """The notice for `envelope`, or None for events the notifier does not route. Raises UndecodableError."""
    if envelope.family in IGNORED_FAMILIES or envelope.type in (NotifyDelivered.event_type, NotifyFailed.event_type):
        return None
    if envelope.type == AlertFired.event_type:
        fired = envelope.payload_as(AlertFired)
        return _alert_notice(envelope, fired, "firing", fired.ends_at)
    if envelope.type == AlertResolved.event_type:
        resolved = envelope.payload_as(AlertResolved)
        return _alert_notice(envelope, resolved, "resolved", resolved.ends_at)
    envelope.payload()  # validates; unknown or invalid payloads raise UndecodableError
    obj = envelope.object
    # deploy.rollback_failed -> DeployRollbackFailed
    name = "".join(part.title() for part in (envelope.family, *envelope.verb.split("_")))
    labels = {
        "alertname": name,
        "event_type": _event_type_label(envelope),
        "cluster": envelope.cluster,
        "namespace": obj.namespace or "",
        obj.kind.lower() if obj.kind.lower() in ("pod", "node") else "workload": obj.name,
        "severity": _severity_of(envelope),
    }
    reason, actions = _actions(envelope)
    evidence: list[str] = []
    payload = envelope.payload()
    if isinstance(payload, DiagnosisMade | DiagnosisRevised):
        labels["cause"], reason, evidence = _diagnosis(payload)
    approval = None
    if isinstance(payload, RecoveryPlanned) and payload.approval is not None:
        approval = ApprovalAsk(
            recovery_id=payload.recovery_id, step=payload.step, expires_at=payload.approval.expires_at
        )
    verb = envelope.verb
    return Notice(
        fingerprint=_digest(envelope.id),
        status="firing",
        ephemeral=True,
        labels={k: v for k, v in labels.items() if v},
        title=f"{envelope.family} {verb.replace('_', ' ')}: {obj.kind}/{obj.namespace or '_'}/{obj.name}",
        reason=reason,
        description=_description(envelope),
        severity=labels["severity"],
        event_id=envelope.id,
        event_type=envelope.type,
        subject=envelope.subject,
        starts_at=envelope.time,
        correlationid=envelope.correlationid,
        traceparent=envelope.traceparent,
        actions=actions,
        cause_evidence=evidence,
        approval=approval,
    )
