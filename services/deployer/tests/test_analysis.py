"""Analysis evaluation fails closed: no data, NaN, Inf or a provider error never pass."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from opsbus.common.events.payloads.deploy import (
    AnalysisMetric,
    AnalysisOutcome,
    AnalysisSpec,
    ComparisonOperator,
    InconclusivePolicy,
    Measurement,
    MetricsProvider,
    Threshold,
)
from opsbus.deployer.domain.analysis import Sample, Verdict, classify, due_metrics, evaluate, judge, overall

T0 = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)
OK = Measurement(value=0.99, outcome=AnalysisOutcome.SUCCESSFUL)
BAD = Measurement(value=0.5, outcome=AnalysisOutcome.FAILED)
NONE = Measurement(outcome=AnalysisOutcome.INCONCLUSIVE, error="no data")


def metric(**kw: Any) -> AnalysisMetric:
    base: dict[str, Any] = {
        "name": "success-rate",
        "provider": MetricsProvider(query="sum(rate(ok[1m]))/sum(rate(all[1m]))"),
        "success_condition": Threshold(operator=ComparisonOperator.GE, threshold=0.95),
        "count": 3,
        "interval_seconds": 10,
    }
    return AnalysisMetric(**{**base, **kw})


@pytest.mark.parametrize(
    ("sample", "why"),
    [
        (Sample(value=None), "no data"),
        (Sample(value=math.nan), "NaN"),
        (Sample(value=math.inf), "+Inf"),
        (Sample(value=-math.inf), "-Inf"),
        (Sample(error="connection refused"), "provider error"),
        (Sample(value=1.0, error="partial response"), "an error wins over a value"),
    ],
)
def test_unusable_answers_are_inconclusive_never_successful(sample: Sample, why: str) -> None:
    m = classify(metric(), sample)
    assert m.outcome is AnalysisOutcome.INCONCLUSIVE, why
    assert m.error


def test_value_against_success_condition_only() -> None:
    assert classify(metric(), Sample(0.99)).outcome is AnalysisOutcome.SUCCESSFUL
    assert classify(metric(), Sample(0.95)).outcome is AnalysisOutcome.SUCCESSFUL
    assert classify(metric(), Sample(0.94)).outcome is AnalysisOutcome.FAILED


def test_with_a_failure_condition_the_gap_between_is_inconclusive() -> None:
    m = metric(failure_condition=Threshold(operator=ComparisonOperator.LT, threshold=0.9))
    assert classify(m, Sample(0.97)).outcome is AnalysisOutcome.SUCCESSFUL
    assert classify(m, Sample(0.85)).outcome is AnalysisOutcome.FAILED
    assert classify(m, Sample(0.92)).outcome is AnalysisOutcome.INCONCLUSIVE


def test_failure_condition_wins_when_both_hold() -> None:
    m = metric(failure_condition=Threshold(operator=ComparisonOperator.GE, threshold=0.98))
    assert classify(m, Sample(0.99)).outcome is AnalysisOutcome.FAILED


def test_running_until_count_then_successful() -> None:
    m = metric()
    assert evaluate(m, []).outcome is AnalysisOutcome.RUNNING
    assert evaluate(m, [OK, OK]).outcome is AnalysisOutcome.RUNNING
    done = evaluate(m, [OK, OK, OK])
    assert done.outcome is AnalysisOutcome.SUCCESSFUL
    assert (done.successful, done.failed, done.inconclusive) == (3, 0, 0)


def test_failure_limit_tolerates_that_many_failures_and_one_more_fails() -> None:
    m = metric(count=5, failure_limit=2)
    assert evaluate(m, [BAD, OK, BAD]).outcome is AnalysisOutcome.RUNNING
    assert evaluate(m, [BAD, OK, BAD, OK, OK]).outcome is AnalysisOutcome.SUCCESSFUL
    failed = evaluate(m, [BAD, BAD, BAD])
    assert failed.outcome is AnalysisOutcome.FAILED
    assert "3 of 3 measurements failed (failure_limit 2)" in (failed.message or "")


def test_failure_limit_zero_fails_on_the_first_failure() -> None:
    assert evaluate(metric(), [BAD]).outcome is AnalysisOutcome.FAILED


def test_one_inconclusive_with_limit_zero_is_inconclusive() -> None:
    result = evaluate(metric(), [OK, NONE])
    assert result.outcome is AnalysisOutcome.INCONCLUSIVE
    assert "no data" in (result.message or "")


def test_tolerated_inconclusives_still_need_one_success() -> None:
    m = metric(count=3, inconclusive_limit=5)
    result = evaluate(m, [NONE, NONE, NONE])
    assert result.outcome is AnalysisOutcome.INCONCLUSIVE  # never "passed" on no data (keptn#9146)
    assert evaluate(m, [NONE, OK, NONE]).outcome is AnalysisOutcome.SUCCESSFUL


def test_overall_needs_every_metric() -> None:
    a, b = metric(name="a"), metric(name="b")
    ok = evaluate(a, [OK, OK, OK])
    assert overall([ok, evaluate(b, [OK])]) is AnalysisOutcome.RUNNING
    assert overall([ok, evaluate(b, [OK, NONE])]) is AnalysisOutcome.INCONCLUSIVE
    assert overall([evaluate(a, [BAD]), evaluate(b, [NONE])]) is AnalysisOutcome.FAILED
    assert overall([ok, evaluate(b, [OK, OK, OK])]) is AnalysisOutcome.SUCCESSFUL
    assert overall([]) is AnalysisOutcome.RUNNING


@pytest.mark.parametrize(
    ("policy", "verdict"), [(InconclusivePolicy.FAIL, Verdict.FAIL), (InconclusivePolicy.PAUSE, Verdict.PAUSE)]
)
def test_inconclusive_pauses_or_fails_per_spec_and_never_succeeds(policy: InconclusivePolicy, verdict: Verdict) -> None:
    spec = AnalysisSpec(metrics=(metric(),), inconclusive=policy)
    state = judge(spec, {"success-rate": [NONE]})
    assert state.verdict is verdict
    assert state.outcome is AnalysisOutcome.INCONCLUSIVE


def test_judge_continue_then_succeed_then_fail() -> None:
    spec = AnalysisSpec(metrics=(metric(),))
    assert judge(spec, {}).verdict is Verdict.CONTINUE
    assert judge(spec, {"success-rate": [OK, OK, OK]}).verdict is Verdict.SUCCEED
    assert judge(spec, {"success-rate": [OK, BAD]}).verdict is Verdict.FAIL


def test_measurements_are_due_on_the_interval_after_the_initial_delay() -> None:
    spec = AnalysisSpec(metrics=(metric(initial_delay_seconds=5),))
    assert due_metrics(spec, {}, T0, T0 + timedelta(seconds=4)) == []
    assert [m.name for m in due_metrics(spec, {}, T0, T0 + timedelta(seconds=5))] == ["success-rate"]
    taken = {"success-rate": [OK]}
    assert due_metrics(spec, taken, T0, T0 + timedelta(seconds=14)) == []
    assert len(due_metrics(spec, taken, T0, T0 + timedelta(seconds=15))) == 1
    finished = {"success-rate": [OK, OK, OK]}
    assert due_metrics(spec, finished, T0, T0 + timedelta(hours=1)) == []
    failed = {"success-rate": [BAD]}
    assert due_metrics(spec, failed, T0, T0 + timedelta(hours=1)) == []
