"""The blue-green state machine: pin, bring up, analyse, switch, keep the old stack, converge, clean up."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from opsbus.common.events.payloads.deploy import AnalysisOutcome, BlueGreenSpec, DeployFailureReason, Measurement
from opsbus.deployer.domain.bluegreen import (
    ConvergeStable,
    Outcome,
    PointPreview,
    RestoreAndDelete,
    SelectHash,
    Stage,
    State,
    View,
    advance,
    start,
)
from opsbus.deployer.domain.progression import Observation, Tracking

T0 = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)
STABLE = Observation(generation=1, observed_generation=1, spec_replicas=2, replicas=2, updated=2, available=2)
GREEN = Observation(generation=1, observed_generation=1, spec_replicas=2, replicas=2, updated=2, available=2)
OK = Measurement(value=1.0, outcome=AnalysisOutcome.SUCCESSFUL)
NONE = Measurement(outcome=AnalysisOutcome.INCONCLUSIVE, error="no data")
ANALYSIS = {
    "metrics": [
        {
            "name": "ok",
            "provider": {"query": "q"},
            "success_condition": {"operator": ">=", "threshold": 0.9},
            "count": 1,
        }
    ]
}


def view(**kw: Any) -> View:
    base: dict[str, Any] = {
        "stable": STABLE,
        "green": GREEN,
        "stable_hash": "blue1",
        "green_hash": "green1",
        "selected_hash": "blue1",
    }
    return View(**{**base, **kw})


def go(spec: BlueGreenSpec, state: State, v: View, now: datetime = T0) -> Any:
    return advance(spec, state, v, deadline_seconds=60, grace_seconds=0, now=now)


def test_pins_the_service_to_the_stable_pods_first() -> None:
    spec = BlueGreenSpec(active_service="web")
    d = go(spec, start(T0), view(selected_hash=None))
    assert d.effect == SelectHash("blue1") and d.state.stage is Stage.PIN
    assert go(spec, start(T0), view(stable_hash=None)).effect is None
    d = go(spec, start(T0), view())
    assert d.state.stage is Stage.DEPLOY


def test_auto_promote_switches_then_keeps_the_old_stack_for_the_delay_then_converges_and_cleans_up() -> None:
    spec = BlueGreenSpec(active_service="web", scale_down_delay_seconds=30)
    deploying = State(Stage.DEPLOY, T0, Tracking(1, 60, T0))
    waiting = go(spec, deploying, view(green=replace(GREEN, available=1)))
    assert waiting.state.stage is Stage.DEPLOY and waiting.effect is None
    switched = go(spec, deploying, view())
    assert switched.effect == SelectHash("green1") and switched.state.stage is Stage.SWITCHED
    kept = go(spec, switched.state, view(selected_hash="green1"), T0 + timedelta(seconds=29))
    assert kept.effect is None
    converge = go(spec, switched.state, view(selected_hash="green1"), T0 + timedelta(seconds=30))
    assert converge.effect == ConvergeStable()
    following = replace(converge.state, tracking=Tracking(2, 60, T0))
    rolling = replace(STABLE, generation=2, observed_generation=2, replicas=3, updated=1)
    assert go(spec, following, view(stable=rolling, selected_hash="green1")).effect is None
    done_stable = replace(STABLE, generation=2, observed_generation=2)
    cleanup = go(spec, following, view(stable=done_stable, selected_hash="green1"))
    assert cleanup.effect == RestoreAndDelete()
    assert go(spec, cleanup.state, view(green=None, selected_hash="green1")).effect == RestoreAndDelete()
    assert go(spec, cleanup.state, view(green=None, selected_hash=None)).outcome is Outcome.SUCCEEDED


def test_preview_service_is_pointed_at_the_new_stack_once() -> None:
    spec = BlueGreenSpec(active_service="web", preview_service="web-preview")
    deploying = State(Stage.DEPLOY, T0, Tracking(1, 60, T0))
    d = go(spec, deploying, view())
    assert d.effect == PointPreview("green1")
    assert go(spec, d.state, view()).effect == SelectHash("green1")


def test_pre_promotion_analysis_gates_the_switch_and_fails_closed() -> None:
    spec = BlueGreenSpec.model_validate({"active_service": "web", "pre_promotion_analysis": ANALYSIS})
    deploying = State(Stage.DEPLOY, T0, Tracking(1, 60, T0))
    analysing = go(spec, deploying, view()).state
    assert analysing.stage is Stage.ANALYSE
    assert go(spec, analysing, view()).outcome is Outcome.CONTINUE
    passed = go(spec, replace(analysing, measurements={"ok": [OK]}), view())
    assert passed.effect == SelectHash("green1")
    nodata = go(spec, replace(analysing, measurements={"ok": [NONE]}), view())
    assert nodata.outcome is Outcome.FAILED and nodata.reason is DeployFailureReason.ANALYSIS_INCONCLUSIVE


def test_without_auto_promote_waits_for_a_human() -> None:
    spec = BlueGreenSpec(active_service="web", auto_promote=False)
    deploying = State(Stage.DEPLOY, T0, Tracking(1, 60, T0))
    d = go(spec, deploying, view())
    assert d.outcome is Outcome.PAUSED and d.state.stage is Stage.AWAIT
    assert go(spec, d.state, view()).outcome is Outcome.PAUSED
    promoted = go(spec, d.state, view(promote_requested=True))
    assert promoted.effect == SelectHash("green1") and promoted.used_promote


def test_new_stack_that_never_becomes_available_fails_on_the_deadline() -> None:
    spec = BlueGreenSpec(active_service="web")
    deploying = State(Stage.DEPLOY, T0, Tracking(1, 60, T0, grace_seconds=0))
    stuck = view(green=replace(GREEN, available=0))
    first = go(spec, deploying, stuck)
    d = go(spec, first.state, stuck, T0 + timedelta(seconds=61))
    assert d.outcome is Outcome.FAILED and d.reason is DeployFailureReason.PROGRESS_DEADLINE_EXCEEDED


FAILED = Measurement(value=0.5, outcome=AnalysisOutcome.FAILED)


def post_spec(**kw: Any) -> BlueGreenSpec:
    return BlueGreenSpec.model_validate(
        {"active_service": "web", "scale_down_delay_seconds": 30, "post_promotion_analysis": ANALYSIS, **kw}
    )


def test_post_promotion_analysis_keeps_the_old_stack_until_it_passes_even_past_the_delay() -> None:
    spec = post_spec()
    switched = State(Stage.SWITCHED, T0)
    late = T0 + timedelta(seconds=300)
    running = go(spec, switched, view(selected_hash="green1"), late)
    assert running.outcome is Outcome.CONTINUE and running.effect is None
    assert running.message.startswith("post-promotion analysis")
    passed = replace(switched, measurements={"ok": [OK]})
    early = go(spec, passed, view(selected_hash="green1"), T0 + timedelta(seconds=10))
    assert early.effect is None and early.outcome is Outcome.CONTINUE  # passed, the delay still holds
    converge = go(spec, passed, view(selected_hash="green1"), T0 + timedelta(seconds=30))
    assert converge.effect == ConvergeStable() and converge.state.stage is Stage.CONVERGE
    assert [r.outcome for r in converge.analysis] == [AnalysisOutcome.SUCCESSFUL]


def test_post_promotion_analysis_failure_fails_the_rollout_before_converging() -> None:
    spec = post_spec()
    failed = go(spec, State(Stage.SWITCHED, T0, measurements={"ok": [FAILED]}), view(selected_hash="green1"))
    assert failed.outcome is Outcome.FAILED and failed.reason is DeployFailureReason.ANALYSIS_FAILED
    assert failed.state.stage is Stage.SWITCHED  # not converged: the executor switches back and removes green
    assert failed.effect is None


def test_post_promotion_analysis_with_no_data_fails_closed_or_pauses_for_a_human() -> None:
    nodata = State(Stage.SWITCHED, T0, measurements={"ok": [NONE]})
    d = go(post_spec(), nodata, view(selected_hash="green1"), T0 + timedelta(seconds=60))
    assert d.outcome is Outcome.FAILED and d.reason is DeployFailureReason.ANALYSIS_INCONCLUSIVE
    pausing = post_spec(post_promotion_analysis={**ANALYSIS, "inconclusive": "pause"})
    paused = go(pausing, nodata, view(selected_hash="green1"), T0 + timedelta(seconds=60))
    assert paused.outcome is Outcome.PAUSED and paused.effect is None
    promoted = go(pausing, nodata, view(selected_hash="green1", promote_requested=True), T0 + timedelta(seconds=60))
    assert promoted.effect == ConvergeStable() and promoted.used_promote
