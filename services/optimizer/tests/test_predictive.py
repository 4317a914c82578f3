"""Forecast-driven sizing and scaling: which mode acts, and what it asks for."""

from __future__ import annotations

import pytest

from opsbus.optimizer.domain.forecast import Forecast
from opsbus.optimizer.domain.horizontal import HorizontalPolicy
from opsbus.optimizer.domain.predictive import Mode, PredictivePolicy, scale, size_cpu, size_memory

HOUR = 3_600.0


def forecast(mean: list[float], upper: list[float] | None = None, *, reliable: bool = True) -> Forecast:
    """Hourly buckets from t=0."""
    return Forecast(
        start=0.0,
        step=HOUR,
        mean=tuple(mean),
        lower=tuple(mean),
        upper=tuple(upper or [round(m * 1.1, 3) for m in mean]),
        periods=(86_400.0,),
        strength=0.9,
        slope_per_hour=0.0,
        reliable=reliable,
        reason="daily acf 0.90" if reliable else "no season found (daily acf 0.01)",
    )


RISING = [100.0, 100.0, 100.0, 400.0, 400.0, 400.0, 100.0, 100.0]
POLICY = PredictivePolicy(cpu_margin=0.05, in_place_window_seconds=2 * HOUR, target_utilization=0.8, cycle_seconds=60)


def test_cpu_request_covers_the_upper_bound_of_the_next_window_only() -> None:
    f = forecast(RISING)
    quiet = size_cpu(900, 0.1, f, 0.98, 0.0, in_place=True, policy=POLICY)
    assert quiet.mode is Mode.PREDICTIVE
    # over [0 h, 2 h] the upper bound is 110 m: the 400 m hours are not reserved yet
    assert quiet.millicores == 116  # ceil(110 x 1.05)
    assert "upper q98 over the next 2h" in quiet.reason and "daily" in quiet.reason
    assert quiet.minutes_above_per_month == pytest.approx(0.02 * 730 * 60)
    # an hour before the rise, the window reaches into it
    before = size_cpu(900, 0.1, f, 0.98, 2 * HOUR, in_place=True, policy=POLICY)
    assert before.millicores >= 400


def test_without_in_place_resize_the_request_covers_the_forecast_peak() -> None:
    s = size_cpu(900, 0.1, forecast(RISING), 0.98, 0.0, in_place=False, policy=POLICY)
    assert s.millicores == 462  # ceil(440 x 1.05)
    assert "forecast peak (no in-place resize)" in s.reason


def test_unreliable_or_missing_forecast_falls_back_and_says_why() -> None:
    s = size_cpu(900, 0.1, forecast(RISING, reliable=False), 0.98, 0.0, in_place=True, policy=POLICY)
    assert (s.millicores, s.mode) == (900, Mode.REACTIVE)
    assert "no season found" in s.reason
    assert s.minutes_above_per_month == pytest.approx(0.1 * 730 * 60)
    assert "no forecast yet" in size_cpu(900, 0.1, None, 0.98, 0.0, in_place=True, policy=POLICY).reason


def test_memory_is_never_below_the_fallback_and_a_forecast_may_raise_it() -> None:
    assert size_memory(500, forecast([100.0] * 4), 0.0) == (500, "")
    raised, why = size_memory(300 * 2**20, forecast([400.0 * 2**20] * 4), 0.0)
    assert raised == 440 * 2**20 and "forecast peak" in why
    assert size_memory(500, None, 0.0) == (500, "")


HPA = HorizontalPolicy(target_utilization=0.7, tolerance=0.1, scale_down_stabilization_seconds=300.0)


def decide(current: int, demand: float, f: Forecast | None, now: float) -> tuple[int, Mode, str]:
    d = scale(current, demand, 100.0, f, now, startup_seconds=600.0, horizontal=HPA, history=(), policy=POLICY)
    return d.replicas, d.mode, d.reason


def test_scales_up_one_lead_time_before_the_forecast_rise() -> None:
    f = forecast(RISING)
    # at 2 h 45 min the lead time (600 s + 60 s) reaches past 3 h: the rise is within it (upper ~440 m)
    n, mode, reason = decide(2, 100.0, f, 2 * HOUR + 45 * 60)
    assert mode is Mode.PREDICTIVE and n > 2
    assert "within the lead time 660s" in reason
    # an hour earlier it is not: replicas for the current level at 80%
    n, mode, _ = decide(2, 100.0, f, 1 * HOUR)
    assert (n, mode) == (2, Mode.PREDICTIVE)


def test_scales_down_ahead_of_the_forecast_fall() -> None:
    n, mode, _ = decide(6, 400.0 * 0.9, forecast(RISING), 4 * HOUR)
    assert mode is Mode.PREDICTIVE and n == 6  # 440 m upper at 80% of 100 m
    n, mode, _ = decide(6, 100.0, forecast(RISING), 7 * HOUR)
    assert mode is Mode.PREDICTIVE and n == 2


def test_demand_above_the_forecast_is_a_surprise_and_reactive_acts() -> None:
    n, mode, reason = decide(2, 400.0, forecast(RISING), 0.5 * HOUR)
    assert mode is Mode.REACTIVE
    assert "surprise: demand 400m above the forecast's upper bound 110m" in reason
    assert n == 6  # the HPA formula: ceil(2 x 2.0 / 0.7)


def test_unreliable_forecast_scales_reactively() -> None:
    n, mode, reason = decide(2, 180.0, forecast(RISING, reliable=False), 0.5 * HOUR)
    assert (n, mode) == (3, Mode.REACTIVE)
    assert "no season found" in reason
    n, mode, reason = decide(2, 180.0, None, 0.5 * HOUR)
    assert mode is Mode.REACTIVE and "no forecast yet" in reason
