"""The blue-green state machine: a new stack beside the old, analysed, then the Service's selector switches.

Why this module exists: the switch must be exact (traffic goes to the old pods or the new ones, never a mix)
and reversible until the old stack is gone. Without a mesh the Service selector is the switch, and the
ReplicaSets' `pod-template-hash` label is what tells the stacks apart (Argo Rollouts pins its services the
same way). The stages:

PIN       add the stable (blue) pods' `pod-template-hash` to the active Service's selector, so the new pods,
          which carry the same app labels, get no traffic yet
DEPLOY    the `<name>-green` Deployment (new template, full replica count) becomes available, within the
          progress deadline; the preview Service, if any, is pointed at it
ANALYSE   pre-promotion analysis against the green stack (inconclusive pauses or fails, never passes)
AWAIT     without auto_promote: wait for a promote command
SWITCHED  the active Service selects the green pods; the blue stack stays for `scale_down_delay_seconds`, so an
          abort can switch back at once, and until the post-promotion analysis (if any) passed: its failure
          (or an inconclusive result with policy fail) switches traffic back and removes the green stack
CONVERGE  the stable Deployment takes the new template (its pods replace the blue ones while the Service still
          selects only green)
CLEANUP   the Service's original selector is restored (it now matches only new pods) and green is deleted

Any failure or abort before CONVERGE: switch the Service back to blue, delete green, restore the selector; the
stable Deployment was never written. Pure: the executor observes, applies the returned effect, and records
the ReplicaSet hashes it learns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from opsbus.common.events.payloads.deploy import AnalysisResult, BlueGreenSpec, DeployFailureReason, Measurement
from opsbus.deployer.domain import analysis, progression


class Stage(StrEnum):
    PIN = "pin"
    DEPLOY = "deploy"
    ANALYSE = "analyse"
    AWAIT = "await"
    SWITCHED = "switched"
    CONVERGE = "converge"
    CLEANUP = "cleanup"


@dataclass(frozen=True, slots=True)
class State:
    stage: Stage
    since: datetime
    tracking: progression.Tracking | None = None
    measurements: Mapping[str, Sequence[Measurement]] = field(default_factory=dict)
    preview_pointed: bool = False


class Outcome(StrEnum):
    CONTINUE = "continue"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class SelectHash:
    """Set the active Service's selector to its original labels plus `pod-template-hash: hash`."""

    hash: str


@dataclass(frozen=True, slots=True)
class PointPreview:
    hash: str


@dataclass(frozen=True, slots=True)
class ConvergeStable:
    """The stable Deployment takes the green template."""


@dataclass(frozen=True, slots=True)
class RestoreAndDelete:
    """Restore the Service's original selector, then delete the green Deployment."""


Effect = SelectHash | PointPreview | ConvergeStable | RestoreAndDelete


@dataclass(frozen=True, slots=True)
class Decision:
    state: State
    outcome: Outcome
    message: str
    effect: Effect | None = None
    reason: DeployFailureReason | None = None
    used_promote: bool = False
    analysis: tuple[AnalysisResult, ...] = ()


@dataclass(frozen=True, slots=True)
class View:
    """What the executor observed this tick."""

    stable: progression.Observation
    green: progression.Observation | None
    stable_hash: str | None  # pod-template-hash of the stable Deployment's current ReplicaSet
    green_hash: str | None
    selected_hash: str | None  # pod-template-hash in the active Service's selector, if pinned
    promote_requested: bool = False


def start(now: datetime) -> State:
    return State(stage=Stage.PIN, since=now)


def _switch(spec: BlueGreenSpec, state: State, view: View, now: datetime, *, used: bool = False) -> Decision:
    assert view.green_hash is not None
    return Decision(
        State(stage=Stage.SWITCHED, since=now),
        Outcome.CONTINUE,
        f"switching the active Service {spec.active_service} to the new stack",
        effect=SelectHash(view.green_hash),
        used_promote=used,
    )


def _analysis_reason(verdict: analysis.AnalysisState) -> DeployFailureReason:
    if verdict.outcome.value == "failed":
        return DeployFailureReason.ANALYSIS_FAILED
    return DeployFailureReason.ANALYSIS_INCONCLUSIVE


