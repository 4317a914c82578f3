"""The planner: one workload's snapshot, its containers' usage, its history, the policy and the clock in;
a `Plan` out: the recommendation (targets, cost, risk, confidence) and what auto mode may do with it now.

Nothing here reads the cluster, the metrics source or the store; the executor gathers the snapshot and
applies the plan. Decisions, in order:

1. mode `off` -> nothing.
2. no usage yet -> no-op ("no usage yet").
3. every change below `min_change` and no replica change -> no-op (not worth a restart).
4. mode `recommend` -> publish only.
5. auto: confidence below `min_confidence` -> publish only (guard `confidence`).
6. auto: a rollout is under way -> blocked (guard `rollout`).
7. auto: within the cooldown of the last applied change -> blocked (guard `cooldown`), except a scale-up of
   replicas, which goes through alone (load does not wait an hour; the HPA does not hold scale-ups either).
8. auto: the applied step is clamped to `max_step_down`/`max_step_up`; replicas to min replicas and the
   PDB's minAvailable; an HPA-managed workload never gets a replica change.
9. dry run -> everything decided and recorded, nothing changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from opsbus.common.events.payloads.common import ResourceQuantities, ResourceRequirements, WorkloadRef
from opsbus.common.events.payloads.scale import (
    ContainerRecommendation,
    CostEstimate,
    ReplicaRecommendation,
    Risk,
    ScaleMode,
    ScaleRecommended,
)
from opsbus.optimizer.domain.cost import CostChange, Footprint, Prices, assess_risk, cost_change
from opsbus.optimizer.domain.forecast import Forecast
from opsbus.optimizer.domain.guardrails import (
    Guardrails,
    RolloutState,
    clamp_step,
    cooldown_left,
    relative_change,
    replica_floor,
)
from opsbus.optimizer.domain.horizontal import HorizontalPolicy, recommend_replicas
from opsbus.optimizer.domain.predictive import MINUTES_PER_MONTH, PredictivePolicy, scale, size_cpu, size_memory
from opsbus.optimizer.domain.vertical import ContainerUsage, VerticalPolicy, VerticalTarget, recommend


@dataclass(frozen=True)
class Policy:
    mode: ScaleMode = ScaleMode.RECOMMEND
    vertical: VerticalPolicy = field(default_factory=VerticalPolicy)
    horizontal: HorizontalPolicy = field(default_factory=HorizontalPolicy)
    guardrails: Guardrails = field(default_factory=Guardrails)
    prices: Prices = field(default_factory=Prices)


@dataclass(frozen=True)
class ContainerSpec:
    """One container's resources as the workload's pod template has them (millicores, bytes)."""

    name: str
    cpu_request: int | None = None
    cpu_limit: int | None = None
    memory_request: int | None = None
    memory_limit: int | None = None

    def requirements(self) -> ResourceRequirements:
        return ResourceRequirements(
            requests=ResourceQuantities(cpu_millicores=self.cpu_request, memory_bytes=self.memory_request),
            limits=ResourceQuantities(cpu_millicores=self.cpu_limit, memory_bytes=self.memory_limit),
        )


@dataclass(frozen=True)
class Snapshot:
    workload: WorkloadRef
    replicas: int
    rollout: RolloutState
    containers: tuple[ContainerSpec, ...]
    resource_version: str = ""
    revision: int | None = None
    hpa: str | None = None  # name of the HPA that manages the workload's replicas
    pdb_min_available: int | None = None
    cpu_usage_millicores: float | None = None  # recent total over the workload's pods (horizontal input)
    applied_at: float | None = None  # the optimizer's last change, as annotated on the object itself
    forecasts: Forecasts | None = None  # present: forecast-driven sizing and scaling (`domain.predictive`)


@dataclass(frozen=True)
class Forecasts:
    """What the forecaster predicted for this workload, and what the cluster lets the planner do with it."""

    cpu: dict[str, Forecast] = field(default_factory=dict)  # per container, millicores per pod
    memory: dict[str, Forecast] = field(default_factory=dict)  # per container, bytes per pod
    demand: Forecast | None = None  # the workload's total CPU, millicores (horizontal)
    upper_quantile: float = 0.98
    in_place_resize: bool = False  # the cluster serves the pods' `resize` subresource
    startup_seconds: float = 60.0  # measured: the lead time of a predictive scale-up
    policy: PredictivePolicy = field(default_factory=PredictivePolicy)


@dataclass(frozen=True)
class History:
    last_applied_at: float | None = None
    replica_history: tuple[tuple[float, int], ...] = ()


def last_change(snapshot: Snapshot, history: History) -> float | None:
    """The latest change the optimizer made: its store's record, or the annotation it wrote with the patch
    (a restart between the patch and the store's commit must not let a second step through the cooldown)."""
    known = [t for t in (history.last_applied_at, snapshot.applied_at) if t is not None]
    return max(known) if known else None


class Action(StrEnum):
    OFF = "off"
    NOOP = "noop"
    RECOMMEND = "recommend"
    BLOCKED = "blocked"
    APPLY = "apply"
    DRY_RUN = "dry_run"


@dataclass(frozen=True)
class Plan:
    workload: WorkloadRef
    action: Action
    reason: str
    guard: str | None = None
    mode: ScaleMode = ScaleMode.RECOMMEND
    targets: tuple[ContainerSpec, ...] = ()  # what the usage calls for
    step: tuple[ContainerSpec, ...] = ()  # what auto mode applies now (targets within the step clamp)
    replicas_current: int = 0
    replicas_target: int | None = None
    replicas_step: int | None = None
    utilization: float | None = None
    confidence: float = 0.0
    risk: Risk = Risk.LOW
    cost: CostChange | None = None  # of the targets
    step_cost: CostChange | None = None  # of the step auto mode applies now
    target_utilization: float | None = None
    basis: dict[str, str] = field(default_factory=dict)
    observation_seconds: float = 0.0
    replica_history: tuple[tuple[float, int], ...] = ()

    @property
    def changes(self) -> bool:
        return self.action in (Action.APPLY, Action.DRY_RUN)


def _scaled_limit(limit: int | None, request: int | None, new_request: int) -> int | None:
    """Limits keep their proportion to requests (the VPA's RequestsAndLimits)."""
    if limit is None:
        return None
    if not request:
        return max(limit, new_request)
    return max(new_request, round(limit * new_request / request))


def _own_limit(limit: int | None, target: int | None, new_request: int) -> int | None:
    """A limit the recommender set from usage replaces an existing one; a container without a limit keeps none."""
    if limit is None or target is None:
        return None
    return max(new_request, target)


def _resized(
    spec: ContainerSpec, cpu: int, memory: int, cpu_limit: int | None = None, memory_limit: int | None = None
) -> ContainerSpec:
    """`cpu_limit`/`memory_limit`: limits from usage; None keeps the limit's ratio to the request."""
    return ContainerSpec(
        name=spec.name,
        cpu_request=cpu,
        cpu_limit=_own_limit(spec.cpu_limit, cpu_limit, cpu)
        if cpu_limit is not None
        else _scaled_limit(spec.cpu_limit, spec.cpu_request, cpu),
        memory_request=memory,
        memory_limit=_own_limit(spec.memory_limit, memory_limit, memory)
        if memory_limit is not None
        else _scaled_limit(spec.memory_limit, spec.memory_request, memory),
    )


def footprint(containers: tuple[ContainerSpec, ...], replicas: int) -> Footprint:
    return Footprint(
        cpu_millicores=sum(c.cpu_request or 0 for c in containers),
        memory_bytes=sum(c.memory_request or 0 for c in containers),
        replicas=replicas,
    )


def _grows(current: int | None, new: int | None, min_change: float) -> bool:
    return current is not None and new is not None and new >= current * (1 + min_change)


def _significant(current: ContainerSpec, new: ContainerSpec, min_change: float) -> bool:
    """Requests moved by `min_change`, or a limit must grow by it (a limit usage is reaching is worth a change
    on its own; a limit that could shrink waits for the next request change)."""
    return (
        relative_change(current.cpu_request, new.cpu_request or 0) >= min_change
        or relative_change(current.memory_request, new.memory_request or 0) >= min_change
        or _grows(current.cpu_limit, new.cpu_limit, min_change)
        or _grows(current.memory_limit, new.memory_limit, min_change)
    )


def plan(snapshot: Snapshot, usage: dict[str, ContainerUsage], policy: Policy, history: History, now: float) -> Plan:
    """Decide for one workload (see the module docstring for the order of decisions)."""
    w = snapshot.workload
    base = Plan(workload=w, action=Action.NOOP, reason="", mode=policy.mode, replicas_current=snapshot.replicas)
    if policy.mode is ScaleMode.OFF:
        return _with(base, action=Action.OFF, reason=f"optimizer mode is off for namespace {w.namespace}")
    rec = _recommendation(base, snapshot, usage, policy, history=history, now=now)
    if rec is None:
        return _with(base, reason="no usage yet")
    last = last_change(snapshot, history)
    oom = any(u.last_oom_at is not None and (last is None or u.last_oom_at > last) for u in usage.values())
    return _decide(rec, snapshot, policy, history, now, oom=oom)


def _recommendation(
    base: Plan, snapshot: Snapshot, usage: dict[str, ContainerUsage], policy: Policy, *, history: History, now: float
) -> Plan | None:
    targets: list[ContainerSpec] = []
    vts: list[VerticalTarget] = []
    basis: dict[str, str] = {}
    for spec in snapshot.containers:
        state = usage.get(spec.name)
        vt = recommend(state, policy.vertical, now) if state is not None else None
        if vt is None:
            targets.append(spec)
            continue
        if snapshot.forecasts is not None:
            vt = _forecast_sized(vt, spec.name, snapshot.forecasts, now)
        vts.append(vt)
        basis[spec.name] = vt.basis
        targets.append(
            _resized(spec, vt.cpu_millicores, vt.memory_bytes, vt.cpu_limit_millicores, vt.memory_limit_bytes)
        )
    if not vts:
        return None
    conf = min(v.confidence for v in vts)
    recent_oom = any(
        s.last_oom_at is not None and now - s.last_oom_at < policy.vertical.half_life_seconds for s in usage.values()
    )
    risk = assess_risk(
        memory_over_share=max(v.memory_over_share for v in vts),
        cpu_over_share=max(v.cpu_over_share for v in vts),
        confidence=conf,
        recent_oom=recent_oom,
    )
    replicas_target: int | None = None
    utilization: float | None = None
    replica_history = history.replica_history
    hreason = ""
    requested_cpu = sum(c.cpu_request or 0 for c in snapshot.containers) * snapshot.replicas
    if snapshot.hpa is not None:
        hreason = f"replicas left to HPA {snapshot.hpa}"
    elif snapshot.cpu_usage_millicores is not None and requested_cpu > 0:
        utilization = snapshot.cpu_usage_millicores / requested_cpu
        f = snapshot.forecasts
        if f is not None:
            d = scale(
                snapshot.replicas,
                snapshot.cpu_usage_millicores,
                requested_cpu / max(1, snapshot.replicas),
                f.demand,
                now,
                startup_seconds=f.startup_seconds,
                horizontal=policy.horizontal,
                history=history.replica_history,
                policy=f.policy,
            )
            replica_history, hreason, recommended = d.history, f"{d.mode}: {d.reason}", d.replicas
        else:
            hr = recommend_replicas(snapshot.replicas, utilization, policy.horizontal, history.replica_history, now)
            replica_history, hreason, recommended = hr.history, hr.reason, hr.recommended
        if recommended != snapshot.replicas:
            replicas_target = recommended
    rec = _with(
        base,
        targets=tuple(targets),
        step=tuple(targets),
        replicas_target=replicas_target,
        replicas_step=replicas_target,
        utilization=utilization,
        target_utilization=policy.horizontal.target_utilization if utilization is not None else None,
        confidence=conf,
        risk=risk,
        basis=basis,
        observation_seconds=min(v.observed_seconds for v in vts),
        replica_history=replica_history,
    )
    before = footprint(snapshot.containers, snapshot.replicas)
    after = footprint(tuple(targets), replicas_target or snapshot.replicas)
    rec = _with(rec, cost=cost_change(before, after, policy.prices))
    return _with(rec, reason=_summary(snapshot, rec, hreason))


def _forecast_sized(vt: VerticalTarget, container: str, f: Forecasts, now: float) -> VerticalTarget:
    """The percentile target with CPU from the forecast (when reliable) and memory raised by it (never lowered):
    the basis says which mode sized CPU, on what forecast, and the expected minutes above the request."""
    cpu = size_cpu(
        vt.cpu_millicores,
        vt.cpu_over_share,
        f.cpu.get(container),
        f.upper_quantile,
        now,
        in_place=f.in_place_resize,
        policy=f.policy,
    )
    memory, raised = size_memory(vt.memory_bytes, f.memory.get(container), now)
    notes = [f"cpu {cpu.mode}: {cpu.reason}; ~{cpu.minutes_above_per_month:.0f} min/month above request"]
    if raised:
        notes.append(raised)
    cpu_limit = None if vt.cpu_limit_millicores is None else max(vt.cpu_limit_millicores, 2 * cpu.millicores)
    memory_limit = None if vt.memory_limit_bytes is None else max(vt.memory_limit_bytes, memory)
    return replace(
        vt,
        cpu_millicores=cpu.millicores,
        memory_bytes=memory,
        cpu_limit_millicores=cpu_limit,
        memory_limit_bytes=memory_limit,
        cpu_over_share=cpu.minutes_above_per_month / MINUTES_PER_MONTH,
        basis=f"{'; '.join(notes)}; fallback {vt.basis}",
    )


def _decide(  # noqa: PLR0911
    rec: Plan, snapshot: Snapshot, policy: Policy, history: History, now: float, *, oom: bool
) -> Plan:
    """`oom`: an OOM kill since the last change; the memory bump is then not held back by confidence or
    cooldown (waiting costs more crashes), only by a rollout in progress."""
    g = policy.guardrails
    pairs = list(zip(snapshot.containers, rec.targets, strict=True))
    if not any(_significant(c, t, g.min_change) for c, t in pairs) and rec.replicas_target is None:
        return _with(rec, action=Action.NOOP, reason=f"requests within {g.min_change:.0%} of the targets; {rec.reason}")
    if policy.mode is ScaleMode.RECOMMEND:
        return _with(rec, action=Action.RECOMMEND)
    if rec.confidence < g.min_confidence and not oom:
        why = f"{rec.reason}; not applied: confidence {rec.confidence:.2f} < {g.min_confidence:.2f}"
        return _with(rec, action=Action.RECOMMEND, guard="confidence", reason=why)
    rollout = snapshot.rollout.active()
    if rollout is not None:
        return _with(rec, action=Action.BLOCKED, guard="rollout", reason=f"rollout in progress: {rollout}")
    left = cooldown_left(last_change(snapshot, history), now, g)
    scale_up = rec.replicas_target is not None and rec.replicas_target > snapshot.replicas
    notes: list[str] = []
    held = left > 0 and not oom
    if held and not scale_up:
        why = f"cooldown: {left:.0f}s left since the last change"
        return _with(rec, action=Action.BLOCKED, guard="cooldown", reason=why)
    if held:  # more replicas under load do not wait (as the HPA's scale-up); the rest of the change does
        notes.append(f"cooldown: {left:.0f}s left, only the scale-up applied")
    wanted = tuple(c if held or not _significant(c, t, g.min_change) else t for c, t in pairs)
    steps = tuple(_step(c, t, g) if t is not c else c for c, t in zip(snapshot.containers, wanted, strict=True))
    if steps != wanted:
        notes.append(f"step clamped to -{g.max_step_down:.0%}/+{g.max_step_up:.0%}")
    replicas_step = rec.replicas_target
    if replicas_step is not None and replicas_step < snapshot.replicas:
        floor = replica_floor(g.min_replicas, snapshot.pdb_min_available)
        if replicas_step < floor:
            replicas_step = floor if floor < snapshot.replicas else None
            notes.append(
                f"scale-down held at {floor} (min replicas {g.min_replicas}, "
                f"PDB minAvailable {snapshot.pdb_min_available})"
            )
    if steps == snapshot.containers and replicas_step is None:
        return _with(rec, action=Action.BLOCKED, guard="floor", reason="; ".join(notes) or "nothing left to apply")
    cost = cost_change(
        footprint(snapshot.containers, snapshot.replicas),
        footprint(steps, replicas_step or snapshot.replicas),
        policy.prices,
    )
    reason = rec.reason + ("; " + "; ".join(notes) if notes else "")
    action = Action.DRY_RUN if g.dry_run else Action.APPLY
    return _with(rec, action=action, reason=reason, step=steps, replicas_step=replicas_step, step_cost=cost)


def _step(current: ContainerSpec, target: ContainerSpec, g: Guardrails) -> ContainerSpec:
    """The target within the step clamp: requests and limits each move at most one step; a limit never
    ends below its request."""
    cpu = clamp_step(current.cpu_request, target.cpu_request or 0, g)
    memory = clamp_step(current.memory_request, target.memory_request or 0, g)

    def limit(now: int | None, wanted: int | None, request: int) -> int | None:
        if now is None or wanted is None:
            return wanted
        return max(request, clamp_step(now, wanted, g))

    return ContainerSpec(
        name=current.name,
        cpu_request=cpu,
        cpu_limit=limit(current.cpu_limit, target.cpu_limit, cpu),
        memory_request=memory,
        memory_limit=limit(current.memory_limit, target.memory_limit, memory),
    )


def _summary(snapshot: Snapshot, p: Plan, hreason: str) -> str:
    parts = []
    for c, t in zip(snapshot.containers, p.targets, strict=True):
        parts.append(
            f"{c.name}: cpu {c.cpu_request or 0}m->{t.cpu_request}m, memory "
            f"{(c.memory_request or 0) >> 20}Mi->{(t.memory_request or 0) >> 20}Mi"
        )
    if p.replicas_target is not None:
        parts.append(f"replicas {snapshot.replicas}->{p.replicas_target} ({hreason})")
    elif hreason:
        parts.append(hreason)
    if p.cost is not None:
        parts.append(f"monthly {p.cost.monthly_now:.2f}->{p.cost.monthly_after:.2f}")
    return "; ".join(parts)


def _with(p: Plan, **changes: Any) -> Plan:
    return replace(p, **changes)


def recommendation_payload(p: Plan, snapshot: Snapshot, recommendation_id: str, prices: Prices) -> ScaleRecommended:
    """The `scale.recommended` payload for a plan that recommends something."""
    cost = p.cost or cost_change(
        footprint(snapshot.containers, snapshot.replicas), footprint(snapshot.containers, snapshot.replicas), prices
    )
    return ScaleRecommended(
        recommendation_id=recommendation_id,
        workload=p.workload,
        containers=tuple(
            ContainerRecommendation(
                container=c.name, current=c.requirements(), recommended=t.requirements(), basis=p.basis.get(c.name)
            )
            for c, t in zip(snapshot.containers, p.targets, strict=True)
        ),
        replicas=ReplicaRecommendation(
            current=snapshot.replicas,
            recommended=p.replicas_target,
            utilization=p.utilization,
            target_utilization=p.target_utilization,
        )
        if p.replicas_target is not None
        else None,
        cost=CostEstimate(
            currency=prices.currency,
            monthly_now=cost.monthly_now,
            monthly_after=cost.monthly_after,
            monthly_delta=cost.monthly_delta,
        ),
        mode=p.mode,
        confidence=round(p.confidence, 4),
        risk=p.risk,
        reason=p.reason[:1024],
        observation_seconds=int(p.observation_seconds),
    )
