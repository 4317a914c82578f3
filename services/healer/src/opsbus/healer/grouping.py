"""Incident membership: a recovery leads the incident of its workload or node, or joins a live one.

Run before a recovery's first plan (and again when a member is woken after its incident ended), under the
cluster's planning lock, so two alerts of one workload arriving together never both lead. A member waits in
`deferred` with no due time and no bound of its own: its lead acts for the incident, and when the lead ends
the recorder ends or wakes the members (`recording.Recorder.settle_members`). The decisions are the pure
`domain.incidents`; this module reads the live incidents and stores the outcome.

Also records a step that does not apply to the incident (`Pass`: a pod step when the workload fails as a
whole, a `when: changed` rollback with no change before the fault): the ladder moves on, never silently.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from opsbus.common.events import Envelope
from opsbus.common.events.payloads import AlertFired, AuditOutcome, ResourceRef
from opsbus.common.store import Database
from opsbus.healer.diagnoses import top_cause
from opsbus.healer.domain import lifecycle
from opsbus.healer.domain.incidents import Lead, keys_of, lead_for, own_key
from opsbus.healer.domain.lifecycle import State, Transition
from opsbus.healer.domain.planning import AlertState, IncidentFacts, Pass, next_step
from opsbus.healer.domain.policy import Policy
from opsbus.healer.recording import INCIDENT, Recorder, object_of
from opsbus.healer.store import AlertRow, RecoveryRow

LIVE = [s.value for s in lifecycle.LIVE]


class Incidents:
    def __init__(self, *, db: Database, rec: Recorder, plan_lock: str, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.rec = rec
        self.plan_lock = plan_lock
        self.clock = clock

    async def gather(self, rec: RecoveryRow, cause: Envelope, alert: AlertState, policy: Policy) -> str | None:
        """Join the live incident the alert belongs to (returns its lead's id) or lead one (returns None)."""
        keys = keys_of(alert)
        now = self.clock()
        async with self.db.sessions.begin() as session:
            await session.execute(select(func.pg_advisory_xact_lock(func.hashtext(self.plan_lock))))
            leads = [] if not keys else await self.leads(session, keys, rec.id)
            lead = lead_for(alert, rec.policy, leads, policy.group_window, now)
            if lead is None:
                await self.rec.update(session, rec.id, incident_id=rec.id, group_key=own_key(alert), incident_at=now)
                return None
            reason = f"joined incident {lead.recovery_id} of {lead.key}: its lead acts for every alert of it"
            await self.rec.transition(
                session,
                rec.id,
                Transition.JOIN,
                reason,
                incident_id=lead.recovery_id,
                group_key=lead.key,
                incident_at=now,
                deferred_by=INCIDENT,
                due_at=None,
                act_by=None,
            )
            await self.rec.audit(
                session,
                cause,
                action="recovery.group",
                target=object_of(cause),
                outcome=AuditOutcome.SKIPPED,
                reason=reason,
                key=f"{rec.id}:joined:{lead.recovery_id}",
                details={"recovery_id": rec.id, "incident": lead.recovery_id, "group": lead.key},
            )
        self.rec.wake_relay()
        return lead.recovery_id

    async def leads(self, session: AsyncSession, keys: tuple[str, ...], exclude: str | None) -> list[Lead]:
        """The live incidents grouped by any of `keys` (but the one `exclude` leads)."""
        q = select(RecoveryRow.id, RecoveryRow.group_key, RecoveryRow.policy, RecoveryRow.incident_at).where(
            RecoveryRow.group_key.in_(keys),
            RecoveryRow.incident_id == RecoveryRow.id,
            RecoveryRow.status.in_(LIVE),
        )
        if exclude is not None:
            q = q.where(RecoveryRow.id != exclude)
        return [Lead(r.id, r.group_key, r.policy, r.incident_at or self.clock()) for r in await session.execute(q)]

    async def facts(self, session: AsyncSession, rec: RecoveryRow, cause: Envelope) -> IncidentFacts:
        """When the incident's first alert fired, how many of its alerts (distinct faults) fire now, and the
        analyzer's latest top cause of it (steps conditioned on the cause read it)."""
        q = (
            select(func.count(func.distinct(RecoveryRow.fingerprint)))
            .join(AlertRow, AlertRow.fingerprint == RecoveryRow.fingerprint)
            .where(RecoveryRow.incident_id == rec.id, AlertRow.firing.is_(True))
        )
        firing = int((await session.execute(q)).scalar_one()) if rec.incident_id == rec.id else 1
        members = select(RecoveryRow.fingerprint).where(RecoveryRow.incident_id == rec.id).distinct()
        fingerprints = {rec.fingerprint, *(await session.execute(members)).scalars()}
        diagnosis = await top_cause(session, rec.alert_event_id, sorted(fingerprints))
        return IncidentFacts(
            first_alert_at=cause.payload_as(AlertFired).starts_at, firing_alerts=max(firing, 1), diagnosis=diagnosis
        )

    async def pass_step(
        self, rec: RecoveryRow, cause: Envelope, policy: Policy, d: Pass, target: ResourceRef | None
    ) -> None:
        """The step does not apply: recorded (audit, a skipped attempt, the `pass` transition), and the ladder
        goes on; past the last step the incident escalates (nothing that applies is left to try)."""
        obj = target or object_of(cause)
        async with self.db.sessions.begin() as session:
            await self.rec.audit(
                session,
                cause,
                action="recovery.plan",
                target=obj,
                outcome=AuditOutcome.SKIPPED,
                reason=f"step {d.step} passed: {d.reason}",
                key=f"{rec.id}:{d.step}:passed",
                details={
                    "recovery_id": rec.id,
                    "step": d.step,
                    "guards": [{"name": g.name, "passed": g.passed, "detail": g.detail} for g in d.guards],
                },
            )
            action = policy.ladder[d.step - 1].action
            session.add(self.rec.skipped(rec, d.step, action, obj, why="passed", reason=d.reason))
            nxt = next_step(policy, d.step)
            if nxt is not None:
                await self.rec.transition(session, rec.id, Transition.PASS, f"step {d.step}: {d.reason}", step=nxt)
            elif await self.rec.state(session, rec.id) is State.ACTING:
                reason = f"ladder exhausted: its last step does not apply ({d.reason})"
                await self.rec.escalate_in(session, rec, cause, policy, reason, by=Transition.EXHAUST)
        self.rec.wake_relay()