def advance(  # noqa: PLR0911, PLR0912 - a state machine: one return per transition
    spec: BlueGreenSpec,
    state: State,
    view: View,
    *,
    deadline_seconds: int,
    grace_seconds: int,
    now: datetime,
) -> Decision:
    if state.stage is Stage.PIN:
        if view.stable_hash is None:
            return Decision(state, Outcome.CONTINUE, "waiting for the stable ReplicaSet's pod-template-hash")
        if view.selected_hash != view.stable_hash:
            return Decision(
                state, Outcome.CONTINUE, "pinning the active Service to the stable pods", SelectHash(view.stable_hash)
            )
        tracking = progression.Tracking(
            target_generation=view.green.generation if view.green else 1,
            deadline_seconds=deadline_seconds,
            last_progress_at=now,
            grace_seconds=grace_seconds,
        )
        return Decision(State(Stage.DEPLOY, now, tracking), Outcome.CONTINUE, "bringing up the new stack")

    if state.stage is Stage.DEPLOY:
        if view.green is None:
            return Decision(
                state, Outcome.FAILED, "the new stack's Deployment disappeared", reason=DeployFailureReason.APPLY_FAILED
            )
        assert state.tracking is not None
        st = progression.step(view.green, state.tracking, now)
        state = replace(state, tracking=st.tracking)
        if st.verdict is progression.Verdict.DEADLINE_EXCEEDED:
            return Decision(
                state, Outcome.FAILED, f"new stack: {st.message}", reason=DeployFailureReason.PROGRESS_DEADLINE_EXCEEDED
            )
        if st.verdict is progression.Verdict.WAIT or view.green_hash is None:
            return Decision(state, Outcome.CONTINUE, f"new stack: {st.message}")
        if spec.preview_service is not None and not state.preview_pointed:
            marked = replace(state, preview_pointed=True)
            return Decision(
                marked, Outcome.CONTINUE, "pointing the preview Service at the new stack", PointPreview(view.green_hash)
            )
        if spec.pre_promotion_analysis is not None:
            return Decision(State(Stage.ANALYSE, now), Outcome.CONTINUE, "pre-promotion analysis")
        if not spec.auto_promote:
            return Decision(State(Stage.AWAIT, now), Outcome.PAUSED, "new stack ready; waiting for promotion")
        return _switch(spec, state, view, now)

    if state.stage is Stage.ANALYSE:
        assert spec.pre_promotion_analysis is not None
        verdict = analysis.judge(spec.pre_promotion_analysis, state.measurements)
        if verdict.verdict is analysis.Verdict.FAIL:
            reason = _analysis_reason(verdict)
            return Decision(state, Outcome.FAILED, verdict.message, reason=reason, analysis=verdict.results)
        if verdict.verdict is analysis.Verdict.CONTINUE:
            return Decision(state, Outcome.CONTINUE, verdict.message, analysis=verdict.results)
        if verdict.verdict is analysis.Verdict.PAUSE and not view.promote_requested:
            return Decision(state, Outcome.PAUSED, verdict.message, analysis=verdict.results)
        if not spec.auto_promote and not view.promote_requested:
            return Decision(
                State(Stage.AWAIT, now),
                Outcome.PAUSED,
                "analysis passed; waiting for promotion",
                analysis=verdict.results,
            )
        return replace(_switch(spec, state, view, now, used=view.promote_requested), analysis=verdict.results)

    if state.stage is Stage.AWAIT:
        if not view.promote_requested:
            return Decision(state, Outcome.PAUSED, "waiting for promotion")
        return _switch(spec, state, view, now, used=True)

    if state.stage is Stage.SWITCHED:
        used = False
        results: tuple[AnalysisResult, ...] = ()
        if spec.post_promotion_analysis is not None:
            verdict = analysis.judge(spec.post_promotion_analysis, state.measurements)
            results = verdict.results
            message = f"post-promotion analysis: {verdict.message}"
            if verdict.verdict is analysis.Verdict.FAIL:
                return Decision(state, Outcome.FAILED, message, reason=_analysis_reason(verdict), analysis=results)
            if verdict.verdict is analysis.Verdict.CONTINUE:
                return Decision(state, Outcome.CONTINUE, message, analysis=results)
            if verdict.verdict is analysis.Verdict.PAUSE:
                if not view.promote_requested:
                    return Decision(state, Outcome.PAUSED, message, analysis=results)
                used = True  # a human accepted the inconclusive post-promotion analysis
        if now < state.since + timedelta(seconds=spec.scale_down_delay_seconds):
            return Decision(
                state, Outcome.CONTINUE, f"serving from the new stack; old stack kept {spec.scale_down_delay_seconds}s"
            )
        return Decision(
            State(Stage.CONVERGE, now),
            Outcome.CONTINUE,
            "the stable Deployment takes the new template",
            ConvergeStable(),
            used_promote=used,
            analysis=results,
        )

    if state.stage is Stage.CONVERGE:
        if state.tracking is None:
            return Decision(state, Outcome.CONTINUE, "converging", ConvergeStable())
        st = progression.step(view.stable, state.tracking, now)
        state = replace(state, tracking=st.tracking)
        if st.verdict is progression.Verdict.DEADLINE_EXCEEDED:
            return Decision(
                state,
                Outcome.FAILED,
                f"converging: {st.message}",
                reason=DeployFailureReason.PROGRESS_DEADLINE_EXCEEDED,
            )
        if st.verdict is progression.Verdict.WAIT:
            return Decision(state, Outcome.CONTINUE, f"converging: {st.message}")
        return Decision(
            State(Stage.CLEANUP, now),
            Outcome.CONTINUE,
            "restoring the Service selector, removing the new stack's scaffolding",
            RestoreAndDelete(),
        )

    # CLEANUP
    if view.green is not None or view.selected_hash is not None:
        return Decision(state, Outcome.CONTINUE, "waiting for the cleanup", RestoreAndDelete())
    return Decision(state, Outcome.SUCCEEDED, "switched to the new stack; the old one is gone")
