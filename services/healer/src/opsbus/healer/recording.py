"""What the healer says about its recoveries: events through the outbox, audit entries, status changes.

Every module that moves a recovery along (intake, the ladder, approvals, deferrals) records through one
`Recorder`, so the deterministic event ids (recovery id + step + what happened: a redelivery publishes the
same ids, deduplicated by JetStream) and the audit vocabulary are decided in one place. It also holds the
escalation, the one terminal announcement that carries a recovery's whole history. It writes inside the
caller's transaction where one is given and never touches the cluster.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from pydantic import JsonValue
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from opsbus.common.audit import Auditor
from opsbus.common.bus.publishing import prepare
from opsbus.common.errors import ConflictError
from opsbus.common.events import Envelope
from opsbus.common.events.payloads import (
    ActionKind,
    Actor,
    AlertFired,
    ApprovalRequest,
    AttemptOutcome,
    AttemptRecord,
    AuditOutcome,
    GuardCheck,
    PolicyRef,
    RecoveryAction,
    RecoveryEscalated,
    ResourceRef,
    VerificationSpec,
)
from opsbus.common.store import Database, Outbox
from opsbus.common.store.outbox import notify_channel
from opsbus.healer.domain import lifecycle
from opsbus.healer.domain.lifecycle import State, Transition
from opsbus.healer.domain.planning import AlertState, NoOp, PastAttempt, Plan
from opsbus.healer.domain.policy import Policy
from opsbus.healer.store import TABLES, AttemptRow, RecoveryRow, TransitionRow

SERVICE = "healer"
INCIDENT = "incident"  # `deferred_by` of a recovery waiting as a member of another's incident
_IDS = uuid.UUID("1d4f5c1e-8a0b-4b61-9a8e-3c2f7d6e5b40")


def recovery_id_for(alert_event_id: str, policy: str) -> str:
    return str(uuid.uuid5(_IDS, f"{alert_event_id}:{policy}"))


def alert_state(event: Envelope, firing: bool) -> AlertState:
    a = event.payload_as(AlertFired)
    return AlertState(
        fingerprint=a.fingerprint,
        alertname=a.alertname,
        severity=a.severity,
        labels=dict(a.labels),
        namespace=a.labels.get("namespace") or (a.workload.namespace if a.workload else None),
        event_time=event.time,
        firing=firing,
        workload=a.workload,
    )


def object_of(cause: Envelope) -> ResourceRef:
    """The object the alert is about, as the target of records that have no action target."""
    return ResourceRef(kind=cause.object.kind, name=cause.object.name, namespace=cause.object.namespace)


class Recorder:
    def __init__(
        self, *, db: Database, cluster_name: str, clock: Callable[[], datetime], wake_relay: Callable[[], None]
    ) -> None:
        self.db = db
        self.cluster_name = cluster_name
        self.clock = clock
        self.wake_relay = wake_relay
        self.outbox = Outbox.for_tables(TABLES)
        self.auditor = Auditor(service=SERVICE, cluster=cluster_name)

    def event(self, payload: Any, target: ResourceRef, cause: Envelope, key: str | None = None) -> Envelope:
        eid = str(uuid.uuid5(_IDS, key)) if key else None
        return Envelope.build(
            payload, service=SERVICE, cluster=self.cluster_name, obj=target.as_object_ref(), cause=cause, event_id=eid
        )

    async def emit(self, session: AsyncSession, *events: Envelope) -> None:
        for e in events:
            await self.outbox.add(session, e)

    async def audit(
        self,
        session: AsyncSession,
        cause: Envelope,
        *,
        action: str,
        target: ResourceRef,
        outcome: AuditOutcome,
        reason: str,
        key: str,
        details: dict[str, JsonValue] | None = None,
        actor: Actor | None = None,
        request_id: str | None = None,
    ) -> None:
        entry = self.audit_entry(
            cause,
            action=action,
            target=target,
            outcome=outcome,
            reason=reason,
            key=key,
            details=details,
            actor=actor,
            request_id=request_id,
        )
        await self.outbox.add(session, entry)

    def audit_entry(
        self,
        cause: Envelope,
        *,
        action: str,
        target: ResourceRef,
        outcome: AuditOutcome,
        reason: str,
        key: str,
        details: dict[str, JsonValue] | None = None,
        actor: Actor | None = None,
        request_id: str | None = None,
    ) -> Envelope:
        """The audit entry `audit` queues, built without writing (a batch queues many with `emit_many`)."""
        return self.auditor.entry(
            action=action,
            target=target,
            outcome=outcome,
            reason=reason[:2048],
            details=details,
            cause=cause,
            dry_run=outcome is AuditOutcome.DRY_RUN,
            idempotency_key=key,
            actor=actor,
            request_id=request_id,
        )

    async def emit_many(self, session: AsyncSession, events: Sequence[Envelope]) -> None:
        """Queue many events in one statement (and one notification to the relay), in the caller's transaction.
        An event already queued or published (same id) is skipped, as `emit` skips it."""
        if not events:
            return
        table = self.outbox.table
        rows = []
        for e in events:
            subject, body, headers = prepare(e)
            rows.append({"event_id": e.id, "event_type": e.type, "subject": subject, "body": body, "headers": headers})
        await session.execute(insert(table).on_conflict_do_nothing(index_elements=[table.c.event_id]), rows)
        await session.execute(select(func.pg_notify(notify_channel(table), "")))

    def noop_entry(
        self, rid: str, cause: Envelope, d: NoOp, obj: ResourceRef, *, due: datetime | None, n: int = 1
    ) -> Envelope:
        """The audit entry of a step that did nothing (`recovery.plan`), or of a deferral (`recovery.defer`,
        the `n`-th of the recovery) when `due` is set."""
        details: dict[str, JsonValue] = {
            "recovery_id": rid,
            "step": d.step,
            "guard": d.guard,
            "guards": [{"name": g.name, "passed": g.passed, "detail": g.detail} for g in d.guards],
        }
        if due is not None:
            wait = f"{d.retry_after:.0f}s" if d.retry_after is not None else "later"
            return self.audit_entry(
                cause,
                action="recovery.defer",
                target=obj,
                outcome=AuditOutcome.SKIPPED,
                reason=f"deferred until {due.isoformat()} ({wait}): {d.reason}",
                key=f"{rid}:{d.step}:deferred:{n}",
                details={**details, "due_at": due.isoformat()},
            )
        return self.audit_entry(
            cause,
            action="recovery.plan",
            target=obj,
            outcome=AuditOutcome.DENIED if d.escalate else AuditOutcome.SKIPPED,
            reason=f"did nothing because {d.reason}",
            key=f"{rid}:{d.step}:noop",
            details=details,
        )

    def step_fields(self, rec: RecoveryRow, cause: Envelope, p: Plan) -> dict[str, Any]:
        alert = cause.payload_as(AlertFired)
        return {
            "recovery_id": rec.id,
            "alert_fingerprint": alert.fingerprint,
            "alertname": alert.alertname,
            "policy": p.policy,
            "step": p.step,
            "steps_total": p.steps_total,
            "action": p.action,
            "dry_run": p.dry_run,
        }

    async def state(self, session: AsyncSession, rid: str) -> State:
        """The recovery's state, its row locked until the caller's transaction ends (transitions serialize)."""
        q = select(RecoveryRow.status).where(RecoveryRow.id == rid).with_for_update()
        return State((await session.execute(q)).scalar_one())

    async def transition(
        self, session: AsyncSession, rid: str, transition: Transition, reason: str, **values: Any
    ) -> State:
        """Move the recovery by `transition` (checked against the lifecycle table: `IllegalTransition` leaves
        the transaction to roll back), store the state with `values` and record the transition's reason."""
        now = self.clock()
        try:
            record = lifecycle.apply(rid, await self.state(session, rid), transition, reason, now)
        except lifecycle.IllegalTransition as exc:
            raise ConflictError(f"recovery {rid}: {exc}") from exc
        values = {"status": record.to_state.value, "updated_at": now, **values}
        await session.execute(update(RecoveryRow).where(RecoveryRow.id == rid).values(**values))
        session.add(
            TransitionRow(
                recovery_id=rid,
                from_state=record.from_state.value,
                transition=record.transition.value,
                to_state=record.to_state.value,
                reason=record.reason,
                at=now,
            )
        )
        if record.to_state in lifecycle.TERMINAL:
            await self.settle_members(session, rid, record.to_state)
        return record.to_state

    async def update(self, session: AsyncSession, rid: str, **values: Any) -> None:
        """Store values of a recovery that are not a lifecycle move (e.g. the incident it leads)."""
        await session.execute(update(RecoveryRow).where(RecoveryRow.id == rid).values(**values))

    async def members(self, session: AsyncSession, lead: str) -> list[RecoveryRow]:
        """The recoveries waiting as members of the incident `lead` leads, oldest first (the alert published
        first breaks a tie: event ids are UUIDv7), so the escalation names them in a stable order."""
        q = (
            select(RecoveryRow)
            .where(
                RecoveryRow.incident_id == lead,
                RecoveryRow.id != lead,
                RecoveryRow.status == State.DEFERRED.value,
                RecoveryRow.deferred_by == INCIDENT,
            )
            .order_by(RecoveryRow.created_at, RecoveryRow.alert_event_id)
        )
        return list((await session.execute(q)).scalars())

    async def settle_members(self, session: AsyncSession, lead: str, ended: State) -> None:
        """The lead ended: its members end with it when it escalated (its one announcement names them), else
        they are due now (the scheduler closes those whose alert resolved and plans the others again)."""
        for m in await self.members(session, lead):
            if ended is State.ESCALATED:
                await self.transition(session, m.id, Transition.GIVE_UP, f"escalated with its incident {lead}")
            else:
                await self.update(session, m.id, due_at=self.clock())

    def attempt(self, rec: RecoveryRow, p: Plan, status: str, **extra: Any) -> AttemptRow:
        return AttemptRow(
            recovery_id=rec.id,
            step=p.step,
            action=p.action.kind.value,
            target_key=rec.target_key,
            target=p.action.target.model_dump(mode="json"),
            plan=plan_to_json(p),
            status=status,
            dry_run=status == "dry_run",
            started_at=self.clock(),
            **extra,
        )

    def skipped(
        self, rec: RecoveryRow, step: int, action: ActionKind, target: ResourceRef, *, why: str, reason: str
    ) -> AttemptRow:
        """A step that did nothing (a guard's no-op, a step that does not apply), kept in the history."""
        return self.skipped_of(rec.id, rec.target_key, step, action, target, why=why, reason=reason)

    def skipped_of(
        self, rid: str, target_key: str, step: int, action: ActionKind, target: ResourceRef, *, why: str, reason: str
    ) -> AttemptRow:
        return AttemptRow(**self.skipped_values(rid, target_key, step, action, target, why=why, reason=reason))

    def skipped_values(
        self, rid: str, target_key: str, step: int, action: ActionKind, target: ResourceRef, *, why: str, reason: str
    ) -> dict[str, Any]:
        """The columns of a skipped attempt, for a Core insert of many (no ORM instance per row: issue 18)."""
        now = self.clock()
        return {
            "recovery_id": rid,
            "step": step,
            "action": action.value,
            "target_key": target_key,
            "target": target.model_dump(mode="json"),
            "plan": {why: reason},
            "status": "skipped",
            "dry_run": False,
            "started_at": now,
            "finished_at": now,
            "message": reason,
        }

    async def count_transitions(self, session: AsyncSession, rid: str, transition: Transition) -> int:
        q = select(func.count()).where(TransitionRow.recovery_id == rid, TransitionRow.transition == transition.value)
        return int((await session.execute(q)).scalar_one())

    async def escalate(self, rec: RecoveryRow, cause: Envelope, policy: Policy | None, reason: str) -> None:
        """Give up on a live recovery (a permanent error, a policy gone): escalate it unless it already ended."""
        async with self.db.sessions.begin() as session:
            if await self.state(session, rec.id) in lifecycle.TERMINAL:
                return
            await self.escalate_in(session, rec, cause, policy, reason, by=Transition.GIVE_UP)
        self.wake_relay()

    async def escalate_in(
        self,
        session: AsyncSession,
        rec: RecoveryRow,
        cause: Envelope,
        policy: Policy | None,
        reason: str,
        *,
        by: Transition,
    ) -> None:
        """`recovery.escalated` with the recovery's whole history (its steps, then its lifecycle), in the
        caller's transaction. The transition to the terminal `escalated` state makes it happen once: a second
        one is an illegal transition, and the event id is derived from the recovery."""
        members = [object_of(Envelope.model_validate(m.alert_event)).name for m in await self.members(session, rec.id)]
        await self.transition(session, rec.id, by, reason)
        if members:
            names = ", ".join(members[:20])
            reason = f"{reason}; the incident's {len(members)} other alerts escalate with it ({names})"
        alert = cause.payload_as(AlertFired)
        rows = (
            await session.execute(select(AttemptRow).where(AttemptRow.recovery_id == rec.id).order_by(AttemptRow.step))
        ).scalars()
        history = tuple(
            AttemptRecord(
                step=r.step,
                action=ActionKind(r.action),
                target=ResourceRef.model_validate(r.target),
                outcome=_outcome(r.status),
                started_at=r.started_at,
                finished_at=r.finished_at,
                message=(r.message or "")[:1024] or None,
            )
            for r in rows
        )
        moves = await session.execute(
            select(TransitionRow).where(TransitionRow.recovery_id == rec.id).order_by(TransitionRow.id)
        )
        lifeline: list[JsonValue] = [
            f"{t.at.isoformat()} {t.from_state} -{t.transition}-> {t.to_state}: {t.reason[:200]}"
            for t in moves.scalars()
        ]
        if lifeline:
            reason = f"{reason} (history: {len(lifeline)} transitions, last: {lifeline[-1]})"
        payload = RecoveryEscalated(
            recovery_id=rec.id,
            alert_fingerprint=alert.fingerprint,
            alertname=alert.alertname,
            policy=PolicyRef(name=policy.name, version=rec.policy_version) if policy else None,
            reason=reason[:1024],
            history=history,
        )
        obj = object_of(cause)
        await self.emit(session, self.event(payload, obj, cause, f"{rec.id}:escalated"))
        await self.audit(
            session,
            cause,
            action="recovery.escalate",
            target=obj,
            outcome=AuditOutcome.EXECUTED,
            reason=reason,
            key=f"{rec.id}:escalated",
            details={
                "recovery_id": rec.id,
                "steps": len(history),
                "lifecycle": lifeline,
                "members": list[JsonValue](members),
            },
        )


