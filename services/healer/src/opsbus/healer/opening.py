"""The first records of a recovery taken in: its row, and what triage decided for its first step.

A batch of fired alerts is written in one transaction (`intake`): for each new recovery this module builds the
row to insert and, from the triage (`domain.triage`), the lifecycle moves (checked against the transition
table, as `Recorder.transition` checks them), the audit entries and the skipped attempt that the ladder would
have recorded for the same decision, with the same ids and keys: a recovery joined, closed or deferred at
intake reads exactly like one the ladder moved. It builds records only; the intake writes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from opsbus.common.events import Envelope
from opsbus.common.events.payloads import AlertFired, AuditOutcome, Severity
from opsbus.healer.domain import lifecycle
from opsbus.healer.domain.lifecycle import State, Transition
from opsbus.healer.domain.planning import target_for
from opsbus.healer.domain.policy import Policy
from opsbus.healer.domain.triage import Triage
from opsbus.healer.recording import INCIDENT, Recorder, alert_state, object_of

# The order a storm is worked through when the rate limit defers most of it: critical first.
SEVERITY_RANK = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.INFO: 2}


@dataclass
class Opened:
    rec: Recorder
    rid: str
    cause: Envelope
    policy: Policy
    row: dict[str, Any]
    moves: list[dict[str, Any]] = field(default_factory=list)
    entries: list[Envelope] = field(default_factory=list)
    skipped: dict[str, Any] | None = None  # the skipped attempt's columns
    walks: bool = True  # left for the ladder (status open)

    @classmethod
    def of(cls, rec: Recorder, rid: str, event: Envelope, policy: Policy, *, version: int, now: datetime) -> Opened:
        alert = event.payload_as(AlertFired)
        row = {
            "id": rid,
            "fingerprint": alert.fingerprint,
            "alert_event_id": event.id,
            "alert_event": event.model_dump(mode="json", exclude_none=True),
            "policy": policy.name,
            "policy_version": version,
            "target_key": alert_state(event, True).target_key,
            "status": State.OPEN.value,
            "step": 1,
            "act_by": now + timedelta(seconds=policy.escalate_after),
            "due_at": None,
            "deferred_by": None,
            "severity_rank": SEVERITY_RANK.get(alert.severity, len(SEVERITY_RANK)),
            "incident_id": None,
            "group_key": None,
            "incident_at": None,
            "created_at": now,
            "updated_at": now,
        }
        return cls(rec, rid, event, policy, row)

    def _move(self, transition: Transition, reason: str, now: datetime) -> None:
        record = lifecycle.apply(self.rid, State(self.row["status"]), transition, reason, now)
        self.row["status"] = record.to_state.value
        self.moves.append(
            {
                "recovery_id": self.rid,
                "from_state": record.from_state.value,
                "transition": record.transition.value,
                "to_state": record.to_state.value,
                "reason": record.reason,
                "at": now,
            }
        )

    def decide(self, t: Triage, now: datetime) -> None:
        """Apply the triage: join the incident, or lead one and close or defer the first step right here."""
        if t.joins is not None:
            lead = t.joins
            reason = f"joined incident {lead.recovery_id} of {lead.key}: its lead acts for every alert of it"
            self._move(Transition.JOIN, reason, now)
            self.row.update(
                incident_id=lead.recovery_id, group_key=lead.key, incident_at=now, deferred_by=INCIDENT, act_by=None
            )
            self.entries.append(
                self.rec.audit_entry(
                    self.cause,
                    action="recovery.group",
                    target=object_of(self.cause),
                    outcome=AuditOutcome.SKIPPED,
                    reason=reason,
                    key=f"{self.rid}:joined:{lead.recovery_id}",
                    details={"recovery_id": self.rid, "incident": lead.recovery_id, "group": lead.key},
                )
            )
            self.walks = False
            return
        self.row.update(incident_id=self.rid, group_key=t.key, incident_at=now)
        d = t.decision
        if d is None:
            return
        self.walks = False
        self._move(Transition.PLAN, f"policy {self.policy.name} matched", now)
        step = self.policy.ladder[d.step - 1]
        obj = target_for(step, alert_state(self.cause, True)) or object_of(self.cause)
        if d.retry_after is not None:
            due = now + timedelta(seconds=d.retry_after)
            self._move(Transition.DEFER, f"{d.guard}: {d.reason}", now)
            self.row.update(due_at=due, deferred_by=d.guard)
            self.entries.append(self.rec.noop_entry(self.rid, self.cause, d, obj, due=due, n=1))
            return
        self.entries.append(self.rec.noop_entry(self.rid, self.cause, d, obj, due=None))
        target_key = str(self.row["target_key"])
        self.skipped = self.rec.skipped_values(
            self.rid, target_key, d.step, step.action, obj, why="noop", reason=d.reason
        )
        self._move(Transition.SKIP, f"{d.guard}: {d.reason}", now)
