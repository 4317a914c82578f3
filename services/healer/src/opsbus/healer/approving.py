"""Approvals of disruptive steps: pending requests, decisions by people (request-reply or events), expiry.

A decision is recorded with its events and its one audit entry in one transaction: asked for through the
gateway, the request names the caller (`opsbus.common.api.calling.Caller`) and the entry carries that actor
and request id (and the chat it came from, for a chat button), so a decision whose entry cannot be written is
not recorded at all. An approved step is resumed by the ladder (`recovering`) with the grant; an expired request
is a rejection by the healer itself. Contradicting or late decisions are recorded and ignored, never applied.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select

from opsbus.common.api.calling import Caller
from opsbus.common.errors import ConflictError, NotFoundError, PermanentError
from opsbus.common.events import Envelope
from opsbus.common.events.payloads import (
    Actor,
    ActorKind,
    AuditOutcome,
    RecoveryAction,
    RecoveryApproved,
    RecoveryRejected,
)
from opsbus.common.store import Database
from opsbus.healer.domain.lifecycle import Transition
from opsbus.healer.domain.planning import Grant
from opsbus.healer.recording import SERVICE, Recorder
from opsbus.healer.store import ApprovalRow, RecoveryRow


def _channel_of(caller: Caller | None) -> dict[str, str]:
    """The chat a decision came from (e.g. a Slack button) and who clicked there, for the audit entry."""
    if caller is None or caller.channel is None:
        return {}
    return {"channel": caller.channel} | ({"channel_user": caller.channel_user} if caller.channel_user else {})


class Approvals:
    def __init__(
        self,
        *,
        db: Database,
        rec: Recorder,
        clock: Callable[[], datetime],
        resume: Callable[[str, Grant], None],
    ) -> None:
        self.db = db
        self.rec = rec
        self.clock = clock
        self.resume = resume

    async def pending(self) -> list[ApprovalRow]:
        async with self.db.sessions() as session:
            q = select(ApprovalRow).where(ApprovalRow.status == "pending", ApprovalRow.expires_at > self.clock())
            return list((await session.execute(q.order_by(ApprovalRow.requested_at))).scalars())

    async def decide(
        self, rid: str, step: int, approver: str, *, approve: bool, comment: str | None, caller: Caller | None = None
    ) -> str:
        """Record a person's decision on a pending step. `caller` (the gateway's authenticated caller) is the
        audited actor, with its request id; without one (a decision event from another tool) the approver is."""
        now = self.clock()
        async with self.db.sessions.begin() as session:
            row = await session.get(ApprovalRow, (rid, step), with_for_update=True)
            if row is None:
                raise NotFoundError(f"no approval request for recovery {rid} step {step}")
            if row.status != "pending":
                raise ConflictError(f"recovery {rid} step {step} is already {row.status}")
            if row.expires_at <= now:
                raise ConflictError(f"the approval request expired at {row.expires_at.isoformat()}")
            rec = await session.get(RecoveryRow, rid)
            assert rec is not None
            cause = Envelope.model_validate(rec.alert_event)
            user = Actor(kind=ActorKind.USER, id=approver)
            target = RecoveryAction.model_validate(row.action).target
            row.status, row.decided_by, row.decided_at, row.comment = (
                ("approved" if approve else "rejected"),
                approver,
                now,
                comment,
            )
            if approve:
                event: Any = RecoveryApproved(
                    recovery_id=rid, step=step, approver=user, reason=comment, expires_at=row.expires_at
                )
                # `acting` again: if this replica dies before the step starts, the orphan sweep resumes it.
                await self.rec.transition(session, rid, Transition.APPROVE, f"approved by {approver}: {comment or ''}")
            else:
                event = RecoveryRejected(recovery_id=rid, step=step, approver=user, reason=comment or "rejected")
                await self.rec.transition(session, rid, Transition.REJECT, f"rejected by {approver}: {comment or ''}")
            await self.rec.emit(session, self.rec.event(event, target, cause, f"{rid}:{step}:{row.status}"))
            await self.rec.audit(
                session,
                cause,
                action=f"recovery.{row.status[:-1] if approve else 'reject'}",
                target=target,
                outcome=AuditOutcome.EXECUTED,
                reason=comment or row.status,
                key=f"{rid}:{step}:{row.status}",
                actor=caller.actor if caller else user,
                request_id=caller.request_id if caller else None,
                details={
                    "recovery_id": rid,
                    "step": step,
                    "status": row.status,
                    "approver": approver,
                    **_channel_of(caller),
                },
            )
            expires = row.expires_at
        self.rec.wake_relay()
        if approve:
            self.resume(rid, Grant(approver, expires))
        return "approved" if approve else "rejected"

    async def on_decision_event(self, event: Envelope) -> None:
        """`recovery.approved`/`recovery.rejected` published by someone else (the gateway, a team's tool):
        the same decision as the request-reply endpoints, idempotent. The healer's own announcements of
        decisions it already recorded are skipped; a redelivery or a repeat of the recorded decision is a
        no-op; a decision contradicting an earlier one (or arriving after expiry) is recorded and ignored."""
        if event.service == SERVICE:
            return
        approve = event.type == RecoveryApproved.event_type
        d: RecoveryApproved | RecoveryRejected = (
            event.payload_as(RecoveryApproved) if approve else event.payload_as(RecoveryRejected)
        )
        comment = d.reason
        try:
            await self.decide(d.recovery_id, d.step, d.approver.id, approve=approve, comment=comment)
        except NotFoundError as exc:
            raise PermanentError(f"{event.type} {event.id}: {exc}") from exc
        except ConflictError as exc:
            wanted, verb = ("approved", "approve") if approve else ("rejected", "reject")
            async with self.db.sessions.begin() as session:
                row = await session.get(ApprovalRow, (d.recovery_id, d.step))
                rec = await session.get(RecoveryRow, d.recovery_id)
                if row is None or rec is None or row.status == wanted:
                    return  # redelivered, or the same decision already came through the endpoint
                await self.rec.audit(
                    session,
                    Envelope.model_validate(rec.alert_event),
                    action=f"recovery.{verb}",
                    target=RecoveryAction.model_validate(row.action).target,
                    outcome=AuditOutcome.SKIPPED,
                    reason=f"ignored {verb} by {d.approver.id} ({event.service}): {exc}",
                    key=f"{event.id}:ignored",
                    actor=d.approver,
                    details={"recovery_id": d.recovery_id, "step": d.step, "event_id": event.id},
                )
            self.rec.wake_relay()

    async def expire_approvals(self) -> int:
        now = self.clock()
        async with self.db.sessions.begin() as session:
            rows = list(
                (
                    await session.execute(
                        select(ApprovalRow)
                        .where(ApprovalRow.status == "pending", ApprovalRow.expires_at <= now)
                        .with_for_update(skip_locked=True)
                    )
                ).scalars()
            )
            for row in rows:
                rec = await session.get(RecoveryRow, row.recovery_id)
                if rec is None:
                    continue
                cause = Envelope.model_validate(rec.alert_event)
                target = RecoveryAction.model_validate(row.action).target
                row.status = "expired"
                healer = Actor(kind=ActorKind.SERVICE, id=SERVICE)
                event = RecoveryRejected(
                    recovery_id=row.recovery_id,
                    step=row.step,
                    approver=healer,
                    reason="expired without approval",
                    expired=True,
                )
                await self.rec.emit(
                    session, self.rec.event(event, target, cause, f"{row.recovery_id}:{row.step}:expired")
                )
                await self.rec.audit(
                    session,
                    cause,
                    action="recovery.reject",
                    target=target,
                    outcome=AuditOutcome.SKIPPED,
                    reason="approval expired: not executed",
                    key=f"{row.recovery_id}:{row.step}:expired",
                )
                await self.rec.transition(session, row.recovery_id, Transition.REJECT, "approval expired")
        if rows:
            self.rec.wake_relay()
        return len(rows)
