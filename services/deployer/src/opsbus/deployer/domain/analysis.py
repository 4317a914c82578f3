"""Analysis evaluation: measured samples in, a verdict out. Fails closed.

Why this module exists: Keptn's quality gates passed when the SLI provider failed (keptn#6096, #9146) and
Flagger halted on "no values found" without saying why (flagger#1689). Here a sample without a finite value
(no data, NaN, +-Inf) or with a provider error is *inconclusive*, and an inconclusive analysis never passes:
it pauses for a human or fails, per the request's `inconclusive` policy.

Rules per metric (Argo Rollouts' vocabulary):
- a measurement fails when `failure_condition` holds, or, without one, when `success_condition` does not;
- with a `failure_condition`, a value satisfying neither condition is inconclusive;
- more than `failure_limit` failed measurements -> the metric fails;
- more than `inconclusive_limit` inconclusive measurements -> the metric is inconclusive;
- after `count` measurements the metric succeeds only if at least one measurement succeeded (a metric whose
  every measurement was tolerated as inconclusive has shown nothing and is inconclusive).

Pure: no clock reads, no I/O. The executor feeds it samples and the current time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from opsbus.common.events.payloads.deploy import (
    AnalysisMetric,
    AnalysisOutcome,
    AnalysisResult,
    AnalysisSpec,
    InconclusivePolicy,
    Measurement,
)

MAX_KEPT = 50  # AnalysisResult.measurements holds at most this many


@dataclass(frozen=True, slots=True)
class Sample:
    """What the metrics provider answered: a value, nothing (no data), or an error."""

    value: float | None = None
    error: str | None = None


def classify(metric: AnalysisMetric, sample: Sample) -> Measurement:  # noqa: PLR0911 - one case per line
    """One measurement of `metric` from the provider's answer."""
    if sample.error is not None:
        return Measurement(outcome=AnalysisOutcome.INCONCLUSIVE, error=sample.error[:1024])
    value = sample.value
    if value is None:
        return Measurement(outcome=AnalysisOutcome.INCONCLUSIVE, error="no data: the query returned no samples")
    if not math.isfinite(value):
        return Measurement(outcome=AnalysisOutcome.INCONCLUSIVE, error=f"no usable value: the query returned {value}")
    if metric.failure_condition is not None:
        if metric.failure_condition.holds(value):
            return Measurement(value=value, outcome=AnalysisOutcome.FAILED)
        if metric.success_condition.holds(value):
            return Measurement(value=value, outcome=AnalysisOutcome.SUCCESSFUL)
        return Measurement(
            value=value,
            outcome=AnalysisOutcome.INCONCLUSIVE,
            error="the value meets neither the success nor the failure condition",
        )
    if metric.success_condition.holds(value):
        return Measurement(value=value, outcome=AnalysisOutcome.SUCCESSFUL)
    return Measurement(value=value, outcome=AnalysisOutcome.FAILED)


def evaluate(metric: AnalysisMetric, measurements: Sequence[Measurement]) -> AnalysisResult:
    """The state of one metric after `measurements` (oldest first)."""
    successful = sum(1 for m in measurements if m.outcome is AnalysisOutcome.SUCCESSFUL)
    failed = sum(1 for m in measurements if m.outcome is AnalysisOutcome.FAILED)
    inconclusive = sum(1 for m in measurements if m.outcome is AnalysisOutcome.INCONCLUSIVE)
    done = len(measurements)
    message: str | None
    if failed > metric.failure_limit:
        outcome = AnalysisOutcome.FAILED
        message = f"{metric.name}: {failed} of {done} measurements failed (failure_limit {metric.failure_limit})"
    elif inconclusive > metric.inconclusive_limit:
        outcome = AnalysisOutcome.INCONCLUSIVE
        last_error = next((m.error for m in reversed(measurements) if m.error), None)
        message = (
            f"{metric.name}: {inconclusive} of {done} measurements inconclusive "
            f"(inconclusive_limit {metric.inconclusive_limit})" + (f"; last: {last_error}" if last_error else "")
        )
    elif done >= metric.count:
        if successful == 0:
            outcome = AnalysisOutcome.INCONCLUSIVE
            message = (
                f"{metric.name}: no measurement of {done} succeeded; an analysis that measured nothing fails closed"
            )
        else:
            outcome = AnalysisOutcome.SUCCESSFUL
            message = f"{metric.name}: {successful} of {done} measurements succeeded"
    else:
        outcome = AnalysisOutcome.RUNNING
        message = f"{metric.name}: {done} of {metric.count} measurements taken"
    return AnalysisResult(
        metric=metric.name,
        outcome=outcome,
        successful=successful,
        failed=failed,
        inconclusive=inconclusive,
        measurements=tuple(measurements[-MAX_KEPT:]),
        message=message,
    )


def overall(results: Sequence[AnalysisResult]) -> AnalysisOutcome:
    """All metrics must pass. Any failure fails; otherwise any inconclusive makes it inconclusive."""
    outcomes = {r.outcome for r in results}
    if AnalysisOutcome.FAILED in outcomes:
        return AnalysisOutcome.FAILED
    if AnalysisOutcome.INCONCLUSIVE in outcomes:
        return AnalysisOutcome.INCONCLUSIVE
    if results and outcomes == {AnalysisOutcome.SUCCESSFUL}:
        return AnalysisOutcome.SUCCESSFUL
    return AnalysisOutcome.RUNNING


def due_metrics(
    spec: AnalysisSpec,
    measurements: Mapping[str, Sequence[Measurement]],
    started_at: datetime,
    now: datetime,
) -> list[AnalysisMetric]:
    """Metrics whose next measurement is due at `now` (and that are still running)."""
    due: list[AnalysisMetric] = []
    for metric in spec.metrics:
        taken = measurements.get(metric.name, ())
        if evaluate(metric, taken).outcome is not AnalysisOutcome.RUNNING:
            continue
        next_at = started_at + timedelta(seconds=metric.initial_delay_seconds + len(taken) * metric.interval_seconds)
        if now >= next_at:
            due.append(metric)
    return due


class Verdict(StrEnum):
    CONTINUE = "continue"  # keep measuring
    SUCCEED = "succeed"
    FAIL = "fail"  # failed, or inconclusive with policy fail
    PAUSE = "pause"  # inconclusive with policy pause: wait for promote or abort


@dataclass(frozen=True, slots=True)
class AnalysisState:
    verdict: Verdict
    outcome: AnalysisOutcome
    results: tuple[AnalysisResult, ...]
    message: str


def judge(spec: AnalysisSpec, measurements: Mapping[str, Sequence[Measurement]]) -> AnalysisState:
    """What the rollout does given the analysis so far."""
    results = tuple(evaluate(m, measurements.get(m.name, ())) for m in spec.metrics)
    outcome = overall(results)
    relevant = [r.message for r in results if r.outcome is outcome and r.message] or [
        r.message for r in results if r.message
    ]
    message = "; ".join(relevant)
    if outcome is AnalysisOutcome.FAILED:
        verdict = Verdict.FAIL
    elif outcome is AnalysisOutcome.INCONCLUSIVE:
        verdict = Verdict.PAUSE if spec.inconclusive is InconclusivePolicy.PAUSE else Verdict.FAIL
    elif outcome is AnalysisOutcome.SUCCESSFUL:
        verdict = Verdict.SUCCEED
    else:
        verdict = Verdict.CONTINUE
    return AnalysisState(verdict=verdict, outcome=outcome, results=results, message=message)
