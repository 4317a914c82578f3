"""The executor: gathers snapshots (cluster inventory, usage), runs the pure planner, and applies its plans
through the ports: the store (checkpoints, recommendations, applied changes), the bus (through the
transactional outbox: `scale.recommended`, `scale.applied`, `audit.recorded`) and the cluster (one patch
with a resourceVersion precondition).

What it must never do: decide. Every "whether" and "how much" is in `domain.planning`; this module only
reads, records and writes. Every decision is audited, including no-ops, once per change of decision (a
workload that stays over-provisioned in recommend mode is not re-audited every cycle).

A crash between the cluster patch and the commit that records it leaves the change made but unrecorded;
the next cycle plans from the patched object, so nothing is applied twice.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from opsbus.common.audit import Auditor
from opsbus.common.bus import Delivery
from opsbus.common.errors import ConflictError, NotFoundError, PermanentError
from opsbus.common.events import Envelope
from opsbus.common.events.payloads import AlertFired
from opsbus.common.events.payloads.audit import AuditOutcome
from opsbus.common.events.payloads.common import Actor, ActorKind, WorkloadRef
from opsbus.common.events.payloads.scale import (
    ContainerRecommendation,
    CostEstimate,
    ReplicaRecommendation,
    ScaleApplied,
    ScaleMode,
    ScaleRecommended,
)
from opsbus.common.store import Database, claim
from opsbus.common.store import add as outbox_add
from opsbus.optimizer import store
from opsbus.optimizer.cluster import KubeCluster, Workload
from opsbus.optimizer.domain.cost import cost_change
from opsbus.optimizer.domain.planning import (
    Action,
    History,
    Plan,
    Snapshot,
    footprint,
    plan,
    recommendation_payload,
)
from opsbus.optimizer.domain.quantities import memory_bytes
from opsbus.optimizer.domain.vertical import ContainerUsage
from opsbus.optimizer.forecasting import Forecaster
from opsbus.optimizer.history import StoredHistory
from opsbus.optimizer.settings import OptimizerOptions
from opsbus.optimizer.timeline import applied_change
from opsbus.optimizer.usage import Sample, UsageSource

log = logging.getLogger(__name__)

SERVICE = "optimizer"
CONSUMER = "optimizer-oom"
OOM_ALERT = "KubeContainerOOMKilled"
SELF = Actor(kind=ActorKind.SERVICE, id=SERVICE)
PATCH_ERRORS = (ConflictError, PermanentError, NotFoundError)
_OUTCOME = {
    Action.OFF: AuditOutcome.SKIPPED,
    Action.NOOP: AuditOutcome.SKIPPED,
    Action.RECOMMEND: AuditOutcome.SKIPPED,
    Action.BLOCKED: AuditOutcome.DENIED,
    Action.DRY_RUN: AuditOutcome.DRY_RUN,
    Action.APPLY: AuditOutcome.EXECUTED,
}


@dataclass
class CycleReport:
    workloads: int = 0
    samples: int = 0
    source: str = ""
    plans: tuple[Plan, ...] = ()


def _ts(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _fingerprint(p: Plan) -> str:
    targets = ",".join(f"{t.name}:{t.cpu_request}:{t.memory_request}" for t in p.targets)
    return f"{targets}|{p.replicas_target}"


def _decision(p: Plan) -> str:
    return f"{p.action.value}|{p.guard}|{_fingerprint(p)}"


class Optimizer:
    def __init__(
        self,
        db: Database,
        cluster: KubeCluster,
        usage: UsageSource,
        *,
        options: OptimizerOptions,
        cluster_name: str,
        registry: CollectorRegistry,
        clock: Callable[[], float] = time.time,
        on_outbox: Callable[[], None] | None = None,
        history: StoredHistory | None = None,
        forecaster: Forecaster | None = None,
        in_place_resize: bool = False,
    ) -> None:
        self.db, self.cluster, self.usage, self.options = db, cluster, usage, options
        self.history, self.forecaster, self.in_place_resize = history, forecaster, in_place_resize
        self.cluster_name = cluster_name
        self.clock = clock
        self.auditor = Auditor(service=SERVICE, cluster=cluster_name)
        self._wake = on_outbox or (lambda: None)
        self.decisions = Counter(
            "opsbus_optimizer_decisions", "Decisions per workload and cycle, by action.", ["action"], registry=registry
        )
        self.savings = Counter(
            "opsbus_optimizer_recommended_savings",
            "Monthly cost delta of published recommendations (negative saves), in the configured currency.",
            registry=registry,
        )
        self.resizes = Counter(
            "opsbus_optimizer_resizes",
            "Request changes applied, by path: in_place (pods/resize), template (the Deployment's pod template, "
            "replacing the pods), template_fallback (in-place refused by the cluster).",
            ["path"],
            registry=registry,
        )
        self.cycle_seconds = Histogram(
            "opsbus_optimizer_cycle_seconds", "Duration of one optimisation cycle.", registry=registry
        )

    # --- the periodic cycle ------------------------------------------------------------------------
    async def cycle(self) -> CycleReport:
        started = time.monotonic()
        now = self.clock()
        o = self.options
        workloads = await self.cluster.inventory(o.namespaces, o.excluded_namespaces)
        active = [w for w in workloads if o.mode_for(w.snapshot.workload.namespace) is not ScaleMode.OFF]
        async with self.db.sessions.begin() as s:
            row = (await s.execute(select(store.cursors.c.until).where(store.cursors.c.name == "usage"))).first()
        start = row[0] if row else now - o.bootstrap_history_seconds
        namespaces = sorted({w.snapshot.workload.namespace for w in active}) if o.namespaces or active else []
        samples: list[Sample] = []
        if active:
            samples = await self.usage.samples(namespaces, start, now, o.usage_step_seconds)
        by_pod: dict[tuple[str, str], list[Sample]] = defaultdict(list)
        for sample in samples:
            by_pod[(sample.namespace, sample.pod)].append(sample)
        if self.history is not None and samples:
            owner = {(w.snapshot.workload.namespace, pod): w.snapshot.workload.name for w in active for pod in w.pods}
            await self.history.record(samples, owner)
        if self.forecaster is not None:
            await self.forecaster.refresh([w.snapshot.workload for w in active], now)
        plans = []
        for w in workloads:
            mine = [x for pod in w.pods for x in by_pod.get((w.snapshot.workload.namespace, pod), [])]
            plans.append(await self.handle_workload(w, mine, now))
        async with self.db.sessions.begin() as s:
            await s.execute(
                insert(store.cursors)
                .values(name="usage", until=now)
                .on_conflict_do_update(index_elements=[store.cursors.c.name], set_={"until": now})
            )
        self.cycle_seconds.observe(time.monotonic() - started)
        return CycleReport(
            workloads=len(workloads),
            samples=len(samples),
            source=getattr(self.usage, "last_used", self.usage.name),
            plans=tuple(plans),
        )

    async def handle_workload(
        self, w: Workload, samples: Sequence[Sample], now: float, cause: Envelope | None = None
    ) -> Plan:
        snap = self.held(w)
        ref = snap.workload
        policy = self.options.policy(ref.namespace)
        if self.forecaster is not None:
            startup = w.startup_seconds if w.startup_seconds is not None else self.options.forecast.startup_seconds
            forecasts = self.forecaster.forecasts(ref, in_place_resize=self.in_place_resize, startup_seconds=startup)
            snap = replace(snap, forecasts=forecasts)
        async with self.db.sessions.begin() as s:
            usage = await self._load_usage(s, ref)
            by_container: dict[str, dict[float, tuple[list[float], list[float]]]] = defaultdict(dict)
            for x in samples:
                cpu, mem = by_container[x.container].setdefault(x.at, ([], []))
                if x.cpu_millicores is not None:
                    cpu.append(x.cpu_millicores)
                if x.memory_bytes is not None:
                    mem.append(x.memory_bytes)
            for c in snap.containers:
                series = by_container.get(c.name)
                if not series:
                    continue
                u = usage.setdefault(c.name, ContainerUsage.new(policy.vertical))
                for at in sorted(series):
                    cpu, mem = series[at]
                    u.add_pods(at, cpu, mem, policy.vertical)
            if samples:
                last = max(x.at for x in samples)
                current = sum(x.cpu_millicores or 0.0 for x in samples if x.at == last)
                snap = Snapshot(**{**snap.__dict__, "cpu_usage_millicores": current})
            ws = await self._load_state(s, ref)
            history = History(
                last_applied_at=ws["last_applied_at"].timestamp() if ws["last_applied_at"] else None,
                replica_history=tuple((float(t), int(r)) for t, r in ws["replica_history"]),
            )
            p = plan(snap, usage, policy, history, now)
            await self._save_usage(s, ref, usage, now)
            rec_id = await self._record_plan(s, snap, p, ws, now=now, cause=cause)
        self.decisions.labels(p.action.value).inc()
        self._wake()
        if p.action in (Action.APPLY, Action.DRY_RUN):
            await self._apply(snap, p, rec_id or f"rec-{uuid.uuid4().hex[:16]}", now, cause, actor=SELF, pods=w.pods)
        return p

    def held(self, w: Workload) -> Snapshot:
        """The workload as its pods hold it: with in-place resize, the requests most running pods have (the
        template keeps what new pods start with); the template's otherwise."""
        if self.in_place_resize and w.pod_containers:
            return replace(w.snapshot, containers=w.pod_containers)
        return w.snapshot

    # --- OOM alerts -------------------------------------------------------------------------------
    async def handle_alert(self, delivery: Delivery) -> None:
        """`alert.fired` KubeContainerOOMKilled: bump the container's memory at once (inbox: once per event)."""
        event = delivery.event
        payload = event.payload()
        if not isinstance(payload, AlertFired) or payload.alertname != OOM_ALERT:
            return
        ns = payload.labels.get("namespace")
        container = payload.labels.get("container")
        workload = payload.workload
        if workload is None or workload.kind != "Deployment" or not ns or not container:
            log.info("OOM alert %s names no Deployment container: ignored", event.id)
            return
        try:
            w = await self.cluster.workload(workload)
        except NotFoundError:
            return
        spec = next((c for c in w.snapshot.containers if c.name == container), None)
        if spec is None:
            return
        at_kill = spec.memory_limit or spec.memory_request or self._memory_from_evidence(payload)
        if not at_kill:
            return
        now = self.clock()
        policy = self.options.policy(ns)
        async with self.db.sessions.begin() as s:
            if not await claim(s, store.TABLES.inbox, CONSUMER, event.id):
                return
            usage = await self._load_usage(s, workload)
            u = usage.setdefault(container, ContainerUsage.new(policy.vertical))
            floor = u.record_oom(now, at_kill, policy.vertical)
            await self._save_usage(s, workload, usage, now)
        p = await self.handle_workload(w, [], now, cause=event)
        log.info(
            "OOM kill of %s/%s: memory floor %d bytes; %s%s: %s",
            workload,
            container,
            floor,
            p.action.value,
            f" ({p.guard})" if p.guard else "",
            p.reason,
        )

    @staticmethod
    def _memory_from_evidence(alert: AlertFired) -> int | None:
        for m in alert.evidence.metrics:
            if "memory" in m.name and m.unit == "bytes" and m.value > 0:
                return memory_bytes(m.value)
        return None

    # --- store -----------------------------------------------------------------------------------
    async def _load_usage(self, s: AsyncSession, ref: WorkloadRef) -> dict[str, ContainerUsage]:
        t = store.usage_checkpoints
        rows = await s.execute(
            select(t.c.container, t.c.state)
            .where(t.c.namespace == ref.namespace, t.c.workload == ref.name)
            .with_for_update()
        )
        return {r.container: ContainerUsage.from_json(r.state) for r in rows}

    async def _save_usage(
        self, s: AsyncSession, ref: WorkloadRef, usage: dict[str, ContainerUsage], now: float
    ) -> None:
        t = store.usage_checkpoints
        for name, u in usage.items():
            values = {"state": u.to_json(), "updated_at": _ts(now)}
            await s.execute(
                insert(t)
                .values(namespace=ref.namespace, workload=ref.name, container=name, **values)
                .on_conflict_do_update(index_elements=[t.c.namespace, t.c.workload, t.c.container], set_=values)
            )

    async def _load_state(self, s: AsyncSession, ref: WorkloadRef) -> dict[str, Any]:
        t = store.workload_state
        row = (
            await s.execute(select(t).where(t.c.namespace == ref.namespace, t.c.workload == ref.name).with_for_update())
        ).first()
        if row is None:
            return {"last_applied_at": None, "replica_history": [], "last_decision": None, "last_recommendation": None}
        return dict(row._mapping)

    async def _save_state(self, s: AsyncSession, ref: WorkloadRef, now: float, **values: Any) -> None:
        t = store.workload_state
        values["updated_at"] = _ts(now)
        base = {"replica_history": [], **values}
        await s.execute(
            insert(t)
            .values(namespace=ref.namespace, workload=ref.name, **base)
            .on_conflict_do_update(index_elements=[t.c.namespace, t.c.workload], set_=values)
        )

    async def _record_plan(
        self, s: AsyncSession, snap: Snapshot, p: Plan, ws: dict[str, Any], *, now: float, cause: Envelope | None
    ) -> str | None:
        """Publish the recommendation when its targets changed, audit the decision when it changed."""
        ref = snap.workload
        rec_id: str | None = None
        publishes = p.action in (Action.RECOMMEND, Action.BLOCKED, Action.APPLY, Action.DRY_RUN)
        fingerprint = _fingerprint(p) if publishes else ws["last_recommendation"]
        if publishes and fingerprint != ws["last_recommendation"]:
            rec_id = f"rec-{uuid.uuid4().hex[:20]}"
            payload = recommendation_payload(p, snap, rec_id, self.options.policy(ref.namespace).prices)
            await self._publish_recommendation(s, snap, p, payload, now=now, cause=cause)
        decision = _decision(p)
        if decision != ws["last_decision"]:
            await self.audit(
                s,
                ref,
                action="scale.apply",
                outcome=_OUTCOME[p.action],
                reason=(f"{p.action.value}: {p.reason}")[:2048],
                details={"decision": p.action.value, "guard": p.guard, "recommendation_id": rec_id},
                dry_run=p.action is Action.DRY_RUN,
                cause=cause,
                now=now,
            )
        await self._save_state(
            s,
            ref,
            now,
            replica_history=[[t, r] for t, r in p.replica_history],
            last_decision=decision,
            last_recommendation=fingerprint,
        )
        return rec_id

    async def _publish_recommendation(
        self, s: AsyncSession, snap: Snapshot, p: Plan, payload: ScaleRecommended, *, now: float, cause: Envelope | None
    ) -> None:
        ref = snap.workload
        r = store.recommendations
        await s.execute(
            r.update()
            .where(r.c.namespace == ref.namespace, r.c.workload == ref.name, r.c.status == "open")
            .values(status="superseded")
        )
        await s.execute(
            insert(r).values(
                id=payload.recommendation_id,
                namespace=ref.namespace,
                workload=ref.name,
                created_at=_ts(now),
                action=p.action.value,
                guard=p.guard,
                reason=payload.reason,
                status="open",
                payload=payload.model_dump(mode="json"),
            )
        )
        env = Envelope.build(
            payload, service=SERVICE, cluster=self.cluster_name, obj=ref.as_object_ref(), cause=cause, time=_ts(now)
        )
        await outbox_add(s, store.TABLES.outbox, env)
        self.savings.inc(min(0.0, payload.cost.monthly_delta) * -1)

    async def audit(
        self,
        s: AsyncSession,
        ref: WorkloadRef,
        *,
        action: str,
        outcome: AuditOutcome,
        reason: str,
        details: dict[str, Any],
        now: float,
        dry_run: bool = False,
        cause: Envelope | None = None,
        actor: Actor | None = None,
    ) -> None:
        entry = self.auditor.entry(
            action=action,
            target=ref.as_resource_ref(),
            outcome=outcome,
            reason=reason,
            details=details,
            dry_run=dry_run,
            cause=cause,
            actor=actor,
            time=_ts(now),
        )
        await outbox_add(s, store.TABLES.outbox, entry)

    # --- applying ---------------------------------------------------------------------------------
    async def _apply(
        self,
        snap: Snapshot,
        p: Plan,
        rec_id: str,
        now: float,
        cause: Envelope | None,
        *,
        actor: Actor,
        pods: frozenset[str] = frozenset(),
    ) -> str | None:
        new_rv: str | None = None
        if p.action is not Action.DRY_RUN:
            try:
                new_rv = await self.patch(snap, p, rec_id, now, pods=pods)
            except PATCH_ERRORS as exc:
                await self.patch_failed(snap, rec_id, exc, now, cause, actor=actor)
                raise
        async with self.db.sessions.begin() as s:
            await self.record_applied(s, snap, p, rec_id, now=now, cause=cause, actor=actor, new_rv=new_rv)
        self._wake()
        return new_rv

    async def patch(
        self, snap: Snapshot, p: Plan, rec_id: str, now: float, *, pods: frozenset[str] = frozenset()
    ) -> str | None:
        """The cluster writes of a plan: its running `pods` resized in place when the cluster serves it (and
        in-place resize is on), then one patch of the Deployment (a resourceVersion precondition) with the
        replicas and the record of the change; the pod template instead when in place is off or refused.
        The Deployment's new resourceVersion."""
        ref = snap.workload
        changed = [st for c, st in zip(snap.containers, p.step, strict=True) if st != c]
        path = "template"
        if changed and pods and self.in_place_resize:
            path = "in_place"
            for pod in sorted(pods):
                try:
                    await self.cluster.resize(ref.namespace, pod, changed)
                except (PermanentError, NotFoundError) as exc:
                    if pod != min(pods):
                        raise  # some pods are resized already: the next cycle sees them and plans again
                    log.warning("in-place resize of %s refused (%s): the pod template is patched instead", pod, exc)
                    path = "template_fallback"
                    break
        rv = await self.cluster.apply(
            ref,
            snap.resource_version,
            [] if path == "in_place" else changed,
            p.replicas_step,
            applied_at=now,
            recommendation_id=rec_id,
            resized_in_place=changed if path == "in_place" else (),
        )
        if changed:
            self.resizes.labels(path).inc()
        return rv

    async def patch_failed(
        self, snap: Snapshot, rec_id: str, exc: Exception, now: float, cause: Envelope | None, *, actor: Actor
    ) -> None:
        """Audit a patch the cluster refused (in a transaction of its own: the attempt is a fact)."""
        async with self.db.sessions.begin() as s:
            await self.audit(
                s,
                snap.workload,
                action="scale.apply",
                outcome=AuditOutcome.FAILED,
                reason=str(exc),
                details={"recommendation_id": rec_id, "resource_version": snap.resource_version},
                now=now,
                cause=cause,
                actor=actor,
            )
            await self._save_state(s, snap.workload, now, last_decision=f"failed|{exc}")
        self._wake()

    async def record_applied(
        self,
        s: AsyncSession,
        snap: Snapshot,
        p: Plan,
        rec_id: str,
        *,
        now: float,
        cause: Envelope | None,
        actor: Actor,
        new_rv: str | None,
    ) -> None:
        """Record a patched (or dry-run) plan in `s`: the applied change, the recommendation `applied`, the
        cooldown, `scale.applied` and the change on the timeline."""
        ref = snap.workload
        dry = p.action is Action.DRY_RUN
        step_cost = p.step_cost or cost_change(
            footprint(snap.containers, snap.replicas),
            footprint(p.step, p.replicas_step or snap.replicas),
            self.options.policy(ref.namespace).prices,
        )
        applied = ScaleApplied(
            recommendation_id=rec_id,
            workload=ref,
            containers=tuple(
                ContainerRecommendation(container=c.name, current=c.requirements(), recommended=st.requirements())
                for c, st in zip(snap.containers, p.step, strict=True)
            ),
            replicas=ReplicaRecommendation(current=snap.replicas, recommended=p.replicas_step)
            if p.replicas_step is not None
            else None,
            cost=CostEstimate(
                currency=self.options.prices.currency,
                monthly_now=step_cost.monthly_now,
                monthly_after=step_cost.monthly_after,
                monthly_delta=step_cost.monthly_delta,
            ),
            mode=p.mode,
            applied_by=actor,
            dry_run=dry,
            previous_revision=snap.revision,
        )
        await s.execute(
            insert(store.applied_changes).values(
                recommendation_id=rec_id,
                namespace=ref.namespace,
                workload=ref.name,
                applied_at=_ts(now),
                applied_by=actor.id,
                dry_run=dry,
                previous=[c.__dict__ for c in snap.containers] + [{"replicas": snap.replicas}],
                applied=[c.__dict__ for c in p.step] + [{"replicas": p.replicas_step}],
                resource_version_before=snap.resource_version,
                resource_version_after=new_rv,
            )
        )
        if not dry:
            r = store.recommendations
            await s.execute(r.update().where(r.c.id == rec_id).values(status="applied"))
            await self._save_state(s, ref, now, last_applied_at=_ts(now))
            await outbox_add(s, store.TABLES.outbox, applied_change(self.cluster_name, applied, new_rv, cause, now))
        env = Envelope.build(
            applied, service=SERVICE, cluster=self.cluster_name, obj=ref.as_object_ref(), cause=cause, time=_ts(now)
        )
        await outbox_add(s, store.TABLES.outbox, env)
