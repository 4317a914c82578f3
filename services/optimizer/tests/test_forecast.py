"""The forecaster on synthetic series whose seasonality, trend and noise are known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from opsbus.optimizer.domain.forecast import DAY, WEEK, ForecastCache, ForecastPolicy, fit

STEP = 300.0


def series(
    days: float,
    *,
    daily: float = 0.0,
    weekly: float = 0.0,
    trend_per_day: float = 0.0,
    noise: float = 0.0,
    seed: int = 1,
) -> list[float]:
    rng = np.random.default_rng(seed)
    t = np.arange(int(days * DAY / STEP)) * STEP
    base = 100.0 + trend_per_day * t / DAY
    v = base * (1 + daily * np.sin(2 * math.pi * t / DAY)) * (1 + weekly * (t % WEEK >= 5 * DAY))
    return list(v * rng.normal(1.0, noise, len(t)) if noise else v)


def test_daily_season_is_found_and_the_next_day_is_predicted() -> None:
    history = series(7, daily=0.6, noise=0.05)
    f = fit(history, 0.0, STEP)
    assert f is not None
    assert f.periods == (DAY,)
    assert f.reliable, f.reason
    assert f.strength > 0.8
    end = 7 * DAY
    assert f.start == pytest.approx(end)
    for hours in (3, 6, 12, 18):
        t = end + hours * 3600
        truth = 100.0 * (1 + 0.6 * math.sin(2 * math.pi * t / DAY))
        assert f.mean_at(t) == pytest.approx(truth, rel=0.08)
        assert f.upper_at(t) > truth  # the interval covers the noise above the mean
    # the peak of the next day is at 6 h, the trough at 18 h: the forecast knows
    assert f.peak(end, end + DAY, upper=False) == pytest.approx(160.0, rel=0.08)
    assert f.mean_at(end + 18 * 3600) < 0.5 * f.mean_at(end + 6 * 3600)


def test_upper_quantile_covers_the_noise_it_was_asked_to() -> None:
    history = series(8, daily=0.5, noise=0.1, seed=3)
    f = fit(history[: int(7 * DAY / STEP)], 0.0, STEP, ForecastPolicy(upper_quantile=0.95))
    assert f is not None
    future = history[int(7 * DAY / STEP) :]
    above = sum(1 for i, v in enumerate(future) if v > f.upper_at(7 * DAY + (i + 0.5) * STEP))
    assert above / len(future) < 0.12  # ~5% by construction, with room for the fit's own error


def test_weekly_season_needs_two_weeks_and_then_is_found() -> None:
    short = fit(series(10, daily=0.4, weekly=-0.5, noise=0.03), 0.0, STEP)
    assert short is not None and WEEK not in short.periods
    assert "weekly: 1.4 cycles" in short.reason
    f = fit(series(21, daily=0.4, weekly=-0.5, noise=0.03), 0.0, STEP)
    assert f is not None
    assert f.periods == (DAY, WEEK)
    # day 21 is a Monday-like day (t % WEEK < 5 days), day 26 a weekend day at half the level
    weekday = f.peak(21 * DAY, 22 * DAY, upper=False)
    weekend = f.peak(26 * DAY, 27 * DAY, upper=False) if f.end >= 27 * DAY else None
    assert weekday == pytest.approx(140.0, rel=0.1)
    assert weekend is None  # horizon is one day by default


def test_trend_is_projected() -> None:
    f = fit(series(6, daily=0.3, trend_per_day=10.0, noise=0.02), 0.0, STEP)
    assert f is not None and f.reliable
    assert f.slope_per_hour == pytest.approx(10.0 / 24, rel=0.25)
    # the mean over the next day is above the history's last-day mean by about half a day of growth
    nxt = np.mean([f.mean_at(6 * DAY + h * 3600) for h in range(24)])
    assert nxt == pytest.approx(100 + 10 * 6.5, rel=0.05)


def test_noise_without_season_is_not_reliable() -> None:
    f = fit(series(5, noise=0.3), 0.0, STEP)
    assert f is not None
    assert not f.reliable
    assert f.periods == ()
    assert "no season found" in f.reason
    assert f.mean_at(5 * DAY + 3600) == pytest.approx(100.0, rel=0.1)


def test_wide_interval_is_not_reliable() -> None:
    f = fit(series(5, daily=0.3, noise=0.6, seed=2), 0.0, STEP, ForecastPolicy(min_strength=0.0))
    assert f is not None and not f.reliable
    assert "interval" in f.reason


def test_gaps_and_short_history() -> None:
    assert fit([1.0, 2.0], 0.0, STEP) is None
    assert fit([math.nan] * 100, 0.0, STEP) is None
    history = series(4, daily=0.5, noise=0.02)
    for i in range(300, 400):
        history[i] = math.nan
    f = fit(history, 0.0, STEP)
    assert f is not None and f.periods == (DAY,)


def test_fit_is_bounded_by_max_points() -> None:
    f = fit(series(28, daily=0.5, noise=0.02), 0.0, STEP, ForecastPolicy(max_points=200))
    assert f is not None
    assert f.step >= 28 * DAY / 200
    assert f.step % STEP == 0


def test_cache_refits_on_schedule_only() -> None:
    cache = ForecastCache(ForecastPolicy(refresh_seconds=3600))
    history = series(3, daily=0.5)
    first = cache.get("w", 0.0, history, 0.0, STEP)
    assert cache.get("w", 1800.0, [], 0.0, STEP) is first
    assert cache.fits == 1 and not cache.due("w", 3599.0) and cache.due("w", 3600.0)
    cache.get("w", 3600.0, history, 0.0, STEP)
    assert cache.fits == 2
