"""The executor: gathers the planner's inputs, applies its decisions to the cluster and records everything.

For each recovery (one per alert event and policy, id derived from both so a redelivered alert resumes
the same recovery rather than starting another), it walks the policy's ladder: read the alert state and
the cluster snapshot *now*, plan, and then either record a reasoned no-op, ask for approval, record a dry
run, or apply the action with preconditions and verify it within the step's timeout. Each transition and
the events announcing it (recovery.*, audit.recorded, deploy.requested) commit together through the
outbox. An attempt is committed as `started` before the cluster write, so a healer killed in between
resumes it on redelivery with the same preconditions instead of planning a second action.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import JsonValue
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from opsbus.common.audit import Auditor
from opsbus.common.errors import ConflictError, NotFoundError, PermanentError, TransientError
from opsbus.common.events import Envelope
from opsbus.common.events.payloads import (
    ActionKind,
    Actor,
    ActorKind,
    AlertFired,
    AlertResolved,
    ApprovalRequest,
    AttemptOutcome,
    AttemptRecord,
    AuditOutcome,
    DeployRequested,
    PolicyRef,
    RecoveryAction,
    RecoveryApproved,
    RecoveryEscalated,
    RecoveryFailed,
    RecoveryPlanned,
    RecoveryRejected,
    RecoveryStarted,
    RecoverySucceeded,
    ResourceRef,
    Strategy,
    VerificationResult,
)
from opsbus.common.store import Database, Outbox
from opsbus.healer.cluster import KubeCluster
from opsbus.healer.domain.planning import (
    AlertState,
    Grant,
    Guards,
    NoOp,
    PastAttempt,
    Plan,
    PlanningInput,
    next_step,
    plan,
    target_for,
)
from opsbus.healer.domain.policy import AlertFacts, Policy, PolicyError, PolicySet, VerifyCheck, parse_policies
from opsbus.healer.leasing import LeaseLost, Leases
from opsbus.healer.store import (
    TABLES,
    AlertRow,
    ApprovalRow,
    AttemptRow,
    DeployOutcomeRow,
    PolicyVersionRow,
    RecoveryRow,
)

log = logging.getLogger(__name__)
SERVICE = "healer"
_IDS = uuid.UUID("1d4f5c1e-8a0b-4b61-9a8e-3c2f7d6e5b40")
TERMINAL = frozenset({"succeeded", "escalated", "skipped", "dry_run", "rejected"})
DEPLOY_TERMINAL = {
    "io.opsbus.deploy.succeeded.v1": "succeeded",
    "io.opsbus.deploy.rolledback.v1": "rolledback",
    "io.opsbus.deploy.failed.v1": "failed",
    "io.opsbus.deploy.superseded.v1": "superseded",
    "io.opsbus.deploy.aborted.v1": "aborted",
    "io.opsbus.deploy.skipped.v1": "skipped",
    "io.opsbus.deploy.rollback_failed.v1": "rollback_failed",
}


def recovery_id_for(alert_event_id: str, policy: str) -> str:
    return str(uuid.uuid5(_IDS, f"{alert_event_id}:{policy}"))


def _alert_state(event: Envelope, firing: bool) -> AlertState:
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


class Executor:
    def __init__(
        self,
        *,
        db: Database,
        cluster: KubeCluster,
        guards: Guards,
        cluster_name: str,
        wake_relay: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        verify_poll: float = 0.5,
        owner: str | None = None,
        lease_seconds: float = 15.0,
        max_recoveries: int = 256,
    ) -> None:
        self.db = db
        self.cluster = cluster
        self.guards = guards
        self.cluster_name = cluster_name
        self.wake_relay = wake_relay
        self.clock = clock
        self.verify_poll = verify_poll
        self.leases = Leases(db, owner or f"healer-{uuid.uuid4().hex[:12]}", lease_seconds, clock)
        self.plan_lock = f"opsbus.healer:{cluster_name}"
        self.outbox = Outbox.for_tables(TABLES)
        self.auditor = Auditor(service=SERVICE, cluster=cluster_name)
        self._policies: PolicySet | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._running: set[str] = set()
        self._walks = asyncio.Semaphore(max_recoveries)  # recoveries walked at once in the background

    # --- policies -----------------------------------------------------------------------------------
    async def load_policies(self, document: str, author: str) -> PolicySet:
        """Make `document` the current version unless it already is (config as code at startup)."""
        async with self.db.sessions.begin() as session:
            latest = await self._latest_policy_row(session)
            if latest is not None and latest.document == document:
                self._policies = parse_policies(latest.document, version=latest.version)
                return self._policies
            version = (latest.version if latest else 0) + 1
            parsed = parse_policies(document, version=version)
            session.add(
                PolicyVersionRow(
                    version=version, document=document, author=author, comment="loaded", created_at=self.clock()
                )
            )
        self._policies = parsed
        return parsed

    async def _latest_policy_row(self, session: AsyncSession) -> PolicyVersionRow | None:
        q = select(PolicyVersionRow).order_by(PolicyVersionRow.version.desc()).limit(1)
        return (await session.execute(q)).scalar_one_or_none()

    async def policies(self) -> PolicySet:
        """The latest version (another replica may have put a newer one)."""
        async with self.db.sessions() as session:
            latest_version = (await session.execute(select(func.max(PolicyVersionRow.version)))).scalar_one_or_none()
            if self._policies is None or latest_version != self._policies.version:
                row = await self._latest_policy_row(session)
                if row is None:
                    raise PermanentError("no remediation policies are loaded")
                self._policies = parse_policies(row.document, version=row.version)
        return self._policies

    async def put_policies(self, document: str, expected_version: int, author: str, comment: str | None) -> PolicySet:
        parsed = parse_policies(document)  # PolicyError -> 422 at the endpoint
        async with self.db.sessions.begin() as session:
            latest = await self._latest_policy_row(session)
            current = latest.version if latest else 0
            if current != expected_version:
                raise ConflictError(f"policies are at version {current}, not {expected_version}: reload and retry")
            session.add(
                PolicyVersionRow(
                    version=current + 1, document=document, author=author, comment=comment, created_at=self.clock()
                )
            )
        self._policies = PolicySet(parsed.policies, current + 1, document)
        return self._policies

    # --- event handlers -----------------------------------------------------------------------------
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
        state = _alert_state(event, True)
        policies = await self.policies()
        policy = policies.match(AlertFacts(state.alertname, state.severity, state.labels, state.namespace))
        if policy is None:
            async with self.db.sessions.begin() as session:
                await self._audit(
                    session,
                    event,
                    action="recovery.match",
                    target=ResourceRef(
                        kind=event.object.kind, name=event.object.name, namespace=event.object.namespace
                    ),
                    outcome=AuditOutcome.SKIPPED,
                    reason=f"no remediation policy matches {alert.alertname} (policies v{policies.version})",
                    key=f"{event.id}:nomatch",
                )
            self.wake_relay()
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
                    status="running",
                    step=1,
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

    # --- the ladder ---------------------------------------------------------------------------------
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

    async def launch(self, rid: str) -> None:
        """Claim the recovery and walk its ladder in the background. An alert's intake (and its consumer slot)
        does not wait for the ladder's verifications, which take seconds to minutes: under a wave of faults the
        next alert's action is not queued behind the last one's verification. At most `max_recoveries` walk at
        once; beyond that the intake waits for one to end. A walk that fails transiently releases its lease and
        the orphan sweep resumes it (as after a crash); one that fails permanently is escalated."""
        if rid in self._running:
            log.info("recovery %s is already running in this replica", rid)
            return
        await self._walks.acquire()
        try:
            claimed = await self._claim(rid)
        except BaseException:
            self._walks.release()
            raise
        if not claimed:
            self._walks.release()
            return
        self._running.add(rid)
        self.spawn(self._walk_in_background(rid))

    async def _walk_in_background(self, rid: str) -> None:
        try:
            await self._run_claimed(rid, None)
        except TransientError as exc:
            log.warning("recovery %s: deferred to the orphan sweep: %s", rid, exc)
        except PermanentError as exc:
            log.warning("recovery %s: cannot go on: %s", rid, exc)
            await self._give_up(rid, str(exc))
        except Exception:
            log.exception("recovery %s failed; the orphan sweep resumes it", rid)
        finally:
            self._walks.release()

    async def _give_up(self, rid: str, reason: str) -> None:
        async with self.db.sessions() as session:
            rec = await session.get(RecoveryRow, rid)
        if rec is not None and rec.status not in TERMINAL:
            await self._escalate(rec, Envelope.model_validate(rec.alert_event), None, reason)

    async def _claim(self, rid: str) -> bool:
        """True: this replica now holds the lease. False: nothing to do (ended, or waiting for a human).
        TransientError: another replica holds it (retried after its lease would have lapsed)."""
        if await self.leases.claim(rid):
            return True
        async with self.db.sessions() as session:
            rec = await session.get(RecoveryRow, rid)
        if rec is None:
            raise NotFoundError(f"recovery {rid} not found")
        if rec.status in TERMINAL or rec.status in ("awaiting_approval", "exhausted"):
            return False
        until = rec.lease_until or self.clock()
        delay = max(1.0, (until - self.clock()).total_seconds() + 1.0)
        raise TransientError(f"recovery {rid} is being run by replica {rec.lease_owner}; retry later", delay=delay)

    async def _run_claimed(self, rid: str, grant: Grant | None) -> None:
        """Walk a recovery this replica holds the lease of (and has marked running); release it at the end."""
        try:
            async with self.leases.kept(rid):
                await self._walk(rid, grant)
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
                self.spawn(self._resume(rid))
                resumed += 1
        return resumed

    async def _resume(self, rid: str, grant: Grant | None = None) -> None:
        try:
            await self.run(rid, grant)
        except (TransientError, PermanentError) as exc:
            log.warning("recovery %s: resume deferred: %s", rid, exc)

    async def _walk(self, rid: str, grant: Grant | None) -> None:
        """Walk the recovery's ladder from its current step until it ends, waits for a human, or defers."""
        while True:
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
            if rec.status in TERMINAL:
                return
            if grant is None and approval is not None and approval.status == "approved":
                # Approved while no replica was running it (or the approving replica died): carry on.
                grant = Grant(approval.decided_by or "unknown", approval.expires_at)
            if rec.status == "awaiting_approval" and grant is None:
                return
            cause = Envelope.model_validate(rec.alert_event)
            firing = alert_row.firing if alert_row is not None else True
            alert = _alert_state(cause, firing)
            policies = await self.policies()
            policy = policies.get(rec.policy)
            if policy is None or rec.step > len(policy.ladder):
                await self._escalate(rec, cause, None, f"policy {rec.policy} no longer exists or changed its ladder")
                return
            step = policy.ladder[rec.step - 1]
            if attempt is not None and attempt.status == "started":
                # Killed between the write and its verification: resume with the stored plan (same preconditions).
                stored = Plan(**_plan_from_json(attempt.plan))
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
                        continuing=rec.step > 1 or grant is not None,
                    )
                )
                starting = isinstance(decision, Plan) and decision.approval is None and not decision.dry_run
                request_id = None
                if isinstance(decision, Plan) and starting:
                    request_id = await self._start(session, rec, cause, decision, grant)
            if isinstance(decision, NoOp):
                await self._no_op(rec, cause, policy, decision, target)
                return
            if decision.approval is not None:
                await self._ask_approval(rec, cause, decision)
                return
            if decision.dry_run:
                await self._dry_run(rec, cause, decision)
                return
            self.wake_relay()
            grant = None
            await self._apply_and_verify(rec, cause, policy, decision, request_id, resumed=False)

    async def _history(self, session: AsyncSession, policy: Policy) -> list[PastAttempt]:
        horizon = max(policy.attempt_window, policy.cooldown, self.guards.rate_limit_window)
        since = self.clock() - timedelta(seconds=horizon)
        # only the columns planning reads (not whole rows with their plans): this runs under the planning lock
        rows = await session.execute(
            select(
                AttemptRow.recovery_id,
                AttemptRow.target_key,
                AttemptRow.action,
                AttemptRow.started_at,
                AttemptRow.dry_run,
            ).where(AttemptRow.started_at >= since, AttemptRow.status.not_in(["dry_run", "skipped"]))
        )
        return [PastAttempt(r.recovery_id, r.target_key, ActionKind(r.action), r.started_at, r.dry_run) for r in rows]

    # --- outcomes -----------------------------------------------------------------------------------
    def _event(self, payload: Any, target: ResourceRef, cause: Envelope, key: str | None = None) -> Envelope:
        eid = str(uuid.uuid5(_IDS, key)) if key else None
        return Envelope.build(
            payload, service=SERVICE, cluster=self.cluster_name, obj=target.as_object_ref(), cause=cause, event_id=eid
        )

    async def _emit(self, session: AsyncSession, *events: Envelope) -> None:
        for e in events:
            await self.outbox.add(session, e)

    async def _audit(
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
    ) -> None:
        entry = self.auditor.entry(
            action=action,
            target=target,
            outcome=outcome,
            reason=reason[:2048],
            details=details,
            cause=cause,
            dry_run=outcome is AuditOutcome.DRY_RUN,
            idempotency_key=key,
            actor=actor,
        )
        await self.outbox.add(session, entry)

    def _step_fields(self, rec: RecoveryRow, cause: Envelope, p: Plan) -> dict[str, Any]:
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

    async def _set_status(self, session: AsyncSession, rid: str, status: str, step: int | None = None) -> None:
        values: dict[str, Any] = {"status": status, "updated_at": self.clock()}
        if step is not None:
            values["step"] = step
        await session.execute(update(RecoveryRow).where(RecoveryRow.id == rid).values(**values))

    async def _no_op(
        self, rec: RecoveryRow, cause: Envelope, policy: Policy, d: NoOp, target: ResourceRef | None
    ) -> None:
        obj = target or ResourceRef(kind=cause.object.kind, name=cause.object.name, namespace=cause.object.namespace)
        details: dict[str, JsonValue] = {
            "recovery_id": rec.id,
            "step": d.step,
            "guard": d.guard,
            "guards": [{"name": g.name, "passed": g.passed, "detail": g.detail} for g in d.guards],
        }
        if d.retry_after is not None:
            # Deferred (rate limit): record once per step, then let the bus redeliver after the delay.
            async with self.db.sessions.begin() as session:
                await self._audit(
                    session,
                    cause,
                    action="recovery.plan",
                    target=obj,
                    outcome=AuditOutcome.SKIPPED,
                    reason=f"deferred {d.retry_after:.0f}s: {d.reason}",
                    key=f"{rec.id}:{d.step}:deferred",
                    details=details,
                )
            self.wake_relay()
            raise TransientError(d.reason, delay=d.retry_after)
        async with self.db.sessions.begin() as session:
            outcome = AuditOutcome.DENIED if d.escalate else AuditOutcome.SKIPPED
            await self._audit(
                session,
                cause,
                action="recovery.plan",
                target=obj,
                outcome=outcome,
                reason=f"did nothing because {d.reason}",
                key=f"{rec.id}:{d.step}:noop",
                details=details,
            )
            session.add(
                AttemptRow(
                    recovery_id=rec.id,
                    step=d.step,
                    action=policy.ladder[d.step - 1].action.value,
                    target_key=rec.target_key,
                    target=obj.model_dump(mode="json"),
                    plan={"noop": d.reason},
                    status="skipped",
                    dry_run=False,
                    started_at=self.clock(),
                    finished_at=self.clock(),
                    message=d.reason,
                )
            )
            await self._set_status(session, rec.id, "skipped")
        if d.escalate:
            await self._escalate(rec, cause, policy, f"{d.guard}: {d.reason}")
        self.wake_relay()

    async def _ask_approval(self, rec: RecoveryRow, cause: Envelope, p: Plan) -> None:
        assert p.approval is not None
        planned = RecoveryPlanned(
            **self._step_fields(rec, cause, p),
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
                await self._emit(session, self._event(planned, p.action.target, cause, f"{rec.id}:{p.step}:planned"))
                await self._audit(
                    session,
                    cause,
                    action=f"recovery.{p.action.kind.value}",
                    target=p.action.target,
                    outcome=AuditOutcome.SKIPPED,
                    reason=f"waiting for approval until {p.approval.expires_at.isoformat()}: {p.approval.reason}",
                    key=f"{rec.id}:{p.step}:approval",
                    details={"recovery_id": rec.id, "step": p.step},
                )
            await self._set_status(session, rec.id, "awaiting_approval")
        self.wake_relay()

    async def _dry_run(self, rec: RecoveryRow, cause: Envelope, p: Plan) -> None:
        planned = RecoveryPlanned(
            **self._step_fields(rec, cause, p), reason=p.reason, guards=p.guards, verification=p.verification
        )
        async with self.db.sessions.begin() as session:
            await self._emit(session, self._event(planned, p.action.target, cause, f"{rec.id}:{p.step}:planned"))
            await self._audit(
                session,
                cause,
                action=f"recovery.{p.action.kind.value}",
                target=p.action.target,
                outcome=AuditOutcome.DRY_RUN,
                reason=p.reason,
                key=f"{rec.id}:{p.step}:dry_run",
                details={"recovery_id": rec.id, "step": p.step, "parameters": dict(p.action.parameters)},
            )
            session.add(self._attempt(rec, p, "dry_run", finished_at=self.clock(), message=p.reason))
            await self._set_status(session, rec.id, "dry_run")
        self.wake_relay()

    async def _start(
        self, session: AsyncSession, rec: RecoveryRow, cause: Envelope, p: Plan, grant: Grant | None
    ) -> str | None:
        """Record the attempt as started (with its events) in the planning transaction, before touching the
        cluster; fenced by the lease, so a replica that lost it never starts an action."""
        await self.leases.fence(session, rec.id)
        fields = self._step_fields(rec, cause, p)
        planned = RecoveryPlanned(**fields, reason=p.reason, guards=p.guards, verification=p.verification)
        approved_by = Actor(kind=ActorKind.USER, id=grant.approver) if grant else None
        count = sum(1 for a in await self._history_for(session, rec.target_key)) + 1
        started = RecoveryStarted(**fields, attempt=count, approved_by=approved_by)
        request_id = None
        events = [
            self._event(planned, p.action.target, cause, f"{rec.id}:{p.step}:planned"),
            self._event(started, p.action.target, cause, f"{rec.id}:{p.step}:started"),
        ]
        if p.action.kind is ActionKind.ROLLBACK:
            alert = cause.payload_as(AlertFired)
            if alert.workload is None:
                raise PermanentError("rollback needs the alert's workload")
            request = DeployRequested(
                cluster=self.cluster_name,
                workload=alert.workload,
                strategy=Strategy.ROLLBACK,
                to_revision=_int_or_none(p.action.parameters.get("to_revision")),
                requester=Actor(kind=ActorKind.SERVICE, id=SERVICE),
                reason=f"recovery {rec.id} step {p.step}: {alert.alertname}",
            )
            deploy = self._event(request, alert.workload.as_resource_ref(), events[-1], f"{rec.id}:{p.step}:deploy")
            request_id = deploy.id
            events.append(deploy)
        session.add(self._attempt(rec, p, "started", deploy_request_id=request_id))
        await self._emit(session, *events)
        await self._set_status(session, rec.id, "running")
        return request_id

    def _attempt(self, rec: RecoveryRow, p: Plan, status: str, **extra: Any) -> AttemptRow:
        return AttemptRow(
            recovery_id=rec.id,
            step=p.step,
            action=p.action.kind.value,
            target_key=rec.target_key,
            target=p.action.target.model_dump(mode="json"),
            plan=_plan_to_json(p),
            status=status,
            dry_run=status == "dry_run",
            started_at=self.clock(),
            **extra,
        )

    async def _history_for(self, session: AsyncSession, key: str) -> list[str]:
        q = select(AttemptRow.id).where(AttemptRow.target_key == key, AttemptRow.status.not_in(["dry_run", "skipped"]))
        return [str(i) for i in (await session.execute(q)).scalars()]

    async def _apply_and_verify(
        self, rec: RecoveryRow, cause: Envelope, policy: Policy, p: Plan, request_id: str | None, *, resumed: bool
    ) -> None:
        started = time.monotonic()
        error: str | None = None
        try:
            await self._apply(p, cause, resumed=resumed)
        except (PermanentError, TransientError) as exc:
            error = str(exc)
            log.warning("recovery %s step %d: %s failed: %s", rec.id, p.step, p.action.kind.value, exc)
        result = None
        if error is None:
            result = await self._verify(rec, p, request_id)
        fields = self._step_fields(rec, cause, p)
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
                await self._emit(session, self._event(done, target, cause, f"{rec.id}:{p.step}:succeeded"))
                await self._audit(
                    session,
                    cause,
                    action=f"recovery.{p.action.kind.value}",
                    target=target,
                    outcome=AuditOutcome.EXECUTED,
                    reason=f"{p.reason}; verified: {result.observed if result else 'nothing to verify'}",
                    key=f"{rec.id}:{p.step}:executed",
                    details={"recovery_id": rec.id, "step": p.step, "parameters": dict(p.action.parameters)},
                )
                await self._set_status(session, rec.id, "succeeded")
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
                await self._emit(session, self._event(failed, target, cause, f"{rec.id}:{p.step}:failed"))
                await self._audit(
                    session,
                    cause,
                    action=f"recovery.{p.action.kind.value}",
                    target=target,
                    outcome=AuditOutcome.FAILED,
                    reason=reason,
                    key=f"{rec.id}:{p.step}:failed",
                    details={"recovery_id": rec.id, "step": p.step},
                )
                await self._set_status(session, rec.id, "running" if nxt else "exhausted", step=nxt)
        self.wake_relay()
        if not ok and next_step(policy, p.step) is None:
            rec.step = p.step
            await self._escalate(rec, cause, policy, f"ladder exhausted after {p.step} steps")

    async def _apply(self, p: Plan, cause: Envelope, *, resumed: bool) -> None:  # noqa: PLR0912
        a, t, pre = p.action, p.action.target, p.preconditions
        ns, name = _namespace_of(t), t.name
        params = a.parameters
        grace = int(params["grace_period_seconds"]) if "grace_period_seconds" in params else None
        try:
            match a.kind:
                case ActionKind.DELETE_POD:
                    await self.cluster.delete_pod(ns, name, pre.get("uid"), None, grace)
                case ActionKind.ROLLOUT_RESTART:
                    await self.cluster.rollout_restart(ns, name, pre.get("resource_version"), self.clock())
                case ActionKind.SCALE:
                    await self.cluster.scale(ns, name, pre.get("resource_version"), int(params["replicas"]))
                case ActionKind.RAISE_MEMORY_LIMIT:
                    await self.cluster.set_memory_limit(
                        ns, name, pre.get("resource_version"), str(params["container"]), int(params["to_bytes"])
                    )
                case ActionKind.CORDON_NODE:
                    await self.cluster.cordon(name, pre.get("resource_version"))
                case ActionKind.DRAIN_NODE:
                    await self.cluster.cordon(name, None)
                    await self._drain(name, grace, p.verification.timeout_seconds)
                case ActionKind.DELETE_FAILED_PODS:
                    selector = f"job-name={name}" if t.kind == "Job" else None
                    for pod in await self.cluster.failed_pods(ns, selector):
                        await self.cluster.delete_pod(ns, pod.metadata.name, pod.metadata.uid, None, 0)
                case ActionKind.ROLLBACK | ActionKind.NOTIFY_ONLY:
                    pass  # rollback: deploy.requested went out with the start; notify_only: the events are the action
        except NotFoundError:
            if not (resumed or a.kind is ActionKind.DELETE_POD):
                raise
            # A pod deleted already (by this attempt before a restart, or by its controller): nothing to do.
        except ConflictError:
            if resumed:
                return  # the object changed after our write: the write happened; verification decides
            raise

    async def _drain(self, node: str, grace: int | None, timeout: int) -> None:
        deadline = time.monotonic() + timeout
        while True:
            pods = await self.cluster.evictable_pods(node)
            if not pods:
                return
            blocked = [p.metadata.name for p in pods if not await self.cluster.evict(p, grace)]
            if not blocked:
                return
            if time.monotonic() >= deadline:
                raise TransientError(f"PodDisruptionBudget still blocks evicting {', '.join(blocked)}")
            await asyncio.sleep(max(self.verify_poll, 1.0))

    async def _verify(self, rec: RecoveryRow, p: Plan, request_id: str | None) -> VerificationResult | None:
        check = VerifyCheck(p.verification.check)
        if check is VerifyCheck.NONE:
            return None
        t = p.action.target
        ns = _namespace_of(t)
        alert = Envelope.model_validate(rec.alert_event).payload_as(AlertFired)  # once, not on every poll
        started = time.monotonic()
        deadline = started + p.verification.timeout_seconds
        observed = "not checked yet"
        while True:
            try:
                passed, observed = await self._probe(check, rec, alert, t, ns, p=p, request_id=request_id)
            except (TransientError, PermanentError) as exc:
                passed, observed = False, f"probe failed: {exc}"
            if passed or time.monotonic() >= deadline:
                return VerificationResult(
                    passed=passed,
                    check=check.value,
                    observed=observed[:1024],
                    waited_seconds=time.monotonic() - started,
                )
            await asyncio.sleep(self.verify_poll)

    async def _probe(  # noqa: PLR0911
        self,
        check: VerifyCheck,
        rec: RecoveryRow,
        alert: AlertFired,
        t: ResourceRef,
        ns: str,
        *,
        p: Plan,
        request_id: str | None,
    ) -> tuple[bool, str]:
        match check:
            case VerifyCheck.ALERT_RESOLVED:
                async with self.db.sessions() as session:
                    row = await session.get(AlertRow, rec.fingerprint)
                firing = row is None or row.firing
                return (not firing), ("alert still firing" if firing else "alert resolved")
            case VerifyCheck.POD_REPLACED:
                gone, seen = await self.cluster.pod_replaced(ns, t.name, p.preconditions.get("uid"))
                if gone and alert.workload is not None and alert.workload.kind == "Deployment":
                    ready, status = await self.cluster.workload_available(ns, alert.workload.name)
                    return ready, f"{seen}; {status}"
                return gone, seen
            case VerifyCheck.WORKLOAD_AVAILABLE:
                name = alert.workload.name if alert.workload else t.name
                return await self.cluster.workload_available(
                    ns or (alert.workload.namespace if alert.workload else ""), name
                )
            case VerifyCheck.NODE_CORDONED:
                return await self.cluster.node_cordoned(t.name)
            case VerifyCheck.NODE_DRAINED:
                return await self.cluster.node_drained(t.name)
            case VerifyCheck.NO_FAILED_PODS:
                return await self.cluster.no_failed_pods(ns, f"job-name={t.name}" if t.kind == "Job" else None)
            case VerifyCheck.DEPLOY_SUCCEEDED:
                async with self.db.sessions() as session:
                    out = await session.get(DeployOutcomeRow, request_id) if request_id else None
                if out is None:
                    return False, "waiting for the deployer's outcome"
                return out.outcome in ("succeeded", "rolledback"), f"deploy {out.outcome}: {out.message or ''}"
            case VerifyCheck.NONE:
                return True, "nothing to verify"

    async def _escalate(self, rec: RecoveryRow, cause: Envelope, policy: Policy | None, reason: str) -> None:
        alert = cause.payload_as(AlertFired)
        async with self.db.sessions.begin() as session:
            rows = (
                await session.execute(
                    select(AttemptRow).where(AttemptRow.recovery_id == rec.id).order_by(AttemptRow.step)
                )
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
            payload = RecoveryEscalated(
                recovery_id=rec.id,
                alert_fingerprint=alert.fingerprint,
                alertname=alert.alertname,
                policy=PolicyRef(name=policy.name, version=rec.policy_version) if policy else None,
                reason=reason[:1024],
                history=history,
            )
            obj = ResourceRef(kind=cause.object.kind, name=cause.object.name, namespace=cause.object.namespace)
            await self._emit(session, self._event(payload, obj, cause, f"{rec.id}:escalated"))
            await self._audit(
                session,
                cause,
                action="recovery.escalate",
                target=obj,
                outcome=AuditOutcome.EXECUTED,
                reason=reason,
                key=f"{rec.id}:escalated",
                details={"recovery_id": rec.id, "steps": len(history)},
            )
            await self._set_status(session, rec.id, "escalated")
        self.wake_relay()

    # --- approvals ----------------------------------------------------------------------------------
    async def pending(self) -> list[ApprovalRow]:
        async with self.db.sessions() as session:
            q = select(ApprovalRow).where(ApprovalRow.status == "pending", ApprovalRow.expires_at > self.clock())
            return list((await session.execute(q.order_by(ApprovalRow.requested_at))).scalars())

    async def decide(self, rid: str, step: int, approver: str, *, approve: bool, comment: str | None) -> str:
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
                # `running` again: if this replica dies before the step starts, the orphan sweep resumes it.
                await self._set_status(session, rid, "running")
            else:
                event = RecoveryRejected(recovery_id=rid, step=step, approver=user, reason=comment or "rejected")
                await self._set_status(session, rid, "rejected")
            await self._emit(session, self._event(event, target, cause, f"{rid}:{step}:{row.status}"))
            await self._audit(
                session,
                cause,
                action=f"recovery.{row.status[:-1] if approve else 'reject'}",
                target=target,
                outcome=AuditOutcome.EXECUTED,
                reason=comment or row.status,
                key=f"{rid}:{step}:{row.status}",
                actor=user,
                details={"recovery_id": rid, "step": step},
            )
            expires = row.expires_at
        self.wake_relay()
        if approve:
            self.spawn(self._resume(rid, Grant(approver, expires)))
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
                await self._audit(
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
            self.wake_relay()

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
                await self._emit(session, self._event(event, target, cause, f"{row.recovery_id}:{row.step}:expired"))
                await self._audit(
                    session,
                    cause,
                    action="recovery.reject",
                    target=target,
                    outcome=AuditOutcome.SKIPPED,
                    reason="approval expired: not executed",
                    key=f"{row.recovery_id}:{row.step}:expired",
                )
                await self._set_status(session, row.recovery_id, "rejected")
        if rows:
            self.wake_relay()
        return len(rows)

    def spawn(self, work: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(work, name="healer:recovery")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _int_or_none(value: object) -> int | None:
    return int(value) if isinstance(value, int | str) and str(value).isdigit() else None


def _namespace_of(t: ResourceRef) -> str:
    """The namespace an action works in: the target's own, or the target itself when it is a Namespace."""
    return t.namespace or (t.name if t.kind == "Namespace" else "")


def _outcome(status: str) -> AttemptOutcome:
    try:
        return AttemptOutcome(status)
    except ValueError:
        return AttemptOutcome.FAILED  # started but never finished: it did not succeed


def _plan_to_json(p: Plan) -> dict[str, Any]:
    data = asdict(p)
    data["policy"] = p.policy.model_dump(mode="json")
    data["action"] = p.action.model_dump(mode="json")
    data["verification"] = p.verification.model_dump(mode="json")
    data["guards"] = [g.model_dump(mode="json") for g in p.guards]
    data["approval"] = p.approval.model_dump(mode="json") if p.approval else None
    return data


def _plan_from_json(data: dict[str, Any]) -> dict[str, Any]:
    from opsbus.common.events.payloads import GuardCheck, VerificationSpec  # noqa: PLC0415

    return {
        **data,
        "policy": PolicyRef.model_validate(data["policy"]),
        "action": RecoveryAction.model_validate(data["action"]),
        "verification": VerificationSpec.model_validate(data["verification"]),
        "guards": tuple(GuardCheck.model_validate(g) for g in data["guards"]),
        "approval": ApprovalRequest.model_validate(data["approval"]) if data.get("approval") else None,
    }


__all__ = ["Executor", "PolicyError", "recovery_id_for"]
