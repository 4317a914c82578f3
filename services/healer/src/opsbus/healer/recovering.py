"""The ladder: walks one recovery's steps under its lease, from plan to action to verification.

For each step it reads the alert state and the cluster snapshot *now*, plans (under one advisory lock per
cluster, so replicas see each other's attempts), and then records a reasoned no-op, asks for approval,
records a dry run, or starts the action, applies it and verifies it within the step's timeout. An attempt is
committed as `started` before the cluster write, so a healer killed in between resumes it with the same
preconditions instead of planning a second action. Recoveries whose replica died are resumed by the orphan
sweep once their lease runs out (`leasing`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from opsbus.common.errors import NotFoundError, PermanentError, TransientError
from opsbus.common.events import Envelope
from opsbus.common.events.payloads import (
    ActionKind,
    Actor,
    ActorKind,
    AlertFired,
    AuditOutcome,
    DeployRequested,
    RecoveryFailed,
    RecoveryPlanned,
    RecoveryStarted,
    RecoverySucceeded,
    ResourceRef,
    Strategy,
)
from opsbus.common.store import Database
from opsbus.healer.applying import Applier
from opsbus.healer.cluster import KubeCluster
from opsbus.healer.domain import lifecycle
from opsbus.healer.domain.lifecycle import State, Transition
from opsbus.healer.domain.planning import (
    Grant,
    Guards,
    NoOp,
    Pass,
    PastAttempt,
    Plan,
    PlanningInput,
    next_step,
    plan,
    target_for,
)
from opsbus.healer.domain.policy import Policy
from opsbus.healer.grouping import Incidents
from opsbus.healer.leasing import LeaseLost, Leases
from opsbus.healer.policies import PolicyStore
from opsbus.healer.recording import (
    SERVICE,
    Recorder,
    alert_state,
    int_or_none,
    plan_from_json,
    recent_attempts,
)
from opsbus.healer.store import AlertRow, ApprovalRow, AttemptRow, RecoveryRow
from opsbus.healer.verifying import Verifier

log = logging.getLogger(__name__)
# A recovery in these states needs no walk now: it ended, waits for a person, or waits for its due time.
WAITING = lifecycle.TERMINAL | {State.AWAITING_APPROVAL, State.DEFERRED}


class Ladder:
    def __init__(
        self,
        *,
        db: Database,
        cluster: KubeCluster,
        guards: Guards,
        rec: Recorder,
        policies: PolicyStore,
        leases: Leases,
        plan_lock: str,
        clock: Callable[[], datetime],
        verify_poll: float,
        max_recoveries: int,
    ) -> None:
        self.db = db
        self.cluster = cluster
        self.guards = guards
        self.rec = rec
        self.policies = policies
        self.leases = leases
        self.plan_lock = plan_lock
        self.clock = clock
        self.incidents = Incidents(db=db, rec=rec, plan_lock=plan_lock, clock=clock)
        self.applier = Applier(cluster, clock, verify_poll, rec)
        self.verifier = Verifier(db, cluster, verify_poll)
        self.cluster_name = rec.cluster_name
        self._tasks: set[asyncio.Task[None]] = set()
        self._running: set[str] = set()
        self._walks = asyncio.Semaphore(max_recoveries)  # recoveries walked at once in the background

    async def run(self, rid: str, grant: Grant | None = None) -> None:
        """Run the recovery under its lease: only one replica walks a recovery at a time (see `leasing`),
        and one task in this replica (a redelivered alert finds the sweep already resuming it)."""
        if rid in self._running:
            log.info("recovery %s is already running in this replica", rid)
            return
        if not await self._claim(rid):
            return
        self._running.add(rid)
        await self._run_claimed(rid, grant)

    async def launch(self, rid: str, planned: asyncio.Event | None = None) -> None:
        """Claim the recovery and walk its ladder in the background. An alert's intake (and its consumer slot)
        does not wait for the ladder's verifications, which take seconds to minutes: under a wave of faults the
        next alert's action is not queued behind the last one's verification. At most `max_recoveries` walk at
        once; beyond that the intake waits for one to end. A walk that fails transiently releases its lease and
        the orphan sweep resumes it (as after a crash); one that fails permanently is escalated. `planned` is
        set once the walk's first decision is committed (or the walk ends): the scheduler plans due deferrals
        one after the other, in their order of severity."""
        for _ in range(500):  # a walk that just deferred may still be closing (lease release): let it end
            if rid not in self._running:
                break
            await asyncio.sleep(0.01)
        else:
            log.info("recovery %s is already running in this replica", rid)
            if planned is not None:
                planned.set()
            return
        await self._walks.acquire()
        try:
            claimed = await self._claim(rid)
        except BaseException:
            self._walks.release()
            raise
        if not claimed:
            self._walks.release()
            if planned is not None:
                planned.set()
            return
        self._running.add(rid)
        self.spawn(self._walk_in_background(rid, planned))

    async def _walk_in_background(self, rid: str, planned: asyncio.Event | None = None) -> None:
        try:
            await self._run_claimed(rid, None, planned)
        except TransientError as exc:
            log.warning("recovery %s: deferred to the orphan sweep: %s", rid, exc)
        except PermanentError as exc:
            log.warning("recovery %s: cannot go on: %s", rid, exc)
            await self._give_up(rid, str(exc))
        except Exception:
            log.exception("recovery %s failed; the orphan sweep resumes it", rid)
        finally:
            self._walks.release()
            if planned is not None:
                planned.set()

    async def _give_up(self, rid: str, reason: str) -> None:
        async with self.db.sessions() as session:
            rec = await session.get(RecoveryRow, rid)
        if rec is not None and State(rec.status) not in lifecycle.TERMINAL:
            await self.rec.escalate(rec, Envelope.model_validate(rec.alert_event), None, reason)

    async def _claim(self, rid: str) -> bool:
        """True: this replica now holds the lease. False: nothing to do (ended, or waiting for a human).
        TransientError: another replica holds it (retried after its lease would have lapsed)."""
        if await self.leases.claim(rid):
            return True
        async with self.db.sessions() as session:
            rec = await session.get(RecoveryRow, rid)
        if rec is None:
            raise NotFoundError(f"recovery {rid} not found")
        if State(rec.status) in WAITING:
            return False
        until = rec.lease_until or self.clock()
        delay = max(1.0, (until - self.clock()).total_seconds() + 1.0)
        raise TransientError(f"recovery {rid} is being run by replica {rec.lease_owner}; retry later", delay=delay)

    async def _run_claimed(self, rid: str, grant: Grant | None, planned: asyncio.Event | None = None) -> None:
        """Walk a recovery this replica holds the lease of (and has marked running); release it at the end."""
        try:
            async with self.leases.kept(rid):
                await self._walk(rid, grant, planned)
        except LeaseLost as exc:
            log.warning("%s: another replica carries on", exc)
            return
        except Exception:
            await self.leases.release(rid)
            raise
        finally:
            self._running.discard(rid)
        await self.leases.release(rid)

    async def resume_orphans(self) -> int:
        """Claim and resume recoveries whose replica stopped renewing its lease (it died mid-step)."""
        resumed = 0
        for rid in await self.leases.orphans():
            if rid not in self._running and await self.leases.claim(rid):
                log.info("recovery %s: resuming an orphaned recovery as %s", rid, self.leases.owner)
                self.spawn(self.resume(rid))
                resumed += 1
        return resumed

    async def resume(self, rid: str, grant: Grant | None = None) -> None:
        try:
            await self.run(rid, grant)
        except (TransientError, PermanentError) as exc:
            log.warning("recovery %s: resume deferred: %s", rid, exc)

    async def _load(self, rid: str, grant: Grant | None) -> tuple[RecoveryRow, AttemptRow | None, bool, Grant | None]:
        """The recovery, its current step's attempt, whether its alert still fires, and the grant to act with."""
        async with self.db.sessions() as session:
            rec = await session.get(RecoveryRow, rid)
            if rec is None:
                raise NotFoundError(f"recovery {rid} not found")
            attempt = (
                await session.execute(
                    select(AttemptRow).where(AttemptRow.recovery_id == rid, AttemptRow.step == rec.step)
                )
            ).scalar_one_or_none()
            alert_row = await session.get(AlertRow, rec.fingerprint)
            approval = await session.get(ApprovalRow, (rid, rec.step))
        if grant is None and approval is not None and approval.status == "approved":
            # Approved while no replica was running it (or the approving replica died): carry on.
            grant = Grant(approval.decided_by or "unknown", approval.expires_at)
        return rec, attempt, (alert_row.firing if alert_row is not None else True), grant

    async def _walk(self, rid: str, grant: Grant | None, planned: asyncio.Event | None = None) -> None:  # noqa: PLR0912
        """Walk the recovery's ladder from its current step until it ends, waits for a human, or defers."""
        while True:
            rec, attempt, firing, grant = await self._load(rid, grant)
            state = State(rec.status)
            if state in WAITING and not (state is State.AWAITING_APPROVAL and grant is not None):
                return  # ended, waits for a person, or the scheduler wakes it at its due time
            cause = Envelope.model_validate(rec.alert_event)
            alert = alert_state(cause, firing)
            policy = (await self.policies.current()).get(rec.policy)
            # A new alert, or a member woken after its incident ended: lead an incident, or join a live one.
            regroup = state is State.OPEN or rec.incident_id not in (None, rid)
            if regroup and policy is not None:
                if await self.incidents.gather(rec, cause, alert, policy):
                    return  # a member: its incident's lead acts for it
                rec.incident_id = rid
            # Freshness is judged once, on a new alert: a step that was deferred (and is due now, its alert still
            # firing) or resumed after a restart is not "stale" however long the deferral lasted.
            fresh_start = state is State.OPEN
            if state is State.OPEN:
                async with self.db.sessions.begin() as session:
                    await self.rec.transition(session, rid, Transition.PLAN, f"policy {rec.policy} matched")
            if policy is None or rec.step > len(policy.ladder):
                await self.rec.escalate(rec, cause, None, f"policy {rec.policy} no longer exists or changed its ladder")
                return
            step = policy.ladder[rec.step - 1]
            if attempt is not None and attempt.status == "started":
                # Killed between the write and its verification: resume with the stored plan (same preconditions).
                stored = plan_from_json(attempt.plan)
                log.info("recovery %s: resuming step %d after a restart", rid, rec.step)
                await self._apply_and_verify(rec, cause, policy, stored, attempt.deploy_request_id, resumed=True)
                continue
            target = target_for(step, alert)
            snapshot = await self.cluster.snapshot(target, alert) if target is not None else None
            # History, plan and the start of the action in one transaction under one lock per cluster: two
            # replicas planning at once see each other's attempts (cooldown, budget and rate limit hold).
            async with self.db.sessions.begin() as session:
                await session.execute(select(func.pg_advisory_xact_lock(func.hashtext(self.plan_lock))))
                history = await self._history(session, policy)
                incident = await self.incidents.facts(session, rec, cause)
                decision = plan(
                    PlanningInput(
                        recovery_id=rid,
                        alert=alert,
                        policy=policy,
                        policy_version=rec.policy_version,
                        step=rec.step,
                        snapshot=snapshot,
                        history=history,
                        guards=self.guards,
                        now=self.clock(),
                        grant=grant,
                        continuing=rec.step > 1 or grant is not None or not fresh_start,
                        incident=incident,
                    )
                )
                starting = isinstance(decision, Plan) and decision.approval is None and not decision.dry_run
                request_id = None
                if isinstance(decision, Plan) and starting:
                    request_id = await self._start(session, rec, cause, decision, grant)
            if planned is not None:
                planned.set()  # committed: the next due deferral may plan (and count this attempt)
            if isinstance(decision, Pass):
                await self.incidents.pass_step(rec, cause, policy, decision, target)
                continue
            if isinstance(decision, NoOp):
                await self._no_op(rec, cause, policy, decision, target)
                return
            if decision.approval is not None:
                await self._ask_approval(rec, cause, decision)
                return
            if decision.dry_run:
                await self._dry_run(rec, cause, decision)
                return
            self.rec.wake_relay()
            grant = None
            await self._apply_and_verify(rec, cause, policy, decision, request_id, resumed=False)

    async def _history(self, session: AsyncSession, policy: Policy) -> list[PastAttempt]:
        horizon = max(policy.attempt_window, policy.cooldown, self.guards.rate_limit_window)
        return await recent_attempts(session, self.clock() - timedelta(seconds=horizon))

    async def _no_op(
        self, rec: RecoveryRow, cause: Envelope, policy: Policy, d: NoOp, target: ResourceRef | None
    ) -> None:
        obj = target or ResourceRef(kind=cause.object.kind, name=cause.object.name, namespace=cause.object.namespace)
        if d.retry_after is not None:
            await self._defer(rec, cause, d, obj)
            return
        async with self.db.sessions.begin() as session:
            await self.rec.outbox.add(session, self.rec.noop_entry(rec.id, cause, d, obj, due=None))
            action = policy.ladder[d.step - 1].action
            session.add(self.rec.skipped(rec, d.step, action, obj, why="noop", reason=d.reason))
            if d.escalate:
                await self.rec.escalate_in(session, rec, cause, policy, f"{d.guard}: {d.reason}", by=Transition.REFUSE)
            else:
                await self.rec.transition(session, rec.id, Transition.SKIP, f"{d.guard}: {d.reason}")
        self.rec.wake_relay()

    async def _defer(self, rec: RecoveryRow, cause: Envelope, d: NoOp, obj: ResourceRef) -> None:
        """ "Not now" is a deferral, never a drop: the recovery waits in PostgreSQL with its due time, and the
        scheduler (`deferring`) plans it again then if the alert still fires, or escalates it past its bound."""
        assert d.retry_after is not None
        due = self.clock() + timedelta(seconds=d.retry_after)
        async with self.db.sessions.begin() as session:
            n = await self.rec.count_transitions(session, rec.id, Transition.DEFER)
            await self.rec.transition(
                session, rec.id, Transition.DEFER, f"{d.guard}: {d.reason}", due_at=due, deferred_by=d.guard
            )
            await self.rec.outbox.add(session, self.rec.noop_entry(rec.id, cause, d, obj, due=due, n=n + 1))
        self.rec.wake_relay()

    async def _ask_approval(self, rec: RecoveryRow, cause: Envelope, p: Plan) -> None:
        assert p.approval is not None
        planned = RecoveryPlanned(
            **self.rec.step_fields(rec, cause, p),
            reason=p.reason,
            guards=p.guards,
            approval=p.approval,
            verification=p.verification,
        )
        async with self.db.sessions.begin() as session:
            inserted = await session.execute(
                insert(ApprovalRow)
                .values(
                    recovery_id=rec.id,
                    step=p.step,
                    action=p.action.model_dump(mode="json"),
                    reason=p.approval.reason,
                    status="pending",
                    requested_at=self.clock(),
                    expires_at=p.approval.expires_at,
                )
                .on_conflict_do_nothing()
                .returning(ApprovalRow.step)
            )
            if inserted.first() is not None:
                await self.rec.emit(
                    session, self.rec.event(planned, p.action.target, cause, f"{rec.id}:{p.step}:planned")
                )
                await self.rec.audit(
                    session,
                    cause,
                    action=f"recovery.{p.action.kind.value}",
                    target=p.action.target,
                    outcome=AuditOutcome.SKIPPED,
                    reason=f"waiting for approval until {p.approval.expires_at.isoformat()}: {p.approval.reason}",
                    key=f"{rec.id}:{p.step}:approval",
                    details={"recovery_id": rec.id, "step": p.step},
                )
                await self.rec.transition(session, rec.id, Transition.ASK, p.approval.reason)
        self.rec.wake_relay()

    async def _dry_run(self, rec: RecoveryRow, cause: Envelope, p: Plan) -> None:
        planned = RecoveryPlanned(
            **self.rec.step_fields(rec, cause, p), reason=p.reason, guards=p.guards, verification=p.verification
        )
        async with self.db.sessions.begin() as session:
            await self.rec.emit(session, self.rec.event(planned, p.action.target, cause, f"{rec.id}:{p.step}:planned"))
            await self.rec.audit(
                session,
                cause,
                action=f"recovery.{p.action.kind.value}",
                target=p.action.target,
                outcome=AuditOutcome.DRY_RUN,
                reason=p.reason,
                key=f"{rec.id}:{p.step}:dry_run",
                details={"recovery_id": rec.id, "step": p.step, "parameters": dict(p.action.parameters)},
            )
            session.add(self.rec.attempt(rec, p, "dry_run", finished_at=self.clock(), message=p.reason))
            await self.rec.transition(session, rec.id, Transition.SKIP, f"dry run: {p.reason}")
        self.rec.wake_relay()

    async def _start(
        self, session: AsyncSession, rec: RecoveryRow, cause: Envelope, p: Plan, grant: Grant | None
    ) -> str | None:
        """Record the attempt as started (with its events) in the planning transaction, before touching the
        cluster; fenced by the lease, so a replica that lost it never starts an action."""
        await self.leases.fence(session, rec.id)
        fields = self.rec.step_fields(rec, cause, p)
        planned = RecoveryPlanned(**fields, reason=p.reason, guards=p.guards, verification=p.verification)
        approved_by = Actor(kind=ActorKind.USER, id=grant.approver) if grant else None
        count = sum(1 for a in await self._history_for(session, rec.target_key)) + 1
        started = RecoveryStarted(**fields, attempt=count, approved_by=approved_by)
        request_id = None
        events = [
            self.rec.event(planned, p.action.target, cause, f"{rec.id}:{p.step}:planned"),
            self.rec.event(started, p.action.target, cause, f"{rec.id}:{p.step}:started"),
        ]
        if p.action.kind is ActionKind.ROLLBACK:
            alert = cause.payload_as(AlertFired)
            if alert.workload is None:
                raise PermanentError("rollback needs the alert's workload")
            request = DeployRequested(
                cluster=self.cluster_name,
                workload=alert.workload,
                strategy=Strategy.ROLLBACK,
                to_revision=int_or_none(p.action.parameters.get("to_revision")),
                requester=Actor(kind=ActorKind.SERVICE, id=SERVICE),
                reason=f"recovery {rec.id} step {p.step}: {alert.alertname}",
            )
            deploy = self.rec.event(request, alert.workload.as_resource_ref(), events[-1], f"{rec.id}:{p.step}:deploy")
            request_id = deploy.id
            events.append(deploy)
        session.add(self.rec.attempt(rec, p, "started", deploy_request_id=request_id))
        await self.rec.emit(session, *events)
        return request_id

    async def _history_for(self, session: AsyncSession, key: str) -> list[str]:
        q = select(AttemptRow.id).where(AttemptRow.target_key == key, AttemptRow.status.not_in(["dry_run", "skipped"]))
        return [str(i) for i in (await session.execute(q)).scalars()]

    async def _apply_and_verify(
        self, rec: RecoveryRow, cause: Envelope, policy: Policy, p: Plan, request_id: str | None, *, resumed: bool
    ) -> None:
        started = time.monotonic()
        error: str | None = None
        try:
            await self.applier.apply(p, cause, resumed=resumed)
        except (PermanentError, TransientError) as exc:
            error = str(exc)
            log.warning("recovery %s step %d: %s failed: %s", rec.id, p.step, p.action.kind.value, exc)
        async with self.db.sessions.begin() as session:
            if await self.rec.state(session, rec.id) is State.ACTING:  # a resumed step may be verifying already
                what = f"failed: {error}" if error else "applied"
                await self.rec.transition(session, rec.id, Transition.APPLY, f"{p.action.kind.value} {what}")
        result = None
        if error is None:
            result = await self.verifier.verify(rec, p, request_id)
        fields = self.rec.step_fields(rec, cause, p)
        duration = time.monotonic() - started
        ok = error is None and (result is None or result.passed)
        async with self.db.sessions.begin() as session:
            status = "succeeded" if ok else "failed"
            await session.execute(
                update(AttemptRow)
                .where(AttemptRow.recovery_id == rec.id, AttemptRow.step == p.step)
                .values(status=status, finished_at=self.clock(), message=error or (result.observed if result else None))
            )
            target = p.action.target
            if ok:
                done = RecoverySucceeded(**fields, verification=result, duration_seconds=duration)
                await self.rec.emit(session, self.rec.event(done, target, cause, f"{rec.id}:{p.step}:succeeded"))
                await self.rec.audit(
                    session,
                    cause,
                    action=f"recovery.{p.action.kind.value}",
                    target=target,
                    outcome=AuditOutcome.EXECUTED,
                    reason=f"{p.reason}; verified: {result.observed if result else 'nothing to verify'}",
                    key=f"{rec.id}:{p.step}:executed",
                    details={"recovery_id": rec.id, "step": p.step, "parameters": dict(p.action.parameters)},
                )
                verified = (result.observed if result else None) or "nothing to verify"
                await self.rec.transition(session, rec.id, Transition.VERIFY, verified)
            else:
                nxt = next_step(policy, p.step)
                reason = (
                    error
                    or f"verification {p.verification.check} did not pass within {p.verification.timeout_seconds}s"
                )
                failed = RecoveryFailed(
                    **fields,
                    reason=reason[:1024],
                    error=error[:4096] if error else None,
                    verification=result,
                    next_step=nxt,
                )
                await self.rec.emit(session, self.rec.event(failed, target, cause, f"{rec.id}:{p.step}:failed"))
                await self.rec.audit(
                    session,
                    cause,
                    action=f"recovery.{p.action.kind.value}",
                    target=target,
                    outcome=AuditOutcome.FAILED,
                    reason=reason,
                    key=f"{rec.id}:{p.step}:failed",
                    details={"recovery_id": rec.id, "step": p.step},
                )
                if nxt is not None:
                    await self.rec.transition(session, rec.id, Transition.NEXT_STEP, reason, step=nxt)
                else:
                    exhausted = f"ladder exhausted after {p.step} steps"
                    await self.rec.escalate_in(session, rec, cause, policy, exhausted, by=Transition.EXHAUST)
        self.rec.wake_relay()

    def spawn(self, work: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(work, name="healer:recovery")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
