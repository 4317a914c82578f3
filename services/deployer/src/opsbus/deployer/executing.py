"""The rollout engine: applies the planners' decisions to the cluster, the store and the bus.

Why this module exists: it is the only place the deployer has effects. Every state change of a rollout and the
event announcing it commit in one transaction (the outbox), so a crash never leaves a rollout that changed
state silently or an event about a change that did not happen; every request gets exactly one terminal event.

Shape:
- `accept()` is the `deploy.requested` handler: inbox claim, per-workload lock, supersede queued requests
  (pure `queueing.admit`), insert the rollout as queued. It never waits for the cluster.
- `run()` is the scheduler: expires queued requests past their timeout, starts the newest queued rollout of
  each idle workload, and resumes running rollouts whose owner's lease lapsed (a restarted or dead replica).
- each active rollout is driven by one task, one tick at a time: read the Deployment, ask the progression and
  analysis planners, act (patch with a resourceVersion precondition), persist and announce.
It must never decide anything the planners can decide.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from opsbus.common.audit import Auditor
from opsbus.common.bus import Delivery
from opsbus.common.errors import ConflictError, NotFoundError, OpsbusError, PermanentError, TransientError
from opsbus.common.events.envelope import Envelope, EventPayload, new_event_id
from opsbus.common.events.payloads.audit import AuditOutcome
from opsbus.common.events.payloads.common import Actor, ActorKind, WorkloadRef
from opsbus.common.events.payloads.deploy import (
    AnalysisResult,
    DeployAborted,
    DeployFailed,
    DeployFailureReason,
    DeployPhase,
    DeployProgressed,
    DeployRequested,
    DeployRolledBack,
    DeployStarted,
    DeploySucceeded,
    DeploySuperseded,
    Measurement,
    Strategy,
)
from opsbus.common.store import StoreTables, add, claim
from opsbus.deployer.api import RolloutSelector, RolloutView
from opsbus.deployer.domain import analysis, bluegreen, canary, progression, queueing
from opsbus.deployer.domain.changes import (
    GREEN_SUFFIX,
    HASH_LABEL,
    ChangeRefused,
    canary_deployment,
    canary_name,
    current_hash,
    green_deployment,
    images_of,
    new_template,
    plan_change,
    plan_template,
    promoted_template,
    select_patch,
)
from opsbus.deployer.kube import KubePort
from opsbus.deployer.prometheus import MetricsPort
from opsbus.deployer.settings import DeployerOptions
from opsbus.deployer.store import ACTIVE_STATES, Revision, Rollout

log = logging.getLogger(__name__)

SERVICE = "deployer"
INBOX_CONSUMER = "deployer-requests"
MAX_APPLY_CONFLICTS = 5
_SELF = Actor(kind=ActorKind.SERVICE, id=SERVICE)


class LostLeaseError(OpsbusError):
    """Another replica owns this rollout now; stop driving it."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


def workload_key(ref: WorkloadRef) -> str:
    return f"{ref.kind}/{ref.namespace}/{ref.name}"


def _request_of(row: Rollout) -> tuple[Envelope, DeployRequested]:
    event = Envelope.model_validate(row.request)
    return event, event.payload_as(DeployRequested)


def _tracking_to_json(t: progression.Tracking) -> dict[str, Any]:
    data = asdict(t)
    data["last_progress_at"] = t.last_progress_at.isoformat()
    data["marker"] = list(t.marker) if t.marker is not None else None
    return data


def _tracking_from_json(data: dict[str, Any]) -> progression.Tracking:
    marker = data.get("marker")
    return progression.Tracking(
        target_generation=int(data["target_generation"]),
        deadline_seconds=int(data["deadline_seconds"]),
        last_progress_at=datetime.fromisoformat(data["last_progress_at"]),
        marker=tuple(marker) if marker is not None else None,
        grace_seconds=int(data.get("grace_seconds", 15)),
    )


def view(row: Rollout) -> RolloutView:
    results: tuple[AnalysisResult, ...] = ()
    if row.analysis and row.analysis.get("results"):
        results = tuple(AnalysisResult.model_validate(r) for r in row.analysis["results"])
    return RolloutView(
        deployment_id=row.id,
        request_id=row.request_id,
        workload=row.workload,
        strategy=row.strategy,
        state=row.state,
        phase=row.phase,
        revision=row.revision,
        previous_revision=row.previous_revision,
        requested_at=row.requested_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        reason=row.outcome_reason,
        message=row.message,
        analysis=results,
    )


