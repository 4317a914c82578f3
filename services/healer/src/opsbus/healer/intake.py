"""The healer's intake: fired and resolved alerts, and the deploy outcomes its rollbacks wait for.

A fired alert is recorded (the latest state per fingerprint, so "still firing" is known at execution time),
matched against the policies, and becomes a recovery row whose id is derived from the alert event and the
policy: a redelivered alert finds the same recovery instead of starting another. The ladder is then walked
in the background (`recovering`); the intake never waits for a verification.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy.dialects.postgresql import insert

from opsbus.common.events import Envelope
from opsbus.common.events.payloads import AlertFired, AlertResolved, AuditOutcome, Severity
from opsbus.common.store import Database
from opsbus.healer.domain.lifecycle import State
from opsbus.healer.domain.policy import AlertFacts
from opsbus.healer.policies import PolicyStore
from opsbus.healer.recording import Recorder, alert_state, object_of, recovery_id_for
from opsbus.healer.store import AlertRow, DeployOutcomeRow, RecoveryRow

# The order a storm is worked through when the rate limit defers most of it: critical first.
SEVERITY_RANK = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.INFO: 2}
DEPLOY_TERMINAL = {
    "io.opsbus.deploy.succeeded.v1": "succeeded",
    "io.opsbus.deploy.rolledback.v1": "rolledback",
    "io.opsbus.deploy.failed.v1": "failed",
    "io.opsbus.deploy.superseded.v1": "superseded",
    "io.opsbus.deploy.aborted.v1": "aborted",
    "io.opsbus.deploy.skipped.v1": "skipped",
    "io.opsbus.deploy.rollback_failed.v1": "rollback_failed",
}


class Intake:
    def __init__(
        self,
        *,
        db: Database,
        rec: Recorder,
        policies: PolicyStore,
        clock: Callable[[], datetime],
        launch: Callable[[str], Awaitable[None]],
    ) -> None:
        self.db = db
        self.rec = rec
        self.policies = policies
        self.clock = clock
        self.launch = launch

    async def _record_alert(self, event: Envelope, firing: bool, fingerprint: str, alertname: str) -> None:
        """Keep the latest state per fingerprint; an older event never overwrites a newer one."""
        now = self.clock()
        stmt = insert(AlertRow).values(
            fingerprint=fingerprint,
            alertname=alertname,
            firing=firing,
            event_id=event.id,
            event_time=event.time,
            updated_at=now,
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[AlertRow.fingerprint],
            set_={"firing": firing, "event_id": event.id, "event_time": event.time, "updated_at": now},
            where=AlertRow.event_time <= event.time,
        )
        async with self.db.sessions.begin() as session:
            await session.execute(stmt)

    async def on_alert_resolved(self, event: Envelope) -> None:
        alert = event.payload_as(AlertResolved)
        await self._record_alert(event, False, alert.fingerprint, alert.alertname)

    async def on_alert_fired(self, event: Envelope) -> None:
        alert = event.payload_as(AlertFired)
        await self._record_alert(event, True, alert.fingerprint, alert.alertname)
        state = alert_state(event, True)
        policies = await self.policies.current()
        policy = policies.match(AlertFacts(state.alertname, state.severity, state.labels, state.namespace))
        if policy is None:
            async with self.db.sessions.begin() as session:
                await self.rec.audit(
                    session,
                    event,
                    action="recovery.match",
                    target=object_of(event),
                    outcome=AuditOutcome.SKIPPED,
                    reason=f"no remediation policy matches {alert.alertname} (policies v{policies.version})",
                    key=f"{event.id}:nomatch",
                )
            self.rec.wake_relay()
            return
        rid = recovery_id_for(event.id, policy.name)
        now = self.clock()
        async with self.db.sessions.begin() as session:
            await session.execute(
                insert(RecoveryRow)
                .values(
                    id=rid,
                    fingerprint=alert.fingerprint,
                    alert_event_id=event.id,
                    alert_event=event.model_dump(mode="json", exclude_none=True),
                    policy=policy.name,
                    policy_version=policies.version,
                    target_key=state.target_key,
                    status=State.OPEN.value,
                    step=1,
                    act_by=now + timedelta(seconds=policy.escalate_after),
                    severity_rank=SEVERITY_RANK.get(alert.severity, len(SEVERITY_RANK)),
                    created_at=now,
                    updated_at=now,
                )
                .on_conflict_do_nothing(index_elements=[RecoveryRow.id])
            )
        await self.launch(rid)

    async def on_deploy_outcome(self, event: Envelope) -> None:
        outcome = DEPLOY_TERMINAL.get(event.type)
        request_id = event.data.get("request_id")
        if outcome is None or not isinstance(request_id, str):
            return
        if outcome == "failed" and event.data.get("rollback_pending"):
            return  # not the end: deploy.rolledback or deploy.rollback_failed follows
        message = event.data.get("message") or event.data.get("reason")
        async with self.db.sessions.begin() as session:
            await session.execute(
                insert(DeployOutcomeRow)
                .values(
                    request_id=request_id,
                    outcome=outcome,
                    message=str(message) if message else None,
                    event_id=event.id,
                    at=event.time,
                )
                .on_conflict_do_nothing(index_elements=[DeployOutcomeRow.request_id])
            )
