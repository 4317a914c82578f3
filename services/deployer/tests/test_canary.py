"""The replica-ratio canary state machine, step by step, with an injected clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from opsbus.common.events.payloads.deploy import (
    AnalysisOutcome,
    CanarySpec,
    DeployFailureReason,
    Measurement,
)
from opsbus.deployer.domain.canary import (
    CanaryState,
    Outcome,
    PromoteStable,
    ScaleCanary,
    Stage,
    advance,
    canary_replicas,
    scale_watch,
    start,
    watch_due,
    watched,
)
from opsbus.deployer.domain.progression import Condition, Observation, Tracking

T0 = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)
STABLE = Observation(generation=1, observed_generation=1, spec_replicas=4, replicas=4, updated=4, available=4)
ANALYSIS = {
    "metrics": [
        {
            "name": "ok",
            "provider": {"query": "q"},
            "success_condition": {"operator": ">=", "threshold": 0.9},
            "interval_seconds": 5,
            "count": 2,
        }
    ]
}
OK = Measurement(value=1.0, outcome=AnalysisOutcome.SUCCESSFUL)
BAD = Measurement(value=0.1, outcome=AnalysisOutcome.FAILED)
NONE = Measurement(outcome=AnalysisOutcome.INCONCLUSIVE, error="no data")


def canary_obs(replicas: int, available: int | None = None, generation: int = 2, **kw: Any) -> Observation:
    avail = replicas if available is None else available
    return Observation(
        generation=generation,
        observed_generation=generation,
        spec_replicas=replicas,
        replicas=replicas,
        updated=replicas,
        available=avail,
        **kw,
    )


def go(spec: CanarySpec, state: CanaryState, canary: Observation | None, now: datetime, promote: bool = False) -> Any:
    return advance(
        spec,
        state,
        stable=STABLE,
        canary=canary,
        deadline_seconds=60,
        grace_seconds=0,
        promote_requested=promote,
        now=now,
    )


@pytest.mark.parametrize(
    ("stable", "weight", "want"), [(4, 20, 1), (4, 50, 4), (10, 10, 2), (3, 25, 1), (1, 1, 1), (0, 50, 1), (4, 100, 4)]
)
def test_canary_replicas_give_about_weight_percent_of_endpoints(stable: int, weight: int, want: int) -> None:
    assert canary_replicas(stable, weight) == want


def test_steps_scale_wait_pause_then_promote_and_clean_up() -> None:
    spec = CanarySpec.model_validate({"steps": [{"weight": 20, "pause_seconds": 30}, {"weight": 50}]})
    d = go(spec, start(T0), canary_obs(0, generation=1), T0)
    assert d.effect == ScaleCanary(1) and d.outcome is Outcome.CONTINUE
    state = replace(d.state, tracking=Tracking(2, 60, T0))
    d = go(spec, state, canary_obs(1, available=0), T0 + timedelta(seconds=1))
    assert d.state.stage is Stage.SCALE and d.effect is None  # waiting for the canary pod
    d = go(spec, d.state, canary_obs(1), T0 + timedelta(seconds=2))
    assert d.state.stage is Stage.PAUSE
    d = go(spec, d.state, canary_obs(1), T0 + timedelta(seconds=20))
    assert d.state.stage is Stage.PAUSE and "pausing 30s" in d.message
    d = go(spec, d.state, canary_obs(1), T0 + timedelta(seconds=33))
    assert d.state.step == 1 and d.state.stage is Stage.SCALE and d.step_changed
    d = go(spec, d.state, canary_obs(1), T0 + timedelta(seconds=34))
    assert d.effect == ScaleCanary(4)
    d = go(
        spec, replace(d.state, tracking=Tracking(3, 60, T0)), canary_obs(4, generation=3), T0 + timedelta(seconds=35)
    )
    assert d.state.stage is Stage.PAUSE
    d = go(spec, d.state, canary_obs(4, generation=3), T0 + timedelta(seconds=36))
    assert d.state.stage is Stage.PROMOTE and d.effect == PromoteStable()
    # The executor patched the stable Deployment to generation 2; follow it like a rolling update.
    promoting = replace(d.state, tracking=Tracking(2, 60, T0 + timedelta(seconds=36)))
    rolling = Observation(generation=2, observed_generation=2, spec_replicas=4, replicas=5, updated=2, available=4)
    d = advance(
        spec, promoting, stable=rolling, canary=canary_obs(4, generation=3), deadline_seconds=60, grace_seconds=0,
        promote_requested=False, now=T0 + timedelta(seconds=37),
    )  # fmt: skip
    assert d.state.stage is Stage.PROMOTE and d.effect is None
    done = Observation(generation=2, observed_generation=2, spec_replicas=4, replicas=4, updated=4, available=4)
    d = advance(
        spec, d.state, stable=done, canary=canary_obs(4, generation=3), deadline_seconds=60, grace_seconds=0,
        promote_requested=False, now=T0 + timedelta(seconds=40),
    )  # fmt: skip
    assert d.state.stage is Stage.CLEANUP and d.effect == ScaleCanary(0)
    d = go(spec, d.state, canary_obs(0, generation=4), T0 + timedelta(seconds=41))
    assert d.outcome is Outcome.SUCCEEDED


def test_a_step_of_100_percent_means_promote() -> None:
    spec = CanarySpec.model_validate({"steps": [{"weight": 25}, {"weight": 100}]})
    state = CanaryState(step=0, stage=Stage.PAUSE, since=T0)
    d = go(spec, state, canary_obs(2), T0)
    assert d.state.stage is Stage.PROMOTE and d.effect == PromoteStable()


def test_canary_that_never_becomes_available_fails_on_the_deadline() -> None:
    spec = CanarySpec.model_validate({"steps": [{"weight": 20}]})
    state = CanaryState(step=0, stage=Stage.SCALE, since=T0, tracking=Tracking(2, 60, T0, grace_seconds=0))
    d = go(spec, state, canary_obs(1, available=0), T0)
    d = go(spec, d.state, canary_obs(1, available=0), T0 + timedelta(seconds=61))
    assert d.outcome is Outcome.FAILED and d.reason is DeployFailureReason.PROGRESS_DEADLINE_EXCEEDED
    cond = Condition("Progressing", "False", "ProgressDeadlineExceeded", "timed out")
    d = go(spec, state, canary_obs(1, available=0, conditions=(cond,)), T0)
    assert d.outcome is Outcome.FAILED


def test_pod_checks_fail_a_canary_that_crashes_while_it_scales_up() -> None:
    restarts = {
        "name": "restarts",
        "provider": {"kind": "kubernetes", "check": "restarts"},
        "success_condition": {"operator": "<=", "threshold": 0},
        "interval_seconds": 2,
        "count": 3,
    }
    spec = CanarySpec.model_validate(
        {"steps": [{"weight": 50, "analysis": {"metrics": [ANALYSIS["metrics"][0], restarts]}}]}
    )
    scaling = CanaryState(step=0, stage=Stage.SCALE, since=T0, tracking=Tracking(2, 600, T0, grace_seconds=0))
    crashed = Measurement(value=3.0, outcome=AnalysisOutcome.FAILED)
    failed = go(spec, replace(scaling, measurements={"restarts": [crashed]}), canary_obs(4, available=0), T0)
    assert failed.outcome is Outcome.FAILED and failed.reason is DeployFailureReason.ANALYSIS_FAILED
    assert [r.metric for r in failed.analysis] == ["restarts"]  # judged on the pod checks alone
    # no data yet, or no restarts: keep waiting for the canary (the step's analysis proper comes later)
    for measured in (
        {},
        {"restarts": [NONE]},
        {"restarts": [Measurement(value=0.0, outcome=AnalysisOutcome.SUCCESSFUL)]},
    ):
        waiting = go(spec, replace(scaling, measurements=measured), canary_obs(4, available=0), T0)
        assert waiting.outcome is Outcome.CONTINUE and waiting.state.stage is Stage.SCALE
    # once available, the step moves on with a clean slate for its analysis
    up = go(spec, replace(scaling, measurements={"restarts": [NONE]}), canary_obs(4), T0)
    assert up.state.stage is Stage.PAUSE and not up.state.measurements
    assert (
        scale_watch(spec.steps[0].analysis) is not None
        and scale_watch(CanarySpec.model_validate({"steps": [{"weight": 50, "analysis": ANALYSIS}]}).steps[0].analysis)
        is None
    )


RESTARTS = {
    "name": "restarts",
    "provider": {"kind": "kubernetes", "check": "restarts"},
    "success_condition": {"operator": "<", "threshold": 1},
    "interval_seconds": 2,
    "count": 3,
}


def watch_tick(spec: CanarySpec, state: CanaryState, now: datetime, restarts: float | None) -> CanaryState:
    """What the executor does on a tick while the canary scales: measure the due watched checks."""
    watch = scale_watch(spec.steps[0].analysis)
    assert watch is not None
    taken = []
    for metric in watch_due(watch, state, now):
        if restarts is None:  # no new pod yet
            taken.append((metric, NONE))
        else:
            outcome = AnalysisOutcome.SUCCESSFUL if restarts < 1 else AnalysisOutcome.FAILED
            taken.append((metric, Measurement(value=restarts, outcome=outcome)))
    return watched(state, taken, now)


def test_the_restarts_watch_outlasts_no_data_and_quiet_pods_and_fails_the_step_on_the_first_crash() -> None:
    # e2e scenario 2's analysis: no initial delay, no inconclusive measurement tolerated, count 3. The first
    # measurement comes before any canary pod exists and used to end the watch (one inconclusive > limit 0), so a
    # crashing canary then waited for the progress deadline (600 s) instead of failing in seconds.
    spec = CanarySpec.model_validate({"steps": [{"weight": 50, "analysis": {"metrics": [RESTARTS]}}]})
    state = CanaryState(step=0, stage=Stage.SCALE, since=T0, tracking=Tracking(2, 600, T0, grace_seconds=0))
    scaling = canary_obs(4, available=0)
    seen = [(0, None), (1, None), (2, 0.0), (4, 0.0), (6, 0.0), (8, 0.0)]  # no pod, then quiet pods past `count`
    for second, restarts in seen:
        state = watch_tick(spec, state, T0 + timedelta(seconds=second), restarts)
        d = go(spec, state, scaling, T0 + timedelta(seconds=second))
        assert d.outcome is Outcome.CONTINUE and d.state.stage is Stage.SCALE, (second, d)
        state = d.state
    assert not state.measurements  # nothing but failures is kept: the watch stays bounded
    watch = scale_watch(spec.steps[0].analysis)
    assert watch is not None and watch_due(watch, state, T0 + timedelta(seconds=9)) == ()  # next one due at 10 s
    state = watch_tick(spec, state, T0 + timedelta(seconds=10), 3.0)
    failed = go(spec, state, scaling, T0 + timedelta(seconds=10))
    assert failed.outcome is Outcome.FAILED and failed.reason is DeployFailureReason.ANALYSIS_FAILED
    (result,) = failed.analysis
    assert result.metric == "restarts" and result.outcome is AnalysisOutcome.FAILED
    assert [m.value for m in result.measurements] == [3.0]


def test_the_watch_tolerates_failure_limit_crashes_and_waits_for_the_initial_delay() -> None:
    metric = {**RESTARTS, "failure_limit": 1, "initial_delay_seconds": 5}
    spec = CanarySpec.model_validate({"steps": [{"weight": 50, "analysis": {"metrics": [metric]}}]})
    state = CanaryState(step=0, stage=Stage.SCALE, since=T0, tracking=Tracking(2, 600, T0, grace_seconds=0))
    watch = scale_watch(spec.steps[0].analysis)
    assert watch is not None
    assert watch_due(watch, state, T0 + timedelta(seconds=4)) == ()
    state = watch_tick(spec, state, T0 + timedelta(seconds=5), 1.0)
    assert go(spec, state, canary_obs(4, available=0), T0 + timedelta(seconds=5)).outcome is Outcome.CONTINUE
    state = watch_tick(spec, state, T0 + timedelta(seconds=7), 2.0)
    assert go(spec, state, canary_obs(4, available=0), T0 + timedelta(seconds=7)).outcome is Outcome.FAILED


def test_readiness_is_not_watched_while_the_canary_scales_up() -> None:
    # pods that are not Ready yet are what scaling waits for: a not_ready check there would fail healthy canaries
    not_ready = {**RESTARTS, "name": "not-ready", "provider": {"kind": "kubernetes", "check": "not_ready"}}
    only = CanarySpec.model_validate({"steps": [{"weight": 50, "analysis": {"metrics": [not_ready]}}]})
    both = CanarySpec.model_validate({"steps": [{"weight": 50, "analysis": {"metrics": [not_ready, RESTARTS]}}]})
    assert scale_watch(only.steps[0].analysis) is None
    watch = scale_watch(both.steps[0].analysis)
    assert watch is not None and [m.name for m in watch.metrics] == ["restarts"]


def test_reaching_the_step_clears_the_watch_for_the_analysis_proper() -> None:
    spec = CanarySpec.model_validate({"steps": [{"weight": 50, "analysis": {"metrics": [RESTARTS]}}]})
    state = CanaryState(step=0, stage=Stage.SCALE, since=T0, tracking=Tracking(2, 600, T0, grace_seconds=0))
    state = watch_tick(spec, state, T0, 0.0)
    assert state.watch_next
    up = go(spec, state, canary_obs(4), T0 + timedelta(seconds=1))
    assert up.state.stage is Stage.PAUSE and not up.state.measurements and not up.state.watch_next


def test_step_analysis_passes_fails_or_pauses_but_never_passes_on_no_data() -> None:
    spec = CanarySpec.model_validate({"steps": [{"weight": 20, "analysis": ANALYSIS}, {"weight": 60}]})
    analysing = CanaryState(step=0, stage=Stage.ANALYSE, since=T0)
    assert go(spec, replace(analysing, measurements={"ok": [OK]}), canary_obs(1), T0).outcome is Outcome.CONTINUE
    passed = go(spec, replace(analysing, measurements={"ok": [OK, OK]}), canary_obs(1), T0)
    assert passed.state.step == 1 and passed.analysis[0].outcome is AnalysisOutcome.SUCCESSFUL
    failed = go(spec, replace(analysing, measurements={"ok": [BAD]}), canary_obs(1), T0)
    assert failed.outcome is Outcome.FAILED and failed.reason is DeployFailureReason.ANALYSIS_FAILED
    nodata = go(spec, replace(analysing, measurements={"ok": [NONE]}), canary_obs(1), T0)
    assert nodata.outcome is Outcome.FAILED and nodata.reason is DeployFailureReason.ANALYSIS_INCONCLUSIVE


def test_inconclusive_with_pause_waits_for_a_human() -> None:
    paused_spec = {**ANALYSIS, "inconclusive": "pause"}
    spec = CanarySpec.model_validate({"steps": [{"weight": 20, "analysis": paused_spec}, {"weight": 60}]})
    state = CanaryState(step=0, stage=Stage.ANALYSE, since=T0, measurements={"ok": [NONE]})
    assert go(spec, state, canary_obs(1), T0).outcome is Outcome.PAUSED
    promoted = go(spec, state, canary_obs(1), T0, promote=True)
    assert promoted.state.step == 1 and promoted.used_promote


def test_manual_promotion_step_waits_then_moves_on() -> None:
    spec = CanarySpec.model_validate({"steps": [{"weight": 20, "manual_promotion": True}, {"weight": 60}]})
    d = go(spec, CanaryState(step=0, stage=Stage.PAUSE, since=T0), canary_obs(1), T0)
    assert d.outcome is Outcome.PAUSED and d.state.stage is Stage.MANUAL
    d = go(spec, d.state, canary_obs(1), T0 + timedelta(hours=5))
    assert d.outcome is Outcome.PAUSED
    d = go(spec, d.state, canary_obs(1), T0 + timedelta(hours=5), promote=True)
    assert d.state.step == 1 and d.used_promote


def test_canary_deployment_gone_mid_step_fails() -> None:
    spec = CanarySpec.model_validate({"steps": [{"weight": 20}]})
    d = go(spec, start(T0), None, T0)
    assert d.outcome is Outcome.FAILED
