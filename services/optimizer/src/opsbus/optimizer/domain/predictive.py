"""Forecast-driven sizing and scaling: what the forecaster's output means for requests and replicas.

Why a module of its own: the percentile recommenders (`vertical`, `horizontal`) look back; these rules look
ahead, and must say which of the two acted and why, so that an operator can tell a predictive scale-up from a
reactive one in the audit trail and the `scale.recommended` reason.

* **Vertical** (`size_cpu`): the CPU request covers the forecast's upper quantile over the window the request
  will live (one refresh cycle when the cluster resizes pods in place, so idle hours of a daily cycle are
  not reserved; the whole forecast horizon otherwise: the forecast peak). Without a reliable forecast the
  fallback (the percentile recommender's target) stands. Memory is never sized below the fallback: the
  percentile recommender's floor at the last day's peak plus headroom, and its OOM bump, are what keep the
  container alive; a forecast may only raise memory (growth seen coming).
* **Horizontal** (`scale`): replicas for the forecast's upper bound over the lead time (the workload's
  measured start-up time plus one cycle), at `target_utilization` of requests, so pods are ready when the
  rise comes. Reactive (the HPA formula, `recommend_replicas`) when the forecast is unreliable, or when
  demand is above the forecast's upper bound right now (a surprise: a burst the history did not contain);
  more when the forecast is trusted but utilisation is above `target_utilization` beyond the tolerance now.

Pure: no I/O, no clock; the caller passes `now`. Guardrails (cooldown, step clamp, min/max, an HPA present,
a rollout under way, dry run) stay the planner's, applied after these targets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from opsbus.optimizer.domain.forecast import Forecast
from opsbus.optimizer.domain.horizontal import HorizontalPolicy, desired_replicas, recommend_replicas

MINUTES_PER_MONTH = 730 * 60


class Mode(StrEnum):
    PREDICTIVE = "predictive"
    REACTIVE = "reactive"


@dataclass(frozen=True)
class PredictivePolicy:
    cpu_margin: float = 0.05  # over the forecast's upper quantile
    in_place_window_seconds: float = 2 * 3_600.0  # requests resized in place cover this much of the forecast
    target_utilization: float = 0.8  # replicas for the forecast's upper bound at this share of requests
    cycle_seconds: float = 60.0  # the planner's cadence: the lead time adds one cycle


@dataclass(frozen=True)
class CpuSizing:
    millicores: int
    mode: Mode
    reason: str
    minutes_above_per_month: float  # expected minutes with usage above the request (the risk)


def size_cpu(
    fallback_millicores: int,
    fallback_over_share: float,
    forecast: Forecast | None,
    upper_quantile: float,
    now: float,
    *,
    in_place: bool,
    policy: PredictivePolicy,
) -> CpuSizing:
    """The CPU request: the forecast's upper quantile over the window the request will live, or the fallback
    (the percentile recommender's target and its share of samples above it) without a reliable forecast."""
    if forecast is None or not forecast.reliable:
        why = "no forecast yet" if forecast is None else f"forecast {forecast.reason}"
        return CpuSizing(
            fallback_millicores,
            Mode.REACTIVE,
            f"percentile sizing ({why})",
            fallback_over_share * MINUTES_PER_MONTH,
        )
    end = now + policy.in_place_window_seconds if in_place else forecast.end
    peak = forecast.peak(now, end)
    millicores = max(1, math.ceil(peak * (1 + policy.cpu_margin)))
    window = f"next {(end - now) / 3600:.0f}h" if in_place else "forecast peak (no in-place resize)"
    return CpuSizing(
        millicores,
        Mode.PREDICTIVE,
        f"forecast {forecast.describe()}; upper q{upper_quantile * 100:.0f} over the {window} "
        f"{peak:.0f}m +{policy.cpu_margin:.0%}",
        (1 - upper_quantile) * MINUTES_PER_MONTH,
    )


def size_memory(fallback_bytes: int, forecast: Forecast | None, now: float) -> tuple[int, str]:
    """Memory never below the fallback (peak floor, OOM bump); a reliable forecast may raise it."""
    if forecast is None or not forecast.reliable:
        return fallback_bytes, ""
    peak = math.ceil(forecast.peak(now, forecast.end))
    if peak > fallback_bytes:
        return peak, f"memory raised to the forecast peak {peak >> 20}Mi ({forecast.describe()})"
    return fallback_bytes, ""


@dataclass(frozen=True)
class ScalingDecision:
    replicas: int
    mode: Mode
    reason: str
    history: tuple[tuple[float, int], ...]  # the reactive rule's stabilisation window, to keep


def scale(
    current: int,
    demand: float,
    per_replica: float,
    forecast: Forecast | None,
    now: float,
    *,
    startup_seconds: float,
    horizontal: HorizontalPolicy,
    history: Sequence[tuple[float, int]],
    policy: PredictivePolicy,
) -> ScalingDecision:
    """Replicas for `demand` (the workload's CPU now, millicores) given `per_replica` requested millicores."""
    utilization = demand / (max(1, current) * per_replica) if per_replica > 0 else 0.0
    reactive = recommend_replicas(current, utilization, horizontal, history, now)

    def bounded(n: int) -> int:
        return max(horizontal.min_replicas, min(horizontal.max_replicas, n))

    if forecast is None or not forecast.reliable or per_replica <= 0:
        why = "no forecast yet" if forecast is None else f"forecast {forecast.reason}"
        return ScalingDecision(reactive.recommended, Mode.REACTIVE, f"{reactive.reason} ({why})", reactive.history)
    expected = forecast.upper_at(now)
    if demand > expected:
        n = bounded(max(reactive.recommended, current))
        why = f"surprise: demand {demand:.0f}m above the forecast's upper bound {expected:.0f}m; {reactive.reason}"
        return ScalingDecision(n, Mode.REACTIVE, why, reactive.history)
    lead = startup_seconds + policy.cycle_seconds
    need = forecast.peak(now, now + lead)
    predicted = math.ceil(need / (per_replica * policy.target_utilization) - 1e-9)
    reason = (
        f"forecast {forecast.describe()}: upper bound {need:.0f}m within the lead time {lead:.0f}s "
        f"at {policy.target_utilization:.0%} of {per_replica:.0f}m per replica"
    )
    # load above the predictive target now (beyond the tolerance): react, whatever was forecast
    hot = desired_replicas(current, utilization, policy.target_utilization, horizontal.tolerance)
    if hot > current and hot > predicted:
        why = (
            f"utilisation {utilization:.0%} above {policy.target_utilization:.0%}, more than the forecast's {predicted}"
        )
        return ScalingDecision(bounded(hot), Mode.REACTIVE, why, reactive.history)
    return ScalingDecision(bounded(predicted), Mode.PREDICTIVE, reason, reactive.history)