class Engine:
    def __init__(
        self,
        *,
        kube: KubePort,
        metrics: MetricsPort,
        sessions: async_sessionmaker[AsyncSession],
        tables: StoreTables,
        cluster: str,
        instance: str,
        options: DeployerOptions,
        clock: Callable[[], datetime] = _utcnow,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self._kube = kube
        self._metrics = metrics
        self._sessions = sessions
        self._tables = tables
        self.cluster = cluster
        self.instance = instance
        self._options = options
        self._clock = clock
        self._on_commit = on_commit or (lambda: None)
        self._auditor = Auditor(service=SERVICE, cluster=cluster)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None

    # --- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> None:
        self._loop = asyncio.create_task(self._run(), name="deployer:scheduler")

    async def stop(self) -> None:
        """Stop driving rollouts. Their state is in the store; the next owner resumes them after the lease."""
        self._stopping.set()
        self._wake.set()
        tasks = [t for t in (self._loop, *self._tasks.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # Hand the rollouts over at once rather than after the lease.
        with contextlib.suppress(Exception):
            async with self._sessions.begin() as s:
                await s.execute(
                    update(Rollout)
                    .where(Rollout.owner == self.instance, Rollout.state == "running")
                    .values(owner=None, lease_until=None)
                )

    def wake(self) -> None:
        self._wake.set()

    # --- intake -------------------------------------------------------------------------------------
    async def accept(self, delivery: Delivery) -> None:
        """The `deploy.requested` handler: queue the request, superseding older queued ones."""
        event = delivery.event
        request = event.payload()
        if not isinstance(request, DeployRequested):
            raise PermanentError(f"{event.type} is not a deploy request")
        key = workload_key(request.workload)
        now = self._clock()
        timeout = request.timeout_seconds or self._options.default_timeout_seconds
        async with self._sessions.begin() as s:
            if not await claim(s, self._tables.inbox, INBOX_CONSUMER, event.id):
                return
            await s.execute(select(func.pg_advisory_xact_lock(func.hashtext(f"deployer:{key}"))))
            existing = (
                (await s.execute(select(Rollout).where(Rollout.workload == key, Rollout.state.in_(ACTIVE_STATES))))
                .scalars()
                .all()
            )
            admission = queueing.admit(
                [queueing.Queued(r.request_id, r.requested_at, running=r.state == "running") for r in existing],
                queueing.Queued(event.id, event.time),
            )
            row = Rollout(
                id=new_event_id(),
                request_id=event.id,
                workload=key,
                cluster=request.cluster,
                strategy=request.strategy.value,
                state="queued",
                step="pending",
                phase=DeployPhase.QUEUED.value,
                request=event.model_dump(mode="json", exclude_none=True),
                requested_at=event.time,
                accepted_at=now,
                deadline_at=event.time + timedelta(seconds=timeout),
            )
            s.add(row)
            if not admission.enqueue:
                assert admission.superseded_by is not None
                await self._supersede(s, row, event, request, admission.superseded_by)
            by_id = {r.request_id: r for r in existing}
            for request_id in admission.supersede:
                older = by_id[request_id]
                older_event, older_request = _request_of(older)
                await self._supersede(s, older, older_event, older_request, event.id)
        self._on_commit()
        self.wake()

    async def _supersede(
        self, s: AsyncSession, row: Rollout, event: Envelope, request: DeployRequested, by: str
    ) -> None:
        row.state = "superseded"
        row.phase = None
        row.finished_at = self._clock()
        row.outcome_reason = "superseded"
        row.message = f"superseded by request {by}"
        payload = DeploySuperseded(
            deployment_id=row.id,
            request_id=row.request_id,
            workload=request.workload,
            strategy=request.strategy,
            superseded_by=by,
            was_running=False,
        )
        await self._emit(s, event, request, payload)
        await self._audit(
            s,
            cause=event,
            request=request,
            action="deploy.supersede",
            outcome=AuditOutcome.SKIPPED,
            reason=row.message,
            rollout_id=row.id,
        )

    async def _emit(self, s: AsyncSession, cause: Envelope, request: DeployRequested, payload: EventPayload) -> None:
        envelope = Envelope.build(
            payload,
            service=SERVICE,
            cluster=request.cluster,
            obj=request.workload.as_object_ref(),
            cause=cause,
            time=self._clock(),
        )
        await add(s, self._tables.outbox, envelope)

    async def _audit(
        self,
        s: AsyncSession,
        *,
        cause: Envelope,
        request: DeployRequested,
        action: str,
        outcome: AuditOutcome,
        reason: str,
        rollout_id: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        entry = self._auditor.entry(
            action=action,
            target=request.workload.as_resource_ref(),
            outcome=outcome,
            reason=reason[:1024],
            details={"deployment_id": rollout_id, **(details or {})},
            cause=cause,
            idempotency_key=f"{rollout_id}:{action}:{outcome.value}",
            time=self._clock(),
        )
        await add(s, self._tables.outbox, entry)

    # --- scheduler ----------------------------------------------------------------------------------
    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.schedule()
            except Exception:
                log.exception("deployer scheduler pass failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation that
                # arrives as the event fires, and this loop would then never stop.
                async with asyncio.timeout(self._options.tick_seconds):
                    await self._wake.wait()

    async def schedule(self) -> None:
        """One scheduler pass: time out queued requests, start idle workloads' next rollout, resume orphans."""
        now = self._clock()
        async with self._sessions.begin() as s:
            expired = (
                (
                    await s.execute(
                        select(Rollout)
                        .where(Rollout.state == "queued", Rollout.deadline_at < now)
                        .with_for_update(skip_locked=True)
                    )
                )
                .scalars()
                .all()
            )
            for row in expired:
                event, request = _request_of(row)
                await self._finish_failed(
                    s,
                    row,
                    event,
                    request,
                    reason=DeployFailureReason.TIMEOUT,
                    message="timed out while queued",
                    rollback=False,
                )
        if expired:
            self._on_commit()
        async with self._sessions.begin() as s:
            queued = (await s.execute(select(Rollout.workload).where(Rollout.state == "queued").distinct())).all()
        for (key,) in queued:
            await self._start_next(key)
        async with self._sessions.begin() as s:
            orphans = (
                (
                    await s.execute(
                        select(Rollout)
                        .where(
                            Rollout.state == "running",
                            (Rollout.owner.is_(None)) | (Rollout.lease_until < now),
                        )
                        .with_for_update(skip_locked=True)
                    )
                )
                .scalars()
                .all()
            )
            for row in orphans:
                log.info("resuming rollout %s of %s (previous owner %s)", row.id, row.workload, row.owner)
                row.owner = self.instance
                row.lease_until = now + timedelta(seconds=self._options.lease_seconds)
        for row in orphans:
            self._spawn(row.id)

    async def _start_next(self, key: str) -> None:
        now = self._clock()
        async with self._sessions.begin() as s:
            await s.execute(select(func.pg_advisory_xact_lock(func.hashtext(f"deployer:{key}"))))
            rows = (
                (await s.execute(select(Rollout).where(Rollout.workload == key, Rollout.state.in_(ACTIVE_STATES))))
                .scalars()
                .all()
            )
            chosen = queueing.next_to_start(
                [queueing.Queued(r.request_id, r.requested_at, running=r.state == "running") for r in rows]
            )
            if chosen is None:
                return
            row = next(r for r in rows if r.request_id == chosen)
            row.state = "running"
            row.phase = DeployPhase.PROGRESSING.value
            row.owner = self.instance
            row.lease_until = now + timedelta(seconds=self._options.lease_seconds)
        self._spawn(row.id)

    def _spawn(self, rollout_id: str) -> None:
        if rollout_id in self._tasks or self._stopping.is_set():
            return
        task = asyncio.create_task(self._drive(rollout_id), name=f"deployer:rollout:{rollout_id}")
        self._tasks[rollout_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(rollout_id, None))

    # --- driving one rollout ------------------------------------------------------------------------
    async def _drive(self, rollout_id: str) -> None:
        while not self._stopping.is_set():
            try:
                done = await self._tick(rollout_id)
            except LostLeaseError:
                log.warning("rollout %s: another replica owns it now", rollout_id)
                return
            except TransientError as exc:
                log.warning("rollout %s: transient failure, retrying: %s", rollout_id, exc)
                done = False
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("rollout %s: tick failed; retrying", rollout_id)
                done = False
            if done:
                self.wake()  # the workload may have a queued request waiting
                return
            await asyncio.sleep(self._options.tick_seconds)

    async def _load(self, rollout_id: str) -> Rollout:
        async with self._sessions() as s:
            row = await s.get(Rollout, rollout_id)
            if row is None:
                raise LostLeaseError(rollout_id)
            s.expunge(row)
            return row

    async def _tick(self, rollout_id: str) -> bool:
        """Advance the rollout one step; True when it reached a terminal state."""
        row = await self._load(rollout_id)
        if row.state != "running":
            return True
        if row.owner != self.instance:
            raise LostLeaseError(rollout_id)
        event, request = _request_of(row)
        if row.step in ("pending", "applying"):
            await self._apply(row, event, request)
        elif row.step == "applied" and request.strategy is Strategy.CANARY:
            await self._follow_canary(row, request)
        elif row.step == "applied" and request.strategy is Strategy.BLUE_GREEN:
            await self._follow_bluegreen(row, request)
        elif row.step == "applied":
            await self._follow(row, event, request)
        elif row.step == "rolling_back":
            await self._follow_rollback(row, event, request)
        row = await self._load(rollout_id)
        return row.state != "running"

    async def _save(
        self,
        rollout_id: str,
        changes: dict[str, Any],
        emit: Sequence[EventPayload] = (),
        audit: Sequence[tuple[str, AuditOutcome, str]] = (),
        revision: Revision | None = None,
    ) -> None:
        """Persist `changes` and the events announcing them in one transaction, if we still own the rollout."""
        async with self._sessions.begin() as s:
            row = await s.get(Rollout, rollout_id, with_for_update=True)
            if row is None or row.owner != self.instance or row.state != "running":
                raise LostLeaseError(rollout_id)
            event, request = _request_of(row)
            for name, value in changes.items():
                setattr(row, name, value)
            row.lease_until = self._clock() + timedelta(seconds=self._options.lease_seconds)
            row.updated_at = self._clock()
            for payload in emit:
                await self._emit(s, event, request, payload)
            for action, outcome, reason in audit:
                await self._audit(
                    s, cause=event, request=request, action=action, outcome=outcome, reason=reason, rollout_id=row.id
                )
            if revision is not None:
                s.add(revision)
        if emit or audit:
            self._on_commit()

    def _base(self, row: Rollout, request: DeployRequested) -> dict[str, Any]:
        return {
            "deployment_id": row.id,
            "request_id": row.request_id,
            "workload": request.workload,
            "strategy": request.strategy,
            "revision": row.revision,
        }

    async def _fail_now(
        self, row: Rollout, request: DeployRequested, reason: DeployFailureReason, message: str
    ) -> None:
        """Terminal failure before anything changed in the cluster: nothing to roll back."""
        now = self._clock()
        payload = DeployFailed(
            **self._base(row, request),
            reason=reason,
            message=message[:4096],
            rollback_pending=False,
            duration_seconds=(now - row.started_at).total_seconds() if row.started_at else None,
        )
        await self._save(
            row.id,
            {"state": "failed", "phase": None, "finished_at": now, "outcome_reason": reason.value, "message": message},
            emit=[payload],
            audit=[("deploy.validate" if row.step == "pending" else "deploy.apply", AuditOutcome.FAILED, message)],
        )

    async def _finish_failed(
        self,
        s: AsyncSession,
        row: Rollout,
        event: Envelope,
        request: DeployRequested,
        *,
        reason: DeployFailureReason,
        message: str,
        rollback: bool,
    ) -> None:
        now = self._clock()
        row.state = "failed"
        row.phase = None
        row.finished_at = now
        row.outcome_reason = reason.value
        row.message = message
        await self._emit(
            s,
            event,
            request,
            DeployFailed(**self._base(row, request), reason=reason, message=message[:4096], rollback_pending=rollback),
        )
        await self._audit(
            s,
            cause=event,
            request=request,
            action="deploy.fail",
            outcome=AuditOutcome.FAILED,
            reason=message,
            rollout_id=row.id,
        )

    # -- apply
    async def _apply(self, row: Rollout, event: Envelope, request: DeployRequested) -> None:  # noqa: PLR0911, PLR0912 - one refusal per case
        now = self._clock()
        if now >= row.deadline_at:
            await self._fail_now(row, request, DeployFailureReason.TIMEOUT, "timed out before the rollout started")
            return
        ns, name = request.workload.namespace, request.workload.name
        try:
            live = await self._kube.deployment(ns, name)
        except NotFoundError as exc:
            await self._fail_now(row, request, DeployFailureReason.NOT_FOUND, f"{request.workload} not found: {exc}")
            return
        obs = progression.Observation.from_deployment(live)
        live_template = (live.get("spec") or {}).get("template") or {}
        previous = row.previous_template if row.step == "applying" and row.previous_template else live_template
        previous_revision = row.previous_revision if row.step == "applying" else obs.revision
        if request.strategy is Strategy.BLUE_GREEN:
            await self._apply_bluegreen(row, request, live, previous, previous_revision)
            return
        if request.strategy is Strategy.CANARY:
            await self._apply_canary(row, request, live, previous, previous_revision)
            return
        try:
            if request.strategy is Strategy.ROLLBACK:
                replica_sets = await self._kube.replica_sets(ns, live)
                target = progression.rollback_template(replica_sets, obs.revision, request.to_revision)
                if target is None:
                    wanted = f"revision {request.to_revision}" if request.to_revision else "a previous revision"
                    known = sorted(
                        r.get("metadata", {}).get("annotations", {}).get("deployment.kubernetes.io/revision", "?")
                        for r in replica_sets
                    )
                    raise ChangeRefused(
                        DeployFailureReason.REVISION_NOT_FOUND,
                        f"{request.workload} has no {wanted} to roll back to (revisions kept: {', '.join(known)})",
                    )
                _, template = target
                patch = plan_template(live, template, row.id)
                images = images_of(template)
            else:
                change = plan_change(live, request, row.id)
                patch, images = change.patch, change.images
        except ChangeRefused as refused:
            await self._fail_now(row, request, refused.reason, refused.message)
            return
        if row.step == "pending":
            await self._save(
                row.id,
                {"step": "applying", "previous_template": previous, "previous_revision": previous_revision},
            )
        tracking_data = dict(row.tracking or {})
        try:
            patched = await self._kube.patch_deployment(ns, name, patch)
        except ConflictError as exc:
            conflicts = int(tracking_data.get("conflicts", 0)) + 1
            if conflicts >= MAX_APPLY_CONFLICTS:
                await self._fail_now(row, request, DeployFailureReason.CONFLICT, str(exc))
            else:
                await self._save(row.id, {"tracking": {**tracking_data, "conflicts": conflicts}})
            return
        except PermanentError as exc:
            await self._fail_now(row, request, DeployFailureReason.APPLY_FAILED, str(exc))
            return
        generation = int((patched.get("metadata") or {}).get("generation") or 0)
        tracking = progression.Tracking(
            target_generation=generation,
            deadline_seconds=request.progress_deadline_seconds,
            last_progress_at=now,
            grace_seconds=self._options.deadline_grace_seconds,
        )
        started = DeployStarted(
            **{**self._base(row, request), "revision": None},
            previous_revision=previous_revision,
            images=images,
            replicas=obs.counts(),
        )
        await self._save(
            row.id,
            {
                "step": "applied",
                "started_at": row.started_at or now,
                "tracking": _tracking_to_json(tracking),
                "analysis": {"started_at": now.isoformat(), "measurements": {}} if request.analysis else None,
            },
            emit=[started],
            audit=[("deploy.apply", AuditOutcome.EXECUTED, f"{request.strategy.value} to {images}")],
        )

    # -- follow
    async def _follow(self, row: Rollout, event: Envelope, request: DeployRequested) -> None:  # noqa: PLR0915 - one tick, read top to bottom
        now = self._clock()
        command = row.command or {}
        live = await self._kube.deployment(request.workload.namespace, request.workload.name)
        obs = progression.Observation.from_deployment(live)
        if command.get("action") == "abort":
            actor = Actor.model_validate(command["actor"])
            await self._begin_rollback(
                row, request, live, after="aborted", failure=None, reason=command["reason"], by=actor
            )
            return
        if now >= row.deadline_at:
            timeout = request.timeout_seconds or self._options.default_timeout_seconds
            message = f"request timed out after {timeout}s"
            await self._fail_and_roll_back(row, request, live, reason=DeployFailureReason.TIMEOUT, message=message)
            return
        assert row.tracking is not None
        st = progression.step(obs, _tracking_from_json(row.tracking), now)
        revision = obs.revision if obs.observed_generation >= st.tracking.target_generation else row.revision
        changes: dict[str, Any] = {"tracking": _tracking_to_json(st.tracking), "revision": revision}
        row.revision = revision
        verdict: analysis.AnalysisState | None = None
        if request.analysis is not None:
            state = dict(row.analysis or {})
            started_at = datetime.fromisoformat(state["started_at"])
            taken: dict[str, list[Measurement]] = {
                k: [Measurement.model_validate(m) for m in v] for k, v in (state.get("measurements") or {}).items()
            }
            due = analysis.due_metrics(request.analysis, taken, started_at, now)
            if due:
                samples = await asyncio.gather(*(self._metrics.query(m.provider) for m in due))
                for metric, sample in zip(due, samples, strict=True):
                    taken.setdefault(metric.name, []).append(analysis.classify(metric, sample))
            verdict = analysis.judge(request.analysis, taken)
            changes["analysis"] = {
                "started_at": started_at.isoformat(),
                "measurements": {k: [m.model_dump(mode="json") for m in v] for k, v in taken.items()},
                "results": [r.model_dump(mode="json") for r in verdict.results],
            }
            if due:
                st = progression.Step(st.verdict, st.tracking, True, st.counts, st.message)
        results = verdict.results if verdict else ()

        if st.verdict is progression.Verdict.DEADLINE_EXCEEDED:
            await self._save(row.id, changes)
            reason = DeployFailureReason.PROGRESS_DEADLINE_EXCEEDED
            await self._fail_and_roll_back(row, request, live, reason=reason, message=st.message)
            return
        if verdict is not None and verdict.verdict is analysis.Verdict.FAIL:
            await self._save(row.id, changes)
            reason = (
                DeployFailureReason.ANALYSIS_FAILED
                if verdict.outcome.value == "failed"
                else DeployFailureReason.ANALYSIS_INCONCLUSIVE
            )
            await self._fail_and_roll_back(row, request, live, reason=reason, message=verdict.message, results=results)
            return
        paused = verdict is not None and verdict.verdict is analysis.Verdict.PAUSE
        if verdict is not None and paused and command.get("action") == "promote":
            paused = False  # a human accepted the inconclusive analysis
            verdict = analysis.AnalysisState(
                analysis.Verdict.SUCCEED, verdict.outcome, verdict.results, verdict.message
            )
        complete = st.verdict is progression.Verdict.COMPLETE
        if complete and (verdict is None or verdict.verdict is analysis.Verdict.SUCCEED):
            await self._succeed(row, request=request, live=live, obs=obs, changes=changes, results=results)
            return
        phase = DeployPhase.PAUSED if paused else DeployPhase.ANALYZING if complete else DeployPhase.PROGRESSING
        emit: list[EventPayload] = []
        if st.progressed or phase.value != row.phase:
            message = verdict.message if paused and verdict else st.message
            emit.append(
                DeployProgressed(
                    **self._base(row, request),
                    phase=phase,
                    replicas=st.counts,
                    analysis=results,
                    message=message[:1024],
                )
            )
        changes["phase"] = phase.value
        await self._save(row.id, changes, emit=emit)

    async def _succeed(
        self,
        row: Rollout,
        *,
        request: DeployRequested,
        live: dict[str, Any],
        obs: progression.Observation,
        changes: dict[str, Any],
        results: Sequence[AnalysisResult],
    ) -> None:
        now = self._clock()
        started = row.started_at or now
        template = (live.get("spec") or {}).get("template") or {}
        revision = Revision(
            workload=row.workload,
            revision=obs.revision,
            rollout_id=row.id,
            images=images_of(template),
            template=template,
            outcome="good",
        )
        base = self._base(row, request)
        payload: EventPayload
        if request.strategy is Strategy.ROLLBACK:
            payload = DeployRolledBack(
                **base,
                from_revision=row.previous_revision,
                to_revision=obs.revision or 1,
                automatic=False,
                reason=request.reason or "rollback requested",
            )
            state = "rolledback"
        else:
            payload = DeploySucceeded(
                **base, duration_seconds=(now - started).total_seconds(), replicas=obs.counts(), analysis=tuple(results)
            )
            state = "succeeded"
        await self._save(
            row.id,
            {**changes, "state": state, "phase": None, "finished_at": now, "message": "rollout complete"},
            emit=[payload],
            audit=[("deploy.complete", AuditOutcome.EXECUTED, f"{state}: revision {obs.revision}")],
            revision=revision,
        )

    async def _fail_and_roll_back(
        self,
        row: Rollout,
        request: DeployRequested,
        live: dict[str, Any],
        *,
        reason: DeployFailureReason,
        message: str,
        results: Sequence[AnalysisResult] = (),
    ) -> None:
        if request.strategy is Strategy.ROLLBACK or row.previous_template is None:
            await self._fail_now(row, request, reason, message)
            return
        failure = DeployFailed(
            **self._base(row, request),
            reason=reason,
            message=message[:4096],
            analysis=tuple(results),
            rollback_pending=True,
            duration_seconds=(self._clock() - row.started_at).total_seconds() if row.started_at else None,
        )
        await self._begin_rollback(row, request, live, after="rolledback", failure=failure, reason=message, by=_SELF)

    async def _begin_rollback(
        self,
        row: Rollout,
        request: DeployRequested,
        live: dict[str, Any],
        *,
        after: str,
        failure: DeployFailed | None,
        reason: str,
        by: Actor,
    ) -> None:
        assert row.previous_template is not None
        ns, name = request.workload.namespace, request.workload.name
        for _attempt in range(MAX_APPLY_CONFLICTS):
            try:
                patched = await self._kube.patch_deployment(
                    ns, name, plan_template(live, row.previous_template, row.id)
                )
                break
            except ConflictError:
                live = await self._kube.deployment(ns, name)
        else:
            raise TransientError(
                f"rollback of {request.workload}: resourceVersion conflicts {MAX_APPLY_CONFLICTS} times"
            )
        now = self._clock()
        tracking = progression.Tracking(
            target_generation=int((patched.get("metadata") or {}).get("generation") or 0),
            deadline_seconds=request.progress_deadline_seconds,
            last_progress_at=now,
            grace_seconds=self._options.deadline_grace_seconds,
        )
        template = (live.get("spec") or {}).get("template") or {}
        bad = Revision(
            workload=row.workload,
            revision=row.revision,
            rollout_id=row.id,
            images=images_of(template),
            template=template,
            outcome="bad",
        )
        await self._save(
            row.id,
            {
                "step": "rolling_back",
                "phase": DeployPhase.PROGRESSING.value,
                "tracking": {
                    **_tracking_to_json(tracking),
                    "after": after,
                    "reason": reason,
                    "by": by.model_dump(mode="json"),
                    "failure": failure.reason.value if failure else None,
                },
                "outcome_reason": failure.reason.value if failure else "aborted",
                "message": reason,
            },
            emit=[failure] if failure else [],
            audit=[("deploy.rollback", AuditOutcome.EXECUTED, f"{after}: {reason}")],
            revision=bad if failure else None,
        )

    async def _follow_rollback(self, row: Rollout, event: Envelope, request: DeployRequested) -> None:
        now = self._clock()
        assert row.tracking is not None
        live = await self._kube.deployment(request.workload.namespace, request.workload.name)
        obs = progression.Observation.from_deployment(live)
        st = progression.step(obs, _tracking_from_json(row.tracking), now)
        extra = {k: row.tracking.get(k) for k in ("after", "reason", "by", "failure")}
        after = str(extra["after"])
        if st.verdict is progression.Verdict.WAIT:
            await self._save(row.id, {"tracking": {**_tracking_to_json(st.tracking), **extra}})
            return
        base = self._base(row, request)
        if st.verdict is progression.Verdict.DEADLINE_EXCEEDED:
            message = f"rollback did not complete: {st.message}"
            emit: list[EventPayload] = []
            if after == "aborted":  # nothing terminal was said yet
                emit.append(
                    DeployFailed(
                        **base,
                        reason=DeployFailureReason.PROGRESS_DEADLINE_EXCEEDED,
                        message=message,
                        rollback_pending=False,
                    )
                )
            await self._save(
                row.id,
                {"state": "failed", "phase": None, "finished_at": now, "message": message},
                emit=emit,
                audit=[("deploy.rollback", AuditOutcome.FAILED, message)],
            )
            return
        by = Actor.model_validate(extra["by"])
        reason = str(extra["reason"])
        payload: EventPayload
        if after == "aborted":
            payload = DeployAborted(**base, aborted_by=by, reason=reason[:1024], reverted_to_revision=obs.revision)
        else:
            payload = DeployRolledBack(
                **base,
                from_revision=row.revision,
                to_revision=obs.revision or 1,
                automatic=True,
                reason=reason[:1024],
            )
        await self._save(
            row.id,
            {"state": after, "phase": None, "finished_at": now},
            emit=[payload],
            audit=[("deploy.rollback", AuditOutcome.EXECUTED, f"{after}: back on revision {obs.revision}")],
        )

    # --- commands (request-reply) -------------------------------------------------------------------
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

    async def history(self, workload: WorkloadRef, limit: int) -> tuple[list[Rollout], list[Revision]]:
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
                (
                    await s.execute(
                        select(Revision)
                        .where(Revision.workload == key)
                        .order_by(Revision.recorded_at.desc())
                        .limit(limit)
                    )
                )
                .scalars()
                .all()
            )
            return list(rollouts), list(revisions)

    async def command(self, selector: RolloutSelector, action: str, actor: Actor, reason: str) -> Rollout:
        """Record an abort or promote. A queued rollout is aborted at once; a running one at its next tick."""
        target = await self.find(selector)
        async with self._sessions.begin() as s:
            row = await s.get(Rollout, target.id, with_for_update=True)
            assert row is not None
            if row.state == "queued" and action == "abort":
                event, request = _request_of(row)
                row.state = "aborted"
                row.phase = None
                row.finished_at = self._clock()
                row.outcome_reason = "aborted"
                row.message = reason or "aborted while queued"
                await self._emit(
                    s,
                    event,
                    request,
                    DeployAborted(
                        **self._base(row, request),
                        aborted_by=actor,
                        reason=row.message[:1024],
                        reverted_to_revision=None,
                    ),
                )
                await self._audit(
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
        self._on_commit()
        return await self.find(RolloutSelector(deployment_id=target.id))

    # --- canary ---------------------------------------------------------------------------------------
    async def _apply_canary(
        self,
        row: Rollout,
        request: DeployRequested,
        live: dict[str, Any],
        previous: dict[str, Any],
        previous_revision: int | None,
    ) -> None:
        assert request.canary is not None
        ns = request.workload.namespace
        try:
            body = canary_deployment(live, request, row.id)
            _, images = new_template(live, request, row.id)
        except ChangeRefused as refused:
            await self._fail_now(row, request, refused.reason, refused.message)
            return
        name = body["metadata"]["name"]
        try:
            existing = await self._kube.deployment(ns, name)
        except NotFoundError:
            existing = None
        if (
            existing is not None
            and (existing.get("metadata") or {}).get("annotations", {}).get("opsbus.io/rollout-id") != row.id
        ):
            # A leftover of an earlier rollout (or someone's own object with our name): replace it.
            await self._kube.delete_deployment(ns, name)
            raise TransientError(f"replacing the leftover {ns}/{name}; retrying once it is gone")
        if existing is None:
            try:
                await self._kube.create_deployment(ns, body)
            except ConflictError as exc:
                raise TransientError(f"{ns}/{name} still being deleted: {exc}") from exc
        now = self._clock()
        state = canary.start(now)
        started = DeployStarted(
            **{**self._base(row, request), "revision": None},
            previous_revision=previous_revision,
            images=images,
            replicas=progression.Observation.from_deployment(live).counts(),
            steps_total=len(request.canary.steps),
        )
        await self._save(
            row.id,
            {
                "step": "applied",
                "started_at": row.started_at or now,
                "previous_template": previous,
                "previous_revision": previous_revision,
                "revision": previous_revision,
                "tracking": {"canary": _canary_to_json(state)},
            },
            emit=[started],
            audit=[("deploy.canary.create", AuditOutcome.EXECUTED, f"{ns}/{name} with {images}")],
        )

    async def _follow_canary(self, row: Rollout, request: DeployRequested) -> None:  # noqa: PLR0912, PLR0915 - one tick
        assert request.canary is not None
        assert row.tracking is not None
        now = self._clock()
        ns, name = request.workload.namespace, request.workload.name
        command = row.command or {}
        state = _canary_from_json(row.tracking["canary"])
        stable_live = await self._kube.deployment(ns, name)
        stable = progression.Observation.from_deployment(stable_live)
        try:
            canary_live: dict[str, Any] | None = await self._kube.deployment(ns, canary_name(name))
        except NotFoundError:
            canary_live = None
        canary_obs = progression.Observation.from_deployment(canary_live) if canary_live else None
        if command.get("action") == "abort":
            actor = Actor.model_validate(command["actor"])
            await self._end_canary(
                row, request, stable_live, state, failure=None, reason=str(command["reason"]), by=actor
            )
            return
        if now >= row.deadline_at:
            timeout = request.timeout_seconds or self._options.default_timeout_seconds
            failure = self._failure(row, request, DeployFailureReason.TIMEOUT, f"request timed out after {timeout}s")
            await self._end_canary(row, request, stable_live, state, failure=failure, reason=failure.message, by=_SELF)
            return
        step = request.canary.steps[min(state.step, len(request.canary.steps) - 1)]
        if state.stage is canary.Stage.ANALYSE and step.analysis is not None:
            taken = {k: list(v) for k, v in state.measurements.items()}
            due = analysis.due_metrics(step.analysis, taken, state.since, now)
            if due:
                samples = await asyncio.gather(*(self._metrics.query(m.provider) for m in due))
                for metric, sample in zip(due, samples, strict=True):
                    taken.setdefault(metric.name, []).append(analysis.classify(metric, sample))
                state = canary.CanaryState(state.step, state.stage, state.since, state.tracking, taken)
        decision = canary.advance(
            request.canary,
            state,
            stable=stable,
            canary=canary_obs,
            deadline_seconds=request.progress_deadline_seconds,
            grace_seconds=self._options.deadline_grace_seconds,
            promote_requested=command.get("action") == "promote",
            now=now,
        )
        state = decision.state
        if decision.outcome is canary.Outcome.FAILED:
            assert decision.reason is not None
            failure = self._failure(row, request, decision.reason, decision.message, decision.analysis, step=state.step)
            await self._end_canary(row, request, stable_live, state, failure=failure, reason=decision.message, by=_SELF)
            return
        effect = decision.effect
        if isinstance(effect, canary.ScaleCanary) and canary_live is not None:
            patched = await self._kube.patch_deployment(
                ns, canary_name(name), [{"op": "replace", "path": "/spec/replicas", "value": effect.replicas}]
            )
            if state.tracking is not None:
                generation = int(patched["metadata"].get("generation") or 0)
                state = canary.CanaryState(
                    state.step,
                    state.stage,
                    state.since,
                    progression.Tracking(
                        generation, state.tracking.deadline_seconds, now, None, state.tracking.grace_seconds
                    ),
                    state.measurements,
                )
        elif isinstance(effect, canary.PromoteStable):
            assert canary_live is not None
            template = promoted_template((canary_live.get("spec") or {}).get("template") or {})
            patched = await self._kube.patch_deployment(ns, name, plan_template(stable_live, template, row.id))
            tracking = progression.Tracking(
                target_generation=int(patched["metadata"].get("generation") or 0),
                deadline_seconds=request.progress_deadline_seconds,
                last_progress_at=now,
                grace_seconds=self._options.deadline_grace_seconds,
            )
            state = canary.CanaryState(state.step, state.stage, state.since, tracking, {})
        changes: dict[str, Any] = {"tracking": {"canary": _canary_to_json(state)}}
        if decision.used_promote:
            changes["command"] = None
        if decision.analysis:
            changes["analysis"] = {"results": [r.model_dump(mode="json") for r in decision.analysis]}
        if decision.outcome is canary.Outcome.SUCCEEDED:
            await self._kube.delete_deployment(ns, canary_name(name))
            changes["revision"] = stable.revision
            row.revision = stable.revision
            results = decision.analysis or tuple(
                AnalysisResult.model_validate(r) for r in (row.analysis or {}).get("results", [])
            )
            await self._succeed(row, request=request, live=stable_live, obs=stable, changes=changes, results=results)
            return
        paused = decision.outcome is canary.Outcome.PAUSED
        phase = (
            DeployPhase.PAUSED
            if paused
            else DeployPhase.PROMOTING
            if state.stage in (canary.Stage.PROMOTE, canary.Stage.CLEANUP)
            else DeployPhase.ANALYZING
            if state.stage is canary.Stage.ANALYSE
            else DeployPhase.PROGRESSING
        )
        marker = f"{state.step}:{state.stage.value}:{phase.value}"
        emit: list[EventPayload] = []
        if marker != row.tracking.get("marker"):
            counts = (canary_obs or stable).counts()
            weight = request.canary.steps[state.step].weight if state.stage is not canary.Stage.CLEANUP else 100
            emit.append(
                DeployProgressed(
                    **self._base(row, request),
                    phase=phase,
                    replicas=counts,
                    step=state.step + 1,
                    steps_total=len(request.canary.steps),
                    canary_weight=weight,
                    analysis=decision.analysis,
                    message=decision.message[:1024],
                )
            )
        changes["tracking"]["marker"] = marker
        changes["phase"] = phase.value
        await self._save(row.id, changes, emit=emit)

    def _failure(
        self,
        row: Rollout,
        request: DeployRequested,
        reason: DeployFailureReason,
        message: str,
        results: Sequence[AnalysisResult] = (),
        *,
        step: int | None = None,
    ) -> DeployFailed:
        return DeployFailed(
            **self._base(row, request),
            reason=reason,
            message=message[:4096],
            failed_step=step + 1 if step is not None else None,
            analysis=tuple(results),
            rollback_pending=True,
            duration_seconds=(self._clock() - row.started_at).total_seconds() if row.started_at else None,
        )

    async def _end_canary(
        self,
        row: Rollout,
        request: DeployRequested,
        stable_live: dict[str, Any],
        state: canary.CanaryState,
        *,
        failure: DeployFailed | None,
        reason: str,
        by: Actor,
    ) -> None:
        """Abort a canary: the canary Deployment goes; the stable one is untouched unless promotion began."""
        ns, name = request.workload.namespace, request.workload.name
        await self._kube.delete_deployment(ns, canary_name(name))
        if state.stage in (canary.Stage.PROMOTE, canary.Stage.CLEANUP):
            # The stable Deployment already took the new template: put the old one back and follow it.
            await self._begin_rollback(
                row,
                request,
                stable_live,
                after="aborted" if failure is None else "rolledback",
                failure=failure,
                reason=reason,
                by=by,
            )
            return
        revision = progression.Observation.from_deployment(stable_live).revision
        now = self._clock()
        base = self._base(row, request)
        emit: list[EventPayload]
        if failure is None:
            emit = [DeployAborted(**base, aborted_by=by, reason=reason[:1024], reverted_to_revision=revision)]
            state_name = "aborted"
        else:
            emit = [
                failure,
                DeployRolledBack(
                    **base,
                    from_revision=None,
                    to_revision=revision or 1,
                    automatic=True,
                    reason=f"canary removed, stable untouched: {reason}"[:1024],
                ),
            ]
            state_name = "rolledback"
        await self._save(
            row.id,
            {
                "state": state_name,
                "phase": None,
                "finished_at": now,
                "outcome_reason": failure.reason.value if failure else "aborted",
                "message": reason,
            },
            emit=emit,
            audit=[("deploy.canary.abort", AuditOutcome.EXECUTED, f"{state_name}: canary removed; {reason}")],
        )

    # --- blue-green -----------------------------------------------------------------------------------
    async def _apply_bluegreen(
        self,
        row: Rollout,
        request: DeployRequested,
        live: dict[str, Any],
        previous: dict[str, Any],
        previous_revision: int | None,
    ) -> None:
        assert request.blue_green is not None
        ns = request.workload.namespace
        spec = request.blue_green
        try:
            service = await self._kube.service(ns, spec.active_service)
            if spec.preview_service is not None:
                await self._kube.service(ns, spec.preview_service)
        except NotFoundError as exc:
            await self._fail_now(row, request, DeployFailureReason.NOT_FOUND, str(exc))
            return
        selector = {k: v for k, v in ((service.get("spec") or {}).get("selector") or {}).items() if k != HASH_LABEL}
        labels = (((live.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}
        if not selector or any(labels.get(k) != v for k, v in selector.items()):
            message = (
                f"Service {ns}/{spec.active_service} (selector {selector}) does not select the pods of "
                f"{request.workload} (labels {labels})"
            )
            await self._fail_now(row, request, DeployFailureReason.INVALID_REQUEST, message)
            return
        try:
            body = green_deployment(live, request, row.id)
            _, images = new_template(live, request, row.id)
        except ChangeRefused as refused:
            await self._fail_now(row, request, refused.reason, refused.message)
            return
        green = body["metadata"]["name"]
        try:
            existing = await self._kube.deployment(ns, green)
        except NotFoundError:
            existing = None
        if (
            existing is not None
            and (existing.get("metadata") or {}).get("annotations", {}).get("opsbus.io/rollout-id") != row.id
        ):
            await self._kube.delete_deployment(ns, green)
            raise TransientError(f"replacing the leftover {ns}/{green}; retrying once it is gone")
        if existing is None:
            try:
                await self._kube.create_deployment(ns, body)
            except ConflictError as exc:
                raise TransientError(f"{ns}/{green} still being deleted: {exc}") from exc
        now = self._clock()
        await self._save(
            row.id,
            {
                "step": "applied",
                "started_at": row.started_at or now,
                "previous_template": previous,
                "previous_revision": previous_revision,
                "revision": previous_revision,
                "tracking": {"bluegreen": _bg_to_json(bluegreen.start(now)), "selector": selector},
            },
            emit=[
                DeployStarted(
                    **{**self._base(row, request), "revision": None},
                    previous_revision=previous_revision,
                    images=images,
                    replicas=progression.Observation.from_deployment(live).counts(),
                )
            ],
            audit=[("deploy.bluegreen.create", AuditOutcome.EXECUTED, f"{ns}/{green} with {images}")],
        )

    async def _bg_view(
        self, request: DeployRequested, promote: bool
    ) -> tuple[bluegreen.View, dict[str, Any], dict[str, Any] | None, dict[str, Any]]:
        assert request.blue_green is not None
        ns, name = request.workload.namespace, request.workload.name
        stable_live = await self._kube.deployment(ns, name)
        try:
            green_live: dict[str, Any] | None = await self._kube.deployment(ns, f"{name}{GREEN_SUFFIX}")
        except NotFoundError:
            green_live = None
        service = await self._kube.service(ns, request.blue_green.active_service)
        stable_sets = await self._kube.replica_sets(ns, stable_live)
        green_sets = await self._kube.replica_sets(ns, green_live) if green_live else []
        selected = ((service.get("spec") or {}).get("selector") or {}).get(HASH_LABEL)
        view = bluegreen.View(
            stable=progression.Observation.from_deployment(stable_live),
            green=progression.Observation.from_deployment(green_live) if green_live else None,
            stable_hash=current_hash(stable_live, list(stable_sets)),
            green_hash=current_hash(green_live, list(green_sets)) if green_live else None,
            selected_hash=str(selected) if selected else None,
            promote_requested=promote,
        )
        return view, stable_live, green_live, service

    async def _follow_bluegreen(self, row: Rollout, request: DeployRequested) -> None:  # noqa: PLR0912, PLR0915 - one tick
        assert request.blue_green is not None
        assert row.tracking is not None
        spec = request.blue_green
        now = self._clock()
        ns, name = request.workload.namespace, request.workload.name
        command = row.command or {}
        original: dict[str, str] = dict(row.tracking["selector"])
        state = _bg_from_json(row.tracking["bluegreen"])
        view, stable_live, green_live, service = await self._bg_view(request, command.get("action") == "promote")
        if command.get("action") == "abort":
            actor = Actor.model_validate(command["actor"])
            await self._end_bluegreen(row, request, view, state, failure=None, reason=str(command["reason"]), by=actor)
            return
        if now >= row.deadline_at:
            timeout = request.timeout_seconds or self._options.default_timeout_seconds
            failure = self._failure(row, request, DeployFailureReason.TIMEOUT, f"request timed out after {timeout}s")
            await self._end_bluegreen(row, request, view, state, failure=failure, reason=failure.message, by=_SELF)
            return
        if state.stage is bluegreen.Stage.ANALYSE and spec.pre_promotion_analysis is not None:
            taken = {k: list(v) for k, v in state.measurements.items()}
            due = analysis.due_metrics(spec.pre_promotion_analysis, taken, state.since, now)
            if due:
                samples = await asyncio.gather(*(self._metrics.query(m.provider) for m in due))
                for metric, sample in zip(due, samples, strict=True):
                    taken.setdefault(metric.name, []).append(analysis.classify(metric, sample))
                state = bluegreen.State(state.stage, state.since, state.tracking, taken, state.preview_pointed)
        decision = bluegreen.advance(
            spec,
            state,
            view,
            deadline_seconds=request.progress_deadline_seconds,
            grace_seconds=self._options.deadline_grace_seconds,
            now=now,
        )
        state = decision.state
        if decision.outcome is bluegreen.Outcome.FAILED:
            assert decision.reason is not None
            failure = self._failure(row, request, decision.reason, decision.message, decision.analysis)
            await self._end_bluegreen(row, request, view, state, failure=failure, reason=decision.message, by=_SELF)
            return
        effect = decision.effect
        if isinstance(effect, bluegreen.SelectHash):
            await self._kube.patch_service(ns, spec.active_service, select_patch(service, original, effect.hash))
        elif isinstance(effect, bluegreen.PointPreview) and spec.preview_service is not None:
            preview = await self._kube.service(ns, spec.preview_service)
            await self._kube.patch_service(ns, spec.preview_service, select_patch(preview, original, effect.hash))
        elif isinstance(effect, bluegreen.ConvergeStable):
            assert green_live is not None
            template = promoted_template((green_live.get("spec") or {}).get("template") or {})
            patched = await self._kube.patch_deployment(ns, name, plan_template(stable_live, template, row.id))
            state = bluegreen.State(
                state.stage,
                state.since,
                progression.Tracking(
                    target_generation=int(patched["metadata"].get("generation") or 0),
                    deadline_seconds=request.progress_deadline_seconds,
                    last_progress_at=now,
                    grace_seconds=self._options.deadline_grace_seconds,
                ),
            )
        elif isinstance(effect, bluegreen.RestoreAndDelete):
            if view.selected_hash is not None:
                await self._kube.patch_service(ns, spec.active_service, select_patch(service, original, None))
            await self._kube.delete_deployment(ns, f"{name}{GREEN_SUFFIX}")
        changes: dict[str, Any] = {"tracking": {**row.tracking, "bluegreen": _bg_to_json(state)}}
        if decision.used_promote:
            changes["command"] = None
        if decision.analysis:
            changes["analysis"] = {"results": [r.model_dump(mode="json") for r in decision.analysis]}
        if decision.outcome is bluegreen.Outcome.SUCCEEDED:
            changes["revision"] = view.stable.revision
            row.revision = view.stable.revision
            results = decision.analysis or tuple(
                AnalysisResult.model_validate(r) for r in (row.analysis or {}).get("results", [])
            )
            await self._succeed(
                row, request=request, live=stable_live, obs=view.stable, changes=changes, results=results
            )
            return
        paused = decision.outcome is bluegreen.Outcome.PAUSED
        phase = (
            DeployPhase.PAUSED
            if paused
            else DeployPhase.ANALYZING
            if state.stage is bluegreen.Stage.ANALYSE
            else DeployPhase.PROMOTING
            if state.stage is bluegreen.Stage.SWITCHED
            else DeployPhase.SCALING_DOWN
            if state.stage in (bluegreen.Stage.CONVERGE, bluegreen.Stage.CLEANUP)
            else DeployPhase.PROGRESSING
        )
        marker = f"{state.stage.value}:{phase.value}"
        emit: list[EventPayload] = []
        if marker != row.tracking.get("marker"):
            emit.append(
                DeployProgressed(
                    **self._base(row, request),
                    phase=phase,
                    replicas=(view.green or view.stable).counts(),
                    analysis=decision.analysis,
                    message=decision.message[:1024],
                )
            )
        changes["tracking"]["marker"] = marker
        changes["phase"] = phase.value
        await self._save(row.id, changes, emit=emit)

    async def _end_bluegreen(
        self,
        row: Rollout,
        request: DeployRequested,
        view: bluegreen.View,
        state: bluegreen.State,
        *,
        failure: DeployFailed | None,
        reason: str,
        by: Actor,
    ) -> None:
        """Abort: traffic back to the old stack, the new stack removed, the Service's selector restored."""
        assert request.blue_green is not None
        assert row.tracking is not None
        ns, name = request.workload.namespace, request.workload.name
        service_name = request.blue_green.active_service
        original: dict[str, str] = dict(row.tracking["selector"])
        converged = state.stage in (bluegreen.Stage.CONVERGE, bluegreen.Stage.CLEANUP)
        if not converged and view.stable_hash is not None and view.selected_hash not in (None, view.stable_hash):
            service = await self._kube.service(ns, service_name)
            await self._kube.patch_service(ns, service_name, select_patch(service, original, view.stable_hash))
        await self._kube.delete_deployment(ns, f"{name}{GREEN_SUFFIX}")
        service = await self._kube.service(ns, service_name)
        if ((service.get("spec") or {}).get("selector") or {}).get(HASH_LABEL):
            await self._kube.patch_service(ns, service_name, select_patch(service, original, None))
        if request.blue_green.preview_service is not None:
            preview = await self._kube.service(ns, request.blue_green.preview_service)
            await self._kube.patch_service(
                ns, request.blue_green.preview_service, select_patch(preview, original, None)
            )
        if converged:
            stable_live = await self._kube.deployment(ns, name)
            after = "aborted" if failure is None else "rolledback"
            await self._begin_rollback(row, request, stable_live, after=after, failure=failure, reason=reason, by=by)
            return
        revision = view.stable.revision
        base = self._base(row, request)
        emit: list[EventPayload]
        if failure is None:
            emit = [DeployAborted(**base, aborted_by=by, reason=reason[:1024], reverted_to_revision=revision)]
            state_name = "aborted"
        else:
            emit = [
                failure,
                DeployRolledBack(
                    **base,
                    from_revision=None,
                    to_revision=revision or 1,
                    automatic=True,
                    reason=f"traffic back on the old stack, new stack removed: {reason}"[:1024],
                ),
            ]
            state_name = "rolledback"
        await self._save(
            row.id,
            {
                "state": state_name,
                "phase": None,
                "finished_at": self._clock(),
                "outcome_reason": failure.reason.value if failure else "aborted",
                "message": reason,
            },
            emit=emit,
            audit=[("deploy.bluegreen.abort", AuditOutcome.EXECUTED, f"{state_name}: {reason}")],
        )


def _canary_to_json(state: canary.CanaryState) -> dict[str, Any]:
    return {
        "step": state.step,
        "stage": state.stage.value,
        "since": state.since.isoformat(),
        "tracking": _tracking_to_json(state.tracking) if state.tracking else None,
        "measurements": {k: [m.model_dump(mode="json") for m in v] for k, v in state.measurements.items()},
    }


def _canary_from_json(data: dict[str, Any]) -> canary.CanaryState:
    return canary.CanaryState(
        step=int(data["step"]),
        stage=canary.Stage(data["stage"]),
        since=datetime.fromisoformat(data["since"]),
        tracking=_tracking_from_json(data["tracking"]) if data.get("tracking") else None,
        measurements={
            k: [Measurement.model_validate(m) for m in v] for k, v in (data.get("measurements") or {}).items()
        },
    )


def _bg_to_json(state: bluegreen.State) -> dict[str, Any]:
    return {
        "stage": state.stage.value,
        "since": state.since.isoformat(),
        "tracking": _tracking_to_json(state.tracking) if state.tracking else None,
        "measurements": {k: [m.model_dump(mode="json") for m in v] for k, v in state.measurements.items()},
        "preview_pointed": state.preview_pointed,
    }


def _bg_from_json(data: dict[str, Any]) -> bluegreen.State:
    return bluegreen.State(
        stage=bluegreen.Stage(data["stage"]),
        since=datetime.fromisoformat(data["since"]),
        tracking=_tracking_from_json(data["tracking"]) if data.get("tracking") else None,
        measurements={
            k: [Measurement.model_validate(m) for m in v] for k, v in (data.get("measurements") or {}).items()
        },
        preview_pointed=bool(data.get("preview_pointed", False)),
    )
