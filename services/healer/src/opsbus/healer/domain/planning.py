"""The pure planner: (alert state + cluster snapshot + policy + history + clock) -> a plan or a reasoned no-op.

Every safety guard is checked here, in one place, in a fixed order, and each result is reported (the
`GuardCheck`s travel in `recovery.planned` and in the audit trail), so "why did the healer do nothing" always
has an answer. The executor gathers the inputs (it reads the alert state again right before planning, so a
resolved alert is never acted on: Robusta#345) and applies the result; this module never performs I/O and
never reads the clock: `now` is an argument.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta

from opsbus.common.events.payloads import (
    ActionKind,
    ApprovalRequest,
    GuardCheck,
    PolicyRef,
    RecoveryAction,
    ResourceRef,
    Severity,
    VerificationSpec,
    WorkloadRef,
)
from opsbus.healer.domain.conditions import History, TopCause, describe, judge
from opsbus.healer.domain.incidents import Spread, change_preceded, changed_at, workload_wide
from opsbus.healer.domain.policy import DISRUPTIVE, NODE_ACTIONS, Policy, Step, When


@dataclass(frozen=True, slots=True)
class FreezeWindow:
    """No automatic action inside the window: absolute (`start`/`end`) or weekly (`weekdays` + times, UTC)."""

    name: str
    start: datetime | None = None
    end: datetime | None = None
    weekdays: frozenset[int] = frozenset()  # 0 = Monday
    daily_start: time | None = None
    daily_end: time | None = None

    def contains(self, now: datetime) -> bool:
        if self.start is not None and self.end is not None:
            return self.start <= now < self.end
        if self.daily_start is not None and self.daily_end is not None:
            utc = now.astimezone(UTC)
            if self.weekdays and utc.weekday() not in self.weekdays:
                return False
            t = utc.time().replace(tzinfo=None)
            if self.daily_start <= self.daily_end:
                return self.daily_start <= t < self.daily_end
            return t >= self.daily_start or t < self.daily_end  # across midnight
        return False

    def ends(self, now: datetime) -> datetime:
        """When the window that contains `now` closes: the time a deferral by it is due."""
        if self.start is not None and self.end is not None:
            return self.end
        if self.daily_start is None or self.daily_end is None:
            return now
        utc = now.astimezone(UTC)
        end = datetime.combine(utc.date(), self.daily_end, tzinfo=UTC)
        return end if end > utc else end + timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Guards:
    """The service-wide guard settings, as plain data."""

    dry_run: bool = False
    rate_limit_actions: int = 10
    rate_limit_window: float = 300.0
    protected_namespaces: frozenset[str] = frozenset({"kube-system", "kube-public", "kube-node-lease", "opsbus"})
    freeze_windows: tuple[FreezeWindow, ...] = ()
    freshness_seconds: float = 900.0
    recheck_seconds: float = 30.0  # a blast-radius deferral looks again after this long (pods come back)


@dataclass(frozen=True, slots=True)
class AlertState:
    """The alert as the healer knows it at planning time (the latest fired/resolved it has seen)."""

    fingerprint: str
    alertname: str
    severity: Severity
    labels: dict[str, str]
    namespace: str | None
    event_time: datetime  # when the triggering alert.fired was published
    firing: bool
    workload: WorkloadRef | None = None

    @property
    def target_key(self) -> str:
        """What cooldown and the attempt budget count against: the workload, else the pod or node."""
        if self.workload is not None:
            return str(self.workload)
        if node := self.labels.get("node"):
            return f"Node/_/{node}"
        return f"Pod/{self.namespace}/{self.labels.get('pod', self.fingerprint)}"


@dataclass(frozen=True, slots=True)
class Revision:
    """One rollout revision of a Deployment (its ReplicaSet) and a digest of its pod template, computed
    without the things that change on a restart (`restartedAt` annotation, `pod-template-hash` label)."""

    number: int
    template_digest: str
    created_at: datetime | None = None  # when its ReplicaSet was created (the rollout of this revision)


def rollback_revision(current: int | None, revisions: Sequence[Revision]) -> int | None:
    """The revision a rollback should return to: the newest older one whose template really differs from the
    current one. A rollout restart makes a revision with the same template: `rollout undo` would land on the
    bad release again, so restarts are skipped. None when there is nothing different to go back to."""
    by_number = {r.number: r for r in revisions}
    now = by_number.get(current) if current is not None else None
    if now is None:
        return None
    older = sorted((r for r in revisions if r.number < now.number), key=lambda r: r.number, reverse=True)
    return next((r.number for r in older if r.template_digest != now.template_digest), None)


# The labels the deployer puts on the extra stack of a rollout it drives (its README: `<name>-canary` and
# `<name>-green` Deployments and their pods); that stack exists only while the rollout is in flight.
ROLLOUT_STACK_LABELS = {"opsbus.io/canary": "the canary", "opsbus.io/green": "the preview (green) stack"}


def rollout_stack(labels: Mapping[str, str] | None) -> str | None:
    """Which rollout stack an object with these labels belongs to (for `Snapshot.rollout_stack`), or None."""
    return next((what for label, what in ROLLOUT_STACK_LABELS.items() if (labels or {}).get(label) == "true"), None)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the executor read from the cluster about the step's target just before planning."""

    target: ResourceRef
    exists: bool = True
    resource_version: str | None = None
    workload_pods_total: int = 0
    workload_pods_disrupted: int = 0  # pods already terminating or evicted
    workload_pods_ready: int | None = None  # None: not counted
    target_ready: bool = False  # the target pod is Ready (deleting it takes serving capacity away)
    recreate: bool = False  # a Deployment with the Recreate strategy (a restart stops every pod at once)
    nodes_unschedulable: tuple[str, ...] = ()
    memory_limit_bytes: int | None = None
    container: str | None = None
    revision: int | None = None  # a Deployment's current rollout revision
    revisions: tuple[Revision, ...] = ()
    # Set when the target is part of a rollout the deployer is driving: a pod or Deployment of its canary or
    # blue-green preview stack (label `opsbus.io/canary` / `opsbus.io/green`); says which, for the audit trail.
    rollout_stack: str | None = None


