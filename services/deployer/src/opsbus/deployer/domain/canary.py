"""The replica-ratio canary state machine (no service mesh): a `<name>-canary` Deployment beside the stable one.

Why this module exists: without a mesh, the share of traffic a canary gets is its share of the Service's
ready endpoints. The stable Deployment is never scaled or changed until promotion, so an abort only has to
scale the canary to zero (argo-rollouts#1259/#941: an abort must not leave the new stack serving). For a step
of weight w% on a stable of N replicas the canary gets ceil(N*w/(100-w)) replicas, so it holds about w% of the
endpoints; a step of 100 means "promote".

Per step: SCALE (set the canary's replicas, wait until they are available, within the progress deadline;
meanwhile the step's `restarts` checks are watched, so a canary that crashes fails in seconds) -> PAUSE
(`pause_seconds`) -> ANALYSE (the step's analysis; inconclusive pauses or fails per spec, never passes)
-> MANUAL (when `manual_promotion`: wait for a promote command) -> next step. After the last step:
PROMOTE (the stable Deployment takes the canary's template; followed like a rolling update) -> CLEANUP (canary
to zero) -> succeeded. Any failure before PROMOTE leaves the stable untouched; during PROMOTE the executor also
puts the stable's old template back.

With a traffic router (`CanarySpec.router`: a Gateway API HTTPRoute or an Istio VirtualService) the share of
traffic is a weight on the route, independent of replicas: SCALE brings the canary to a fixed size once
(`router.canary_replicas`, default the stable's count), and reaching each step writes the step's weight
(`SetWeight`) before its PAUSE; a step of 100 is a real step (all traffic on the canary, analysed) before
PROMOTE; after promotion the weight goes back to 0 (all traffic on the stable, which now runs the new
template) and CLEANUP scales the canary to zero. Once a weight is written, a route whose managed weights no
longer say what was written was edited by someone else: the rollout pauses and writes nothing until the
weights are back or an operator aborts (which restores 100% to the stable in one write).

Pure: the executor observes both Deployments (and the route), takes due measurements, and applies the
returned effect.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from opsbus.common.events.payloads.deploy import (
    AnalysisMetric,
    AnalysisOutcome,
    AnalysisResult,
    AnalysisSpec,
    CanarySpec,
    CanaryStep,
    DeployFailureReason,
    KubernetesCheck,
    KubernetesProvider,
    Measurement,
)
from opsbus.deployer.domain import analysis, progression, routing


class Stage(StrEnum):
    SCALE = "scale"
    PAUSE = "pause"
    ANALYSE = "analyse"
    MANUAL = "manual"
    PROMOTE = "promote"
    CLEANUP = "cleanup"


@dataclass(frozen=True, slots=True)
class CanaryState:
    step: int  # 0-based
    stage: Stage
    since: datetime
    tracking: progression.Tracking | None = None
    # ANALYSE: the step's measurements. SCALE: only the failed measurements of the restarts watch.
    measurements: Mapping[str, Sequence[Measurement]] = field(default_factory=dict)
    # SCALE: when each watched restarts check is next due (absent: `since` + its initial delay).
    watch_next: Mapping[str, datetime] = field(default_factory=dict)
    # With a router: the canary weight last written to the route (None: nothing written yet).
    weight: int | None = None


class Outcome(StrEnum):
    CONTINUE = "continue"
    PAUSED = "paused"  # waiting for a human (manual step, or inconclusive analysis with policy pause)
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class ScaleCanary:
    replicas: int


@dataclass(frozen=True, slots=True)
class PromoteStable:
    pass


@dataclass(frozen=True, slots=True)
class SetWeight:
    """Write the route: `weight`% to the canary's Service, the rest to the stable's, in one guarded patch."""

    weight: int


Effect = ScaleCanary | PromoteStable | SetWeight


@dataclass(frozen=True, slots=True)
class Decision:
    state: CanaryState
    outcome: Outcome
    message: str
    effect: Effect | None = None
    reason: DeployFailureReason | None = None
    used_promote: bool = False
    analysis: tuple[AnalysisResult, ...] = ()
    step_changed: bool = False


def canary_replicas(stable_replicas: int, weight: int) -> int:
    """Canary replicas for `weight`% of the endpoints beside `stable_replicas` untouched ones (at least 1)."""
    if weight >= 100:
        return max(stable_replicas, 1)
    return max(1, math.ceil(stable_replicas * weight / (100 - weight)))


def start(now: datetime) -> CanaryState:
    return CanaryState(step=0, stage=Stage.SCALE, since=now)


def _next_step(spec: CanarySpec, state: CanaryState, now: datetime) -> Decision:
    following = state.step + 1
    # Replica ratio: a step of 100 means "promote". With a router, 100% on the canary is a step of its own.
    if following < len(spec.steps) and (spec.steps[following].weight < 100 or spec.router is not None):
        nxt = CanaryState(step=following, stage=Stage.SCALE, since=now, weight=state.weight)
        return Decision(
            nxt, Outcome.CONTINUE, f"step {following + 1}: weight {spec.steps[following].weight}%", step_changed=True
        )
    return Decision(
        CanaryState(step=state.step, stage=Stage.PROMOTE, since=now),
        Outcome.CONTINUE,
        "all steps passed: promoting the canary's template to the stable Deployment",
        effect=PromoteStable(),
        step_changed=True,
    )


def _after_pause(spec: CanarySpec, step: CanaryStep, state: CanaryState, now: datetime) -> Decision:
    if step.analysis is not None:
        return Decision(replace(state, stage=Stage.ANALYSE, since=now, measurements={}), Outcome.CONTINUE, "analysing")
    if step.manual_promotion:
        return Decision(replace(state, stage=Stage.MANUAL, since=now), Outcome.PAUSED, "waiting for promotion")
    return _next_step(spec, state, now)


def scale_watch(spec: AnalysisSpec | None) -> AnalysisSpec | None:
    """The `restarts` checks of a step's analysis: what the executor watches while the canary scales up, so a
    canary whose pods crash (and so never become available) fails its step in seconds instead of at the progress
    deadline. None: the step has none.

    Readiness (`not_ready`) is not watched here: pods that are not Ready yet are what scaling up waits for, and
    the progress deadline judges a canary that never gets there; it is measured in the step's analysis proper.
    """
    if spec is None:
        return None
    checks = [
        m
        for m in spec.metrics
        if isinstance(m.provider, KubernetesProvider) and m.provider.check is KubernetesCheck.RESTARTS
    ]
    return spec.model_copy(update={"metrics": tuple(checks)}) if checks else None


def watch_due(watch: AnalysisSpec, state: CanaryState, now: datetime) -> tuple[AnalysisMetric, ...]:
    """The watched checks due at `now`: every `interval_seconds` after `initial_delay_seconds`, for as long as the
    canary scales up (not limited to `count`: the watch only ever fails a step, it never passes one)."""
    return tuple(
        m
        for m in watch.metrics
        if now >= state.watch_next.get(m.name, state.since + timedelta(seconds=m.initial_delay_seconds))
    )


def watched(state: CanaryState, taken: Sequence[tuple[AnalysisMetric, Measurement]], now: datetime) -> CanaryState:
    """The state after the watch measured `taken` at `now`.

    Only failed measurements are kept (they are what can fail the step, `failure_limit` of them tolerated): a
    measurement with no new pod yet or a provider error is inconclusive and a pod that has not restarted yet
    proves nothing about one that is about to, so neither may stop the watch.
    """
    failures = {k: list(v) for k, v in state.measurements.items()}
    due_next = dict(state.watch_next)
    for metric, measurement in taken:
        due_next[metric.name] = now + timedelta(seconds=metric.interval_seconds)
        if measurement.outcome is AnalysisOutcome.FAILED:
            failures.setdefault(metric.name, []).append(measurement)
    return replace(state, measurements=failures, watch_next=due_next)


def route_check(spec: CanarySpec, state: CanaryState, route: routing.Route | None) -> Decision | None:
    """With a router: a failure when the route is gone, a pause when someone else changed the weights we wrote
    (nothing is written over their edit), None when the route is as we left it (or there is no router)."""
    router = spec.router
    if router is None:
        return None
    if route is None:
        return Decision(
            state,
            Outcome.FAILED,
            f"{router.kind.value} {router.name} is gone or sends no traffic to Service {router.stable_service}",
            reason=DeployFailureReason.APPLY_FAILED,
        )
    if state.weight is not None and route.canary_weight != state.weight:
        return Decision(
            state,
            Outcome.PAUSED,
            f"{router.kind.value} {router.name} was edited by someone else: opsbus set "
            f"{100 - state.weight}/{state.weight} (stable/canary), it now says {route.describe()}; not overwritten. "
            "Put the weights back to resume, or abort to restore all traffic to the stable",
        )
    return None


def _scaled(spec: CanarySpec, step: CanaryStep, state: CanaryState, now: datetime) -> Decision:
    """The canary is available at its size: the step's weight goes on the route (with a router), then PAUSE."""
    paused = replace(state, stage=Stage.PAUSE, since=now, measurements={}, watch_next={})
    if spec.router is None:
        return Decision(paused, Outcome.CONTINUE, f"step {state.step + 1} reached")
    w = step.weight
    return Decision(
        replace(paused, weight=w),
        Outcome.CONTINUE,
        f"step {state.step + 1}: {spec.router.kind.value} {spec.router.name} set to {100 - w}/{w} (stable/canary)",
        effect=SetWeight(w),
    )


