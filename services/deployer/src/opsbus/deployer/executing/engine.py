"""The rollout engine: takes requests in, schedules them one per workload, and drives each active rollout.

Shape:
- `accept()` is the `deploy.requested` handler: inbox claim, per-workload lock, supersede queued requests
  (pure `queueing.admit`), insert the rollout as queued. It never waits for the cluster.
- `schedule()` (run by the scheduler loop) expires queued requests past their timeout, starts the newest
  queued rollout of each idle workload, and resumes running rollouts whose owner's lease lapsed.
- each active rollout is driven by one task, one tick at a time: the strategy's executor (`rolling`,
  `canarying`, `bluegreening`, or `reverting` once a rollback is under way) reads the cluster, asks the
  planners, acts, and records the change with the events announcing it (`recording`).
It must never decide anything the planners can decide, nor act on the cluster itself: the executors do.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from opentelemetry.trace import Tracer
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from opsbus.common.api.calling import Caller
from opsbus.common.bus import Delivery
from opsbus.common.errors import NotFoundError, PermanentError, TransientError
from opsbus.common.events.envelope import Envelope, new_event_id
from opsbus.common.events.payloads.common import Actor, WorkloadRef
from opsbus.common.events.payloads.deploy import DeployFailureReason, DeployPhase, DeployRequested, Strategy
from opsbus.common.store import StoreTables, claim
from opsbus.deployer.api import ReplicaSetView, RolloutSelector
from opsbus.deployer.domain import queueing, replicasets
from opsbus.deployer.domain.changes import canary_name
from opsbus.deployer.executing.bluegreening import BlueGreen
from opsbus.deployer.executing.canarying import Canary
from opsbus.deployer.executing.commands import Commands
from opsbus.deployer.executing.context import Context
from opsbus.deployer.executing.recording import LostLeaseError, Recorder
from opsbus.deployer.executing.reverting import Reverter
from opsbus.deployer.executing.rolling import Rolling
from opsbus.deployer.executing.serializing import request_of, workload_key
from opsbus.deployer.executing.workloads import workload_of
from opsbus.deployer.kube import KubePort
from opsbus.deployer.prometheus import MetricsPort
from opsbus.deployer.settings import DeployerOptions
from opsbus.deployer.store import ACTIVE_STATES, Revision, Rollout

log = logging.getLogger(__name__)

INBOX_CONSUMER = "deployer-requests"


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _unsupported(request: DeployRequested) -> str | None:
    """Why this deployer cannot carry `request` out (None: it can). Said before anything is changed."""
    kind, strategy = request.workload.kind, request.strategy
    if kind == "Deployment" or (kind == "StatefulSet" and strategy in (Strategy.ROLLING, Strategy.ROLLBACK)):
        return None
    if kind == "StatefulSet":
        return (
            f"a StatefulSet is rolled out with strategy rolling (partition by partition) or rollback, not "
            f"{strategy.value}: nothing was changed on {request.workload}"
        )
    return f"{kind} rollouts are not supported by this deployer (Deployments and StatefulSets only): nothing changed"


class StrategyExecutor(Protocol):
    async def apply(
        self,
        row: Rollout,
        request: DeployRequested,
        live: dict[str, Any],
        previous: dict[str, Any],
        previous_revision: int | None,
    ) -> None: ...

    async def follow(self, row: Rollout, request: DeployRequested) -> None: ...


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
        tracer: Tracer | None = None,
    ) -> None:
        self._kube = kube
        self._sessions = sessions
        self._tables = tables
        self.cluster = cluster
        self.instance = instance
        self._options = options
        self._clock = clock
        self._recorder = Recorder(
            sessions=sessions,
            tables=tables,
            cluster=cluster,
            instance=instance,
            lease_seconds=options.lease_seconds,
            clock=clock,
            on_commit=on_commit or (lambda: None),
            tracer=tracer,
        )
        ctx = Context(kube=kube, metrics=metrics, recorder=self._recorder, options=options, clock=clock)
        self._reverter = Reverter(ctx)
        rolling = Rolling(ctx, self._reverter)
        self._executors: dict[Strategy, StrategyExecutor] = {
            Strategy.ROLLING: rolling,
            Strategy.RECREATE: rolling,
            Strategy.ROLLBACK: rolling,
            Strategy.CANARY: Canary(ctx, self._reverter),
            Strategy.BLUE_GREEN: BlueGreen(ctx, self._reverter),
        }
        self._commands = Commands(self._recorder, clock)
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
        """The `deploy.requested` handler: queue the request, superseding older queued ones.

        A request older than `request_freshness_seconds` is not carried out: it ends at once in `deploy.skipped`
        (the bus's own freshness check is off for this consumer, so a stale request is answered, not dropped).
        """
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
            age = (now - event.time).total_seconds()
            if age > self._options.request_freshness_seconds:
                s.add(row := self._new_row(event, request, now, timeout, state="skipped"))
                await self._recorder.skip_stale(
                    s, row, event, request, age=age, freshness=self._options.request_freshness_seconds
                )
                return
            admission = queueing.admit(
                [queueing.Queued(r.request_id, r.requested_at, running=r.state == "running") for r in existing],
                queueing.Queued(event.id, event.time),
            )
            row = self._new_row(event, request, now, timeout, state="queued")
            s.add(row)
            if not admission.enqueue:
                assert admission.superseded_by is not None
                await self._recorder.supersede(s, row, event, request, admission.superseded_by)
            by_id = {r.request_id: r for r in existing}
            for request_id in admission.supersede:
                older = by_id[request_id]
                older_event, older_request = request_of(older)
                await self._recorder.supersede(s, older, older_event, older_request, event.id)
        self._recorder.on_commit()
        self.wake()

    @staticmethod
    def _new_row(event: Envelope, request: DeployRequested, now: datetime, timeout: int, *, state: str) -> Rollout:
        return Rollout(
            id=new_event_id(),
            request_id=event.id,
            workload=workload_key(request.workload),
            cluster=request.cluster,
            strategy=request.strategy.value,
            state=state,
            step="pending",
            phase=DeployPhase.QUEUED.value if state == "queued" else None,
            request=event.model_dump(mode="json", exclude_none=True),
            requested_at=event.time,
            accepted_at=now,
            deadline_at=event.time + timedelta(seconds=timeout),
            finished_at=None if state == "queued" else now,
        )

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
                event, request = request_of(row)
                await self._recorder.finish_failed(
                    s,
                    row,
                    event,
                    request,
                    reason=DeployFailureReason.TIMEOUT,
                    message="timed out while queued",
                    rollback=False,
                )
        if expired:
            self._recorder.on_commit()
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
        _, request = request_of(row)
        if row.step in ("pending", "applying"):
            await self._apply(row, request)
        elif row.step == "applied":
            await self._executors[request.strategy].follow(row, request)
        elif row.step == "rolling_back":
            await self._reverter.follow(row, request)
        row = await self._load(rollout_id)
        return row.state != "running"

    async def _apply(self, row: Rollout, request: DeployRequested) -> None:
        """What every strategy checks before its first write: the deadline, the workload, what ran before."""
        if self._clock() >= row.deadline_at:
            await self._recorder.fail_now(
                row, request, DeployFailureReason.TIMEOUT, "timed out before the rollout started"
            )
            return
        refusal = _unsupported(request)
        if refusal is not None:
            await self._recorder.fail_now(row, request, DeployFailureReason.INVALID_REQUEST, refusal)
            return
        try:
            seen = await workload_of(self._kube, request.workload.kind).read(
                request.workload.namespace, request.workload.name
            )
        except NotFoundError as exc:
            message = f"{request.workload} not found: {exc}"
            await self._recorder.fail_now(row, request, DeployFailureReason.NOT_FOUND, message)
            return
        resumed = row.step == "applying"
        live_template = (seen.live.get("spec") or {}).get("template") or {}
        previous = row.previous_template if resumed and row.previous_template else live_template
        previous_revision = row.previous_revision if resumed else seen.obs.revision
        await self._executors[request.strategy].apply(row, request, seen.live, previous, previous_revision)

    # --- commands (request-reply) -------------------------------------------------------------------
    async def find(self, selector: RolloutSelector) -> Rollout:
        return await self._commands.find(selector)

    async def history(
        self, workload: WorkloadRef, limit: int
    ) -> tuple[list[Rollout], list[tuple[Revision, str | None]]]:
        return await self._commands.history(workload, limit)

    async def recent(self, namespaces: tuple[str, ...] | None, state: str | None, limit: int) -> list[Rollout]:
        return await self._commands.recent(namespaces, state, limit)

    async def replica_sets(self, row: Rollout) -> tuple[ReplicaSetView, ...]:
        """The rollout's new and old ReplicaSets as they are now (a canary's new one is its `-canary`'s)."""
        _, request = request_of(row)
        ref = request.workload
        if ref.kind != "Deployment":
            return ()
        stable = await self._kube.deployment(ref.namespace, ref.name)
        stable_sets = await self._kube.replica_sets(ref.namespace, stable)
        canary: dict[str, Any] | None = None
        canary_sets: list[dict[str, Any]] = []
        if request.strategy == "canary":
            try:
                canary = await self._kube.deployment(ref.namespace, canary_name(ref.name))
                canary_sets = await self._kube.replica_sets(ref.namespace, canary)
            except NotFoundError:
                canary = None  # not created yet, or removed: the stable's sets tell the story
        return replicasets.describe(
            stable, stable_sets, canary=canary, canary_sets=canary_sets, new_revision=row.revision
        )

    async def command(
        self, selector: RolloutSelector, action: str, actor: Actor, reason: str, caller: Caller | None = None
    ) -> Rollout:
        """Record an abort or promote (audited with `caller` in the same transaction). A queued rollout is
        aborted at once; a running one at its next tick."""
        return await self._commands.command(selector, action, actor, reason, caller)