@dataclass(frozen=True, slots=True)
class PastAttempt:
    recovery_id: str
    target_key: str
    action: ActionKind
    started_at: datetime
    dry_run: bool = False


@dataclass(frozen=True, slots=True)
class Grant:
    approver: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class IncidentFacts:
    """The incident the recovery leads: when its first alert fired, how many of its alerts fire now, and the
    analyzer's latest top cause of it (None: no diagnosis has arrived)."""

    first_alert_at: datetime
    firing_alerts: int = 1
    diagnosis: TopCause | None = None


@dataclass(frozen=True, slots=True)
class PlanningInput:
    """One argument object: it grows without breaking callers."""

    recovery_id: str
    alert: AlertState
    policy: Policy
    policy_version: int
    step: int  # 1-based
    snapshot: Snapshot | None
    history: Sequence[PastAttempt]
    guards: Guards
    now: datetime
    grant: Grant | None = None
    continuing: bool = False  # a later step, or a step resumed after approval: freshness no longer applies
    incident: IncidentFacts | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    recovery_id: str
    policy: PolicyRef
    step: int
    steps_total: int
    action: RecoveryAction
    verification: VerificationSpec
    guards: tuple[GuardCheck, ...]
    reason: str
    dry_run: bool = False
    approval: ApprovalRequest | None = None
    preconditions: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NoOp:
    """A deliberate non-action. `escalate`: humans must take over; `retry_after`: not now, a deferral that is
    planned again after that many seconds if the alert still fires (never a drop)."""

    recovery_id: str
    step: int
    guard: str
    reason: str
    guards: tuple[GuardCheck, ...]
    escalate: bool = False
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class Pass:
    """The step does not apply to this incident (a pod step when the whole workload fails, a rollback when no
    change preceded the fault): the ladder goes on with the next step, and the reason is recorded."""

    recovery_id: str
    step: int
    reason: str
    guards: tuple[GuardCheck, ...]


