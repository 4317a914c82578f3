"""The request-reply side: look a rollout up, list a workload's history or the latest rollouts, record an abort or a
promote.

Why this module exists: the gateway's commands must reach a rollout whichever replica drives it, so a command
is only written to the rollout's row (a queued rollout is aborted at once); the driving replica acts on it at
its next tick. It must never touch the cluster.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import false, or_, select

from opsbus.common.api.calling import Caller
from opsbus.common.errors import ConflictError, NotFoundError
from opsbus.common.events.payloads.audit import AuditOutcome
from opsbus.common.events.payloads.common import Actor, WorkloadRef
from opsbus.common.events.payloads.deploy import DeployAborted, DeployPhase
from opsbus.deployer.api import RolloutSelector
from opsbus.deployer.executing.recording import Recorder
from opsbus.deployer.executing.serializing import request_of, workload_key
from opsbus.deployer.store import Revision, Rollout


class Commands:
    def __init__(self, recorder: Recorder, clock: Callable[[], datetime]) -> None:
        self._recorder = recorder
        self._sessions = recorder.sessions
        self._clock = clock

    async def find(self, selector: RolloutSelector) -> Rollout:
        async with self._sessions() as s:
            query = select(Rollout)
            if selector.deployment_id is not None:
                query = query.where(Rollout.id == selector.deployment_id)
            elif selector.request_id is not None:
                query = query.where(Rollout.request_id == selector.request_id)
            else:
                assert selector.workload is not None
                query = (
                    query.where(Rollout.workload == workload_key(selector.workload))
                    .order_by(Rollout.requested_at.desc())
                    .limit(1)
                )
            row = (await s.execute(query)).scalars().first()
            if row is None:
                raise NotFoundError("no such rollout")
            s.expunge(row)
            return row

    async def history(
        self, workload: WorkloadRef, limit: int
    ) -> tuple[list[Rollout], list[tuple[Revision, str | None]]]:
        """The workload's rollouts and revisions, newest first; each revision with its rollout's strategy."""
        key = workload_key(workload)
        async with self._sessions() as s:
            rollouts = (
                (
                    await s.execute(
                        select(Rollout)
                        .where(Rollout.workload == key)
                        .order_by(Rollout.requested_at.desc())
                        .limit(limit)
                    )
                )
                .scalars()
                .all()
            )
            revisions = (
                await s.execute(
                    select(Revision, Rollout.strategy)
                    .outerjoin(Rollout, Rollout.id == Revision.rollout_id)
                    .where(Revision.workload == key)
                    .order_by(Revision.recorded_at.desc())
                    .limit(limit)
                )
            ).all()
            return list(rollouts), [(r, strategy) for r, strategy in revisions]

    async def recent(self, namespaces: tuple[str, ...] | None, state: str | None, limit: int) -> list[Rollout]:
        """The latest rollouts, newest first, in `namespaces` (None: all); the workload key is Kind/ns/name."""
        query = select(Rollout)
        if namespaces is not None:
            query = query.where(or_(false(), *(Rollout.workload.like(f"%/{ns}/%") for ns in namespaces)))
        if state is not None:
            query = query.where(Rollout.state == state)
        async with self._sessions() as s:
            rows = (await s.execute(query.order_by(Rollout.requested_at.desc()).limit(limit))).scalars().all()
            return list(rows)

    async def command(
        self, selector: RolloutSelector, action: str, actor: Actor, reason: str, caller: Caller | None = None
    ) -> Rollout:
        """Record an abort or promote. A queued rollout is aborted at once; a running one at its next tick.
        The caller the gateway names is audited in the same transaction: a command whose entry cannot be
        written is not recorded."""
        target = await self.find(selector)
        recorder = self._recorder
        async with self._sessions.begin() as s:
            row = await s.get(Rollout, target.id, with_for_update=True)
            assert row is not None
            if row.state == "queued" and action == "abort":
                event, request = request_of(row)
                row.state = "aborted"
                row.phase = None
                row.finished_at = self._clock()
                row.outcome_reason = "aborted"
                row.message = reason or "aborted while queued"
                aborted = DeployAborted(
                    **recorder.base(row, request),
                    aborted_by=actor,
                    reason=row.message[:1024],
                    reverted_to_revision=None,
                )
                await recorder.emit(s, event, request, aborted)
                await recorder.audit(
                    s,
                    cause=event,
                    request=request,
                    action="deploy.abort",
                    outcome=AuditOutcome.EXECUTED,
                    reason=row.message,
                    rollout_id=row.id,
                )
            elif row.state != "running":
                raise ConflictError(f"rollout {row.id} is {row.state}: nothing to {action}")
            elif action == "promote" and row.phase != DeployPhase.PAUSED.value:
                raise ConflictError(f"rollout {row.id} is {row.phase}, not paused: nothing to promote")
            else:
                row.command = {"action": action, "actor": actor.model_dump(mode="json"), "reason": reason or action}
            if caller is not None:
                await recorder.audit_call(s, row, caller=caller, action=action, reason=reason)
        recorder.on_commit()
        return await self.find(RolloutSelector(deployment_id=target.id))
