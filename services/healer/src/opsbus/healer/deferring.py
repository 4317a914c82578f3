"""The scheduler of deferred recoveries: the one loop that wakes what a guard put off.

A guard that says "not now" (cooldown, attempt budget, rate limit, blast-radius cap, freeze window) parks the
recovery in `deferred` with a due time, in PostgreSQL: nothing lives in an `asyncio.sleep` that a restart
would forget. Every replica runs this loop; each round claims the rows whose time has come with
`FOR UPDATE SKIP LOCKED`, so one replica only moves each of them, and decides with the pure
`lifecycle.on_wake`: the alert resolved -> closed with the reason and no action; still deferred past the
policy's bound -> escalated once, with the whole history; due -> planned again (the ladder claims the
recovery's lease and walks it). Most severe first, so a storm held back by the rate limit is worked through
in order of severity, and nothing is dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from opsbus.common.events import Envelope
from opsbus.common.events.payloads import AuditOutcome
from opsbus.common.store import Database
from opsbus.healer.domain.lifecycle import Deferred, State, Transition, on_wake
from opsbus.healer.policies import PolicyStore
from opsbus.healer.recording import INCIDENT, Recorder, object_of
from opsbus.healer.store import AlertRow, RecoveryRow

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Queue:
    """What waits: deferred recoveries and how long the oldest has waited (0 when none)."""

    depth: int
    oldest_seconds: float


class Scheduler:
    def __init__(
        self,
        *,
        db: Database,
        rec: Recorder,
        policies: PolicyStore,
        clock: Callable[[], datetime],
        launch: Callable[[str, asyncio.Event], Awaitable[None]],
        batch: int = 100,
        plan_wait: float = 30.0,
    ) -> None:
        self.db = db
        self.rec = rec
        self.policies = policies
        self.clock = clock
        self.launch = launch
        self.batch = batch
        self.plan_wait = plan_wait

    async def wake(self) -> list[str]:
        """One round: close, escalate or re-plan the deferred recoveries whose time has come. Returns the ids
        planned again (walking in the background by now)."""
        now = self.clock()
        due: list[str] = []
        moved = 0
        async with self.db.sessions.begin() as session:
            q = (
                select(RecoveryRow, AlertRow.firing)
                .outerjoin(AlertRow, AlertRow.fingerprint == RecoveryRow.fingerprint)
                .where(
                    RecoveryRow.status == State.DEFERRED.value,
                    or_(RecoveryRow.due_at <= now, RecoveryRow.act_by <= now, AlertRow.firing.is_(False)),
                )
                # event ids are UUIDv7: the alert published first breaks a tie (one due time for a whole storm)
                .order_by(
                    RecoveryRow.severity_rank, RecoveryRow.due_at, RecoveryRow.created_at, RecoveryRow.alert_event_id
                )
                .limit(self.batch)
                .with_for_update(of=RecoveryRow, skip_locked=True)
            )
            for rec, firing in (await session.execute(q)).all():
                deferred = Deferred(due_at=rec.due_at or now, act_by=rec.act_by, firing=firing is not False)
                match on_wake(deferred, now):
                    case Transition.CLEAR:
                        await self._clear(session, rec)
                    case Transition.OVERDUE:
                        await self._overdue(session, rec, now)
                    case Transition.DUE:
                        reason = f"due: the {rec.deferred_by or 'guard'} deferral is over and the alert still fires"
                        await self.rec.transition(
                            session, rec.id, Transition.DUE, reason, due_at=None, deferred_by=None
                        )
                        due.append(rec.id)
                    case None:
                        continue
                moved += 1
        if moved:
            self.rec.wake_relay()
        for rid in due:
            # In severity order, one plan after the other: a rate limit lets the most severe through first, and
            # the rest defer again. The walks then verify in the background.
            planned = asyncio.Event()
            try:
                await self.launch(rid, planned)
                await asyncio.wait_for(planned.wait(), self.plan_wait)
            except Exception:  # another replica holds it, or the database blinked: the orphan sweep resumes it
                log.warning("deferred recovery %s: not planned now; the orphan sweep resumes it", rid, exc_info=True)
        return due

    async def _clear(self, session: AsyncSession, rec: RecoveryRow) -> None:
        cause = Envelope.model_validate(rec.alert_event)
        reason = f"the alert resolved while deferred by {rec.deferred_by or 'a guard'}: closed, nothing done"
        await self.rec.transition(session, rec.id, Transition.CLEAR, reason, due_at=None)
        await self.rec.audit(
            session,
            cause,
            action="recovery.defer",
            target=object_of(cause),
            outcome=AuditOutcome.SKIPPED,
            reason=reason,
            key=f"{rec.id}:cleared",
            details={"recovery_id": rec.id, "step": rec.step, "guard": rec.deferred_by or ""},
        )

    async def _overdue(self, session: AsyncSession, rec: RecoveryRow, now: datetime) -> None:
        cause = Envelope.model_validate(rec.alert_event)
        policy = (await self.policies.current()).get(rec.policy)
        waited = (now - rec.created_at).total_seconds()
        reason = (
            f"not acted on within {policy.escalate_after if policy else waited:.0f}s: still firing, deferred by "
            f"{rec.deferred_by or 'a guard'} until {rec.due_at.isoformat() if rec.due_at else 'later'}"
        )
        await self.rec.escalate_in(session, rec, cause, policy, reason, by=Transition.OVERDUE)

    async def queue(self) -> Queue:
        """Queue depth and the age of the oldest deferral, for the metrics (a stuck queue pages)."""
        async with self.db.sessions() as session:
            # Members of an incident wait for its lead, not for a due time: they are not the queue.
            q = select(func.count(), func.min(RecoveryRow.updated_at)).where(
                RecoveryRow.status == State.DEFERRED.value, RecoveryRow.deferred_by.is_distinct_from(INCIDENT)
            )
            depth, oldest = (await session.execute(q)).one()
        age = (self.clock() - oldest).total_seconds() if oldest is not None else 0.0
        return Queue(depth=int(depth), oldest_seconds=max(age, 0.0))