Decision = Plan | NoOp | Pass


def target_for(step: Step, alert: AlertState) -> ResourceRef | None:  # noqa: PLR0911 - one case per action
    """The object a step acts on, from the alert's labels and workload."""
    ns = alert.namespace
    if step.action in NODE_ACTIONS:
        node = alert.labels.get("node")
        return ResourceRef(kind="Node", name=node, api_version="v1") if node else None
    if step.action is ActionKind.DELETE_POD:
        pod = alert.labels.get("pod")
        return ResourceRef(kind="Pod", name=pod, namespace=ns, api_version="v1") if pod and ns else None
    if step.action is ActionKind.DELETE_FAILED_PODS:
        if alert.workload is not None:
            return alert.workload.as_resource_ref()
        return ResourceRef(kind="Namespace", name=ns, api_version="v1") if ns else None
    if step.action is ActionKind.NOTIFY_ONLY:
        if alert.workload is not None:
            return alert.workload.as_resource_ref()
        pod = alert.labels.get("pod")
        if pod and ns:
            return ResourceRef(kind="Pod", name=pod, namespace=ns, api_version="v1")
        node = alert.labels.get("node")
        return ResourceRef(kind="Node", name=node, api_version="v1") if node else None
    return alert.workload.as_resource_ref() if alert.workload is not None else None


def _passed(name: str, detail: str) -> GuardCheck:
    return GuardCheck(name=name, passed=True, detail=detail[:1024])


@dataclass(frozen=True, slots=True)
class Refusal:
    """A guard that failed: `retry_after` set means "not now" (a deferral), else "nothing to do"."""

    guard: str
    reason: str
    retry_after: float | None = None


def alert_guards(alert: AlertState, g: Guards, now: datetime, *, continuing: bool) -> list[GuardCheck | Refusal]:
    """Guards 1-2, which need only the alert: its freshness (a first step only) and that it still fires."""
    out: list[GuardCheck | Refusal] = []
    age = (now - alert.event_time).total_seconds()
    if not continuing:
        if age > g.freshness_seconds:
            return [
                Refusal("freshness", f"alert is {age:.0f}s old, beyond the {g.freshness_seconds:.0f}s freshness bound")
            ]
        out.append(_passed("freshness", f"alert is {age:.0f}s old (bound {g.freshness_seconds:.0f}s)"))
    if not alert.firing:
        return [*out, Refusal("alert_firing", "the alert resolved before execution: nothing to remediate")]
    out.append(_passed("alert_firing", "the alert is still firing"))
    return out