async def recent_attempts(session: AsyncSession, since: datetime) -> list[PastAttempt]:
    """The attempts that count for cooldown, budget and rate limit since `since`: only the columns planning
    reads (not whole rows with their plans), as this runs under the planning lock."""
    rows = await session.execute(
        select(
            AttemptRow.recovery_id, AttemptRow.target_key, AttemptRow.action, AttemptRow.started_at, AttemptRow.dry_run
        ).where(AttemptRow.started_at >= since, AttemptRow.status.not_in(["dry_run", "skipped"]))
    )
    return [PastAttempt(r.recovery_id, r.target_key, ActionKind(r.action), r.started_at, r.dry_run) for r in rows]


def int_or_none(value: object) -> int | None:
    return int(value) if isinstance(value, int | str) and str(value).isdigit() else None


def namespace_of(t: ResourceRef) -> str:
    """The namespace an action works in: the target's own, or the target itself when it is a Namespace."""
    return t.namespace or (t.name if t.kind == "Namespace" else "")


def _outcome(status: str) -> AttemptOutcome:
    try:
        return AttemptOutcome(status)
    except ValueError:
        return AttemptOutcome.FAILED  # started but never finished: it did not succeed


def plan_to_json(p: Plan) -> dict[str, Any]:
    data = asdict(p)
    data["policy"] = p.policy.model_dump(mode="json")
    data["action"] = p.action.model_dump(mode="json")
    data["verification"] = p.verification.model_dump(mode="json")
    data["guards"] = [g.model_dump(mode="json") for g in p.guards]
    data["approval"] = p.approval.model_dump(mode="json") if p.approval else None
    return data


def plan_from_json(data: dict[str, Any]) -> Plan:
    return Plan(
        **{
            **data,
            "policy": PolicyRef.model_validate(data["policy"]),
            "action": RecoveryAction.model_validate(data["action"]),
            "verification": VerificationSpec.model_validate(data["verification"]),
            "guards": tuple(GuardCheck.model_validate(g) for g in data["guards"]),
            "approval": ApprovalRequest.model_validate(data["approval"]) if data.get("approval") else None,
        }
    )