def advance(  # noqa: PLR0911, PLR0912 - a state machine: one return per transition
    spec: CanarySpec,
    state: CanaryState,
    *,
    stable: progression.Observation,
    canary: progression.Observation | None,
    deadline_seconds: int,
    grace_seconds: int,
    promote_requested: bool,
    now: datetime,
    route: routing.Route | None = None,
) -> Decision:
    """The next decision. `canary` is None when the canary Deployment does not exist (yet, or any more);
    `route` is the router's route as observed (None when it is gone; ignored without a router)."""
    step = spec.steps[min(state.step, len(spec.steps) - 1)]
    stable_n = stable.spec_replicas
    checked = route_check(spec, state, route)
    if checked is not None:
        return checked

    if state.stage is Stage.SCALE:
        if canary is None:
            return Decision(
                state, Outcome.FAILED, "the canary Deployment disappeared", reason=DeployFailureReason.APPLY_FAILED
            )
        if spec.router is not None:
            want = spec.router.canary_replicas or max(stable_n, 1)
        else:
            want = canary_replicas(stable_n, step.weight)
        if canary.spec_replicas != want:
            tracking = progression.Tracking(
                target_generation=canary.generation + 1,
                deadline_seconds=deadline_seconds,
                last_progress_at=now,
                grace_seconds=grace_seconds,
            )
            return Decision(
                replace(state, tracking=tracking),
                Outcome.CONTINUE,
                f"step {state.step + 1}: scaling the canary to {want} replicas ({step.weight}% beside {stable_n})",
                effect=ScaleCanary(want),
            )
        tracking = state.tracking or progression.Tracking(
            target_generation=canary.generation,
            deadline_seconds=deadline_seconds,
            last_progress_at=now,
            grace_seconds=grace_seconds,
        )
        st = progression.step(canary, tracking, now)
        state = replace(state, tracking=st.tracking)
        if st.verdict is progression.Verdict.DEADLINE_EXCEEDED:
            return Decision(
                state, Outcome.FAILED, f"canary: {st.message}", reason=DeployFailureReason.PROGRESS_DEADLINE_EXCEEDED
            )
        if st.verdict is progression.Verdict.WAIT:
            watch = scale_watch(step.analysis)
            if watch is not None:
                # A canary whose pods crash never becomes available: its restarts checks, watched while the executor
                # waits, fail the step now instead of at the progress deadline. Only failures are kept (`watched`);
                # anything else decides nothing before the step's analysis proper.
                judged = analysis.judge(watch, state.measurements)
                if judged.verdict is analysis.Verdict.FAIL and judged.outcome is AnalysisOutcome.FAILED:
                    return Decision(
                        state,
                        Outcome.FAILED,
                        f"canary: {judged.message}",
                        reason=DeployFailureReason.ANALYSIS_FAILED,
                        analysis=judged.results,
                    )
            return Decision(state, Outcome.CONTINUE, f"canary: {st.message}")
        return _scaled(spec, step, state, now)

    if state.stage is Stage.PAUSE:
        if step.pause_seconds and now < state.since + timedelta(seconds=step.pause_seconds):
            return Decision(state, Outcome.CONTINUE, f"pausing {step.pause_seconds}s at {step.weight}%")
        return _after_pause(spec, step, state, now)

    if state.stage is Stage.ANALYSE:
        assert step.analysis is not None
        verdict = analysis.judge(step.analysis, state.measurements)
        if verdict.verdict is analysis.Verdict.FAIL:
            reason = (
                DeployFailureReason.ANALYSIS_FAILED
                if verdict.outcome.value == "failed"
                else DeployFailureReason.ANALYSIS_INCONCLUSIVE
            )
            return Decision(state, Outcome.FAILED, verdict.message, reason=reason, analysis=verdict.results)
        if verdict.verdict is analysis.Verdict.PAUSE and not promote_requested:
            return Decision(state, Outcome.PAUSED, verdict.message, analysis=verdict.results)
        if verdict.verdict is analysis.Verdict.CONTINUE:
            return Decision(state, Outcome.CONTINUE, verdict.message, analysis=verdict.results)
        used = verdict.verdict is analysis.Verdict.PAUSE
        if step.manual_promotion and not promote_requested:
            nxt = replace(state, stage=Stage.MANUAL, since=now)
            return Decision(nxt, Outcome.PAUSED, "analysis passed; waiting for promotion", analysis=verdict.results)
        decision = _next_step(spec, state, now)
        return replace(decision, used_promote=used or step.manual_promotion, analysis=verdict.results)

    if state.stage is Stage.MANUAL:
        if not promote_requested:
            return Decision(state, Outcome.PAUSED, f"step {state.step + 1} waits for promotion")
        return replace(_next_step(spec, state, now), used_promote=True)

    if state.stage is Stage.PROMOTE:
        if state.tracking is None:
            return Decision(state, Outcome.CONTINUE, "promoting", effect=PromoteStable())
        st = progression.step(stable, state.tracking, now)
        state = replace(state, tracking=st.tracking)
        if st.verdict is progression.Verdict.DEADLINE_EXCEEDED:
            return Decision(
                state, Outcome.FAILED, f"promotion: {st.message}", reason=DeployFailureReason.PROGRESS_DEADLINE_EXCEEDED
            )
        if st.verdict is progression.Verdict.WAIT:
            return Decision(state, Outcome.CONTINUE, f"promotion: {st.message}")
        if spec.router is not None:
            return Decision(
                replace(state, stage=Stage.CLEANUP, since=now, weight=0),
                Outcome.CONTINUE,
                f"promoted; {spec.router.kind.value} {spec.router.name} sends all traffic to the stable again",
                effect=SetWeight(0),
            )
        return Decision(
            replace(state, stage=Stage.CLEANUP, since=now),
            Outcome.CONTINUE,
            "promoted; scaling the canary to zero",
            effect=ScaleCanary(0),
        )

    # CLEANUP
    if canary is not None and (canary.spec_replicas != 0 or canary.replicas != 0):
        effect = ScaleCanary(0) if canary.spec_replicas != 0 else None
        return Decision(state, Outcome.CONTINUE, "waiting for the canary's pods to go", effect=effect)
    return Decision(state, Outcome.SUCCEEDED, "canary promoted and scaled to zero")