def timing_guards(
    *,
    recovery_id: str,
    alert: AlertState,
    policy: Policy,
    step: Step,
    history: Sequence[PastAttempt],
    g: Guards,
    now: datetime,
) -> list[GuardCheck | Refusal]:
    """Guards 5-7, which need only the clock and the history, each a deferral when it fails: freeze windows,
    the attempt budget and cooldown per target (st2contrib#647; dry runs change nothing and do not count),
    the cluster-wide rate limit. Like blast radius: defer, never drop."""
    out: list[GuardCheck | Refusal] = []
    frozen = next((w for w in g.freeze_windows if w.contains(now)), None)
    if frozen is not None:
        until = frozen.ends(now)
        wait = max((until - now).total_seconds(), 1.0)
        return [Refusal("freeze_window", f"inside freeze window {frozen.name} until {until.isoformat()}", wait)]
    out.append(_passed("freeze_window", "no freeze window is active"))
    real = [a for a in history if not a.dry_run]
    key = alert.target_key
    window_start = now - timedelta(seconds=policy.attempt_window)
    on_target = [a for a in real if a.target_key == key and a.started_at >= window_start]
    if len(on_target) >= policy.max_attempts:
        freed = min(a.started_at for a in on_target) + timedelta(seconds=policy.attempt_window)
        reason = f"{len(on_target)}/{policy.max_attempts} actions on {key} within {policy.attempt_window:.0f}s"
        return [*out, Refusal("attempt_budget", reason, max((freed - now).total_seconds(), 1.0))]
    out.append(_passed("attempt_budget", f"{len(on_target)}/{policy.max_attempts} actions on {key}"))
    others = [a for a in real if a.target_key == key and a.recovery_id != recovery_id]
    last = max((a.started_at for a in others), default=None)
    if last is not None and (since := (now - last).total_seconds()) < policy.cooldown:
        reason = f"{key} was remediated {since:.0f}s ago (cooldown {policy.cooldown:.0f}s)"
        return [*out, Refusal("cooldown", reason, max(policy.cooldown - since, 1.0))]
    out.append(_passed("cooldown", "no recent remediation" if last is None else f"last one {since:.0f}s ago"))
    if step.action is not ActionKind.NOTIFY_ONLY:
        rate_start = now - timedelta(seconds=g.rate_limit_window)
        recent = sorted(a.started_at for a in real if a.started_at >= rate_start)
        if len(recent) >= g.rate_limit_actions:
            retry = (recent[0] + timedelta(seconds=g.rate_limit_window) - now).total_seconds()
            reason = f"{len(recent)} actions in the last {g.rate_limit_window:.0f}s (limit {g.rate_limit_actions})"
            return [*out, Refusal("rate_limit", reason, max(retry, 1.0))]
        out.append(_passed("rate_limit", f"{len(recent)}/{g.rate_limit_actions} actions in the window"))
    return out


def plan(inp: PlanningInput) -> Decision:  # noqa: PLR0911, PLR0912, PLR0915 - one guard after the other, in order
    """Decide what to do for one ladder step, checking every guard."""
    policy, alert, now, g = inp.policy, inp.alert, inp.now, inp.guards
    step = policy.ladder[inp.step - 1]
    checks: list[GuardCheck] = []

    def refuse(guard: str, reason: str, *, escalate: bool = False, retry_after: float | None = None) -> NoOp:
        failed = GuardCheck(name=guard, passed=False, detail=reason[:1024])
        return NoOp(inp.recovery_id, inp.step, guard, reason, (*checks, failed), escalate, retry_after)

    # 1. Stale alerts are not replayed (StackStorm#4009). 2. Act only on an alert still firing now (Robusta#345).
    for c in alert_guards(alert, g, now, continuing=inp.continuing):
        if isinstance(c, Refusal):
            return refuse(c.guard, c.reason)
        checks.append(c)
    age, key = (now - alert.event_time).total_seconds(), alert.target_key

    # 3. The target must exist (and is pinned by uid/resourceVersion for the write).
    snap = inp.snapshot
    if snap is None:
        return refuse(
            "target", f"{step.action.value} has no target: the alert lacks the labels to name one", escalate=True
        )
    if not snap.exists:
        return refuse("target", f"{snap.target.kind}/{snap.target.name} no longer exists")
    checks.append(_passed("target", f"{snap.target.kind}/{snap.target.namespace or '_'}/{snap.target.name} exists"))

    # 3b. A rollout's canary or preview stack is the deployer's: its analysis judges the new version and removes
    # it when it fails. Deleting its pods would hide the evidence (restart counts) and a restart or rollback of
    # it would fight the rollout, so the healer leaves it alone (nothing to escalate: the deployer reports).
    if snap.rollout_stack is not None:
        return refuse(
            "rollout",
            f"{snap.target.kind}/{snap.target.name} belongs to {snap.rollout_stack} of a rollout the deployer is "
            "driving: its analysis judges the new version and rolls it back if it fails",
        )
    checks.append(_passed("rollout", "not part of a rollout's canary or preview stack"))

    # 3c. Does the step apply to this incident? Not a pod step when the workload fails wider than its pods can
    # be replaced one at a time, and not a step whose `when` the workload's rollout history contradicts.
    firing = inp.incident.firing_alerts if inp.incident else 1
    spread = Spread(snap.workload_pods_total, snap.workload_pods_ready, firing)
    if step.action is ActionKind.DELETE_POD and workload_wide(spread, policy.blast_radius.max_pod_fraction):
        return Pass(
            inp.recovery_id,
            inp.step,
            f"workload-wide: {spread.failing} of {spread.total} pods fail ({firing} alerts): the workload is acted "
            "on, not its pods one by one",
            (*checks, _passed("scope", f"workload-wide ({spread.failing}/{spread.total} pods fail)")),
        )
    if step.when is not When.ALWAYS:
        first = inp.incident.first_alert_at if inp.incident else alert.event_time
        change = changed_at(snap.revision, snap.revisions)
        changed = change_preceded(change, first, policy.change_window)
        what = (
            f"revision {snap.revision} rolled out at {change.isoformat()}"
            if changed and change
            else f"no rollout within {policy.change_window:.0f}s before the first alert"
        )
        diagnosis = inp.incident.diagnosis if inp.incident else None
        verdict = judge(step.when, History(changed, what), diagnosis, age)
        if verdict.wait is not None:
            return refuse("diagnosis", verdict.detail, retry_after=max(verdict.wait, 1.0))
        if not verdict.applies:
            reason = f"{step.action.value} is for when: {describe(step.when)}; {verdict.detail}"
            return Pass(inp.recovery_id, inp.step, reason, tuple(checks))
        checks.append(_passed("when", f"{describe(step.when)}: {verdict.detail}"))

    # 4. Protected namespaces are never touched.
    ns = snap.target.namespace or alert.namespace
    if ns is not None and ns in g.protected_namespaces:
        return refuse("protected_namespace", f"namespace {ns} is protected", escalate=True)
    checks.append(_passed("protected_namespace", f"namespace {ns or '_'} is not protected"))

    # 5. Freeze windows. 6. Attempt budget and cooldown per target. 7. Cluster-wide rate limit.
    timing = timing_guards(
        recovery_id=inp.recovery_id, alert=alert, policy=policy, step=step, history=inp.history, g=g, now=now
    )
    for c in timing:
        if isinstance(c, Refusal):
            return refuse(c.guard, c.reason, retry_after=c.retry_after)
        checks.append(c)

    # 8. Blast radius.
    br = policy.blast_radius
    if step.action is ActionKind.DELETE_POD:
        allowed = max(1, math.floor(snap.workload_pods_total * br.max_pod_fraction))
        if snap.workload_pods_disrupted + 1 > allowed:
            return refuse(
                "blast_radius",
                f"{snap.workload_pods_disrupted} of {snap.workload_pods_total} pods already disrupted; "
                f"at most {allowed} at a time",
                retry_after=g.recheck_seconds,
            )
        if snap.target_ready and snap.workload_pods_ready is not None and snap.workload_pods_ready <= 1:
            return refuse(
                "blast_radius",
                f"{snap.target.name} is the last ready replica of its workload: never taken away",
                retry_after=g.recheck_seconds,
            )
        checks.append(_passed("blast_radius", f"{snap.workload_pods_disrupted + 1}/{allowed} pods disrupted at once"))
    if step.action is ActionKind.ROLLOUT_RESTART and snap.recreate and (snap.workload_pods_ready or 0) > 0:
        return refuse(
            "blast_radius",
            f"{snap.target.name} uses the Recreate strategy: a restart would stop its {snap.workload_pods_ready} "
            "ready replicas at once",
            escalate=True,
        )
    if step.action in NODE_ACTIONS:
        busy = [n for n in snap.nodes_unschedulable if n != snap.target.name]
        if len(busy) + 1 > br.max_nodes:
            return refuse(
                "blast_radius",
                f"nodes already cordoned: {', '.join(sorted(busy))}; at most {br.max_nodes} at a time",
                retry_after=g.recheck_seconds,
            )
        checks.append(_passed("blast_radius", f"{len(busy) + 1}/{br.max_nodes} nodes at a time"))

    # 9. Parameters, with their bounds.
    params = dict(step.params)
    if step.action is ActionKind.RAISE_MEMORY_LIMIT:
        ceiling = int(params["ceiling_bytes"])
        current = snap.memory_limit_bytes
        if current is None:
            return refuse("bounds", "the container has no memory limit to raise", escalate=True)
        if current >= ceiling:
            return refuse("bounds", f"memory limit {current} is already at the ceiling {ceiling}", escalate=True)
        new = min(math.ceil(current * float(params.get("factor", 1.5))), ceiling)
        params.update(from_bytes=current, to_bytes=new, container=snap.container or "")
        checks.append(_passed("bounds", f"memory limit {current} -> {new} (ceiling {ceiling})"))
    if step.action is ActionKind.ROLLBACK:
        back_to = rollback_revision(snap.revision, snap.revisions)
        if back_to is None:
            return refuse(
                "rollback_target",
                f"revision {snap.revision} has no older revision with a different pod template to roll back to",
                escalate=True,
            )
        params["to_revision"] = back_to
        checks.append(_passed("rollback_target", f"revision {snap.revision} -> {back_to}"))

    action = RecoveryAction(
        kind=step.action, target=snap.target, parameters=params, disruptive=step.action in DISRUPTIVE
    )
    verification = VerificationSpec(check=step.verify.value, timeout_seconds=max(1, math.ceil(step.timeout)))
    pre = {"uid": snap.target.uid or "", "resource_version": snap.resource_version or ""}
    pre = {k: v for k, v in pre.items() if v}
    reason = f"policy {policy.name} step {inp.step}/{len(policy.ladder)} for {alert.alertname} on {key}"
    dry_run = g.dry_run or policy.dry_run
    common = {
        "recovery_id": inp.recovery_id,
        "policy": PolicyRef(name=policy.name, version=inp.policy_version),
        "step": inp.step,
        "steps_total": len(policy.ladder),
        "action": action,
        "verification": verification,
        "preconditions": pre,
    }

    # 10. Dry run: the plan is recorded, nothing is changed.
    if dry_run:
        which = "global" if g.dry_run else f"policy {policy.name}"
        checks.append(GuardCheck(name="dry_run", passed=True, detail=f"dry run ({which}): nothing will change"))
        return Plan(guards=tuple(checks), reason=reason + f" (dry run: {which})", dry_run=True, **common)  # type: ignore[arg-type]

    # 11. Approval for disruptive actions, with expiry.
    if policy.needs_approval(step.action):
        if inp.grant is None:
            expires = now + timedelta(seconds=policy.approval.expires_after)
            approval = ApprovalRequest(
                reason=f"{step.action.value} requires approval by policy {policy.name}", expires_at=expires
            )
            return Plan(guards=tuple(checks), reason=reason, approval=approval, **common)  # type: ignore[arg-type]
        if inp.grant.expires_at <= now:
            return refuse(
                "approval", f"the approval by {inp.grant.approver} expired at {inp.grant.expires_at.isoformat()}"
            )
        checks.append(_passed("approval", f"approved by {inp.grant.approver}"))
    return Plan(guards=tuple(checks), reason=reason, **common)  # type: ignore[arg-type]


def next_step(policy: Policy, failed_step: int) -> int | None:
    """The ladder step after `failed_step`, or None when the ladder is exhausted (escalate)."""
    return failed_step + 1 if failed_step < len(policy.ladder) else None
