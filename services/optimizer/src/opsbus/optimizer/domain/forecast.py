"""Forecasts of one workload's usage from its history: seasonality, trend and prediction intervals.

Why: sizing on a percentile of the past reserves the daily peak all day (slack) or reserves below the peak
(hidden overcommit), and scaling on the last minute's utilisation is late by the start-up time on every rise.
A forecast says what the next hours will need, with how much uncertainty, so the vertical planner can size
requests to the forecast's upper quantile over the window they will live and the horizontal planner can add
replicas one start-up time before the rise.

How (all statistics from statsmodels and numpy, none hand-written):
* the history (regular samples, gaps as NaN) is averaged into buckets of at least `bucket_seconds`, and
  coarser when needed so that no fit sees more than `max_points` points: the CPU a fit costs is bounded
  whatever the history's length;
* daily and weekly seasonality are detected with the autocorrelation function (`statsmodels...acf`) of the
  linearly detrended series at one day and one week; a period counts with at least `min_cycles` full cycles
  of history and an autocorrelation of at least `min_autocorrelation`;
* the series is decomposed with STL (one period) or MSTL (daily and weekly); the trend is projected with its
  least-squares slope over `trend_window_seconds`, the last cycle of each seasonal component is repeated;
* prediction intervals are empirical quantiles of the *fine-grained* relative residuals (each original
  sample against the fitted curve interpolated to its time) over `residual_window_seconds`: the noise inside
  a bucket, which the averaged fit does not see, is what a request must cover.

A forecast is `reliable` only when a season was found, the seasonal strength (1 - var(resid) / var(seasonal +
resid), Hyndman's measure) is at least `min_strength` and the interval is narrower than `max_relative_width`
of the level; otherwise the planners fall back to their reactive rules and say so (`reason`).

This module decides nothing and does no I/O: the caller passes the history in, and caches the result
(`ForecastCache`) so that fits happen on a schedule, not every cycle.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from statsmodels.tsa.seasonal import MSTL, STL  # type: ignore[import-untyped]
from statsmodels.tsa.stattools import acf  # type: ignore[import-untyped]

DAY = 86_400.0
WEEK = 7 * DAY
Array = NDArray[np.float64]


@dataclass(frozen=True)
class ForecastPolicy:
    bucket_seconds: float = 1_800.0
    max_points: int = 720  # the fit never sees more points than this: bounded CPU
    max_history_seconds: float = 28 * DAY
    periods: tuple[float, ...] = (DAY, WEEK)
    min_cycles: float = 2.0
    min_autocorrelation: float = 0.3
    min_strength: float = 0.5
    max_relative_width: float = 1.0  # (upper - lower) / level above which the forecast is not trusted
    upper_quantile: float = 0.98
    lower_quantile: float = 0.02
    trend_window_seconds: float = 2 * DAY
    residual_window_seconds: float = 3 * DAY
    horizon_seconds: float = DAY
    refresh_seconds: float = 6 * 3_600.0  # how long a fit is reused (`ForecastCache`)


@dataclass(frozen=True)
class Forecast:
    """Values per bucket from `start` (the end of the history) for `horizon`, with the interval around them."""

    start: float
    step: float
    mean: tuple[float, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    periods: tuple[float, ...]  # seasons found, seconds (empty: none)
    strength: float
    slope_per_hour: float
    reliable: bool
    reason: str

    @property
    def end(self) -> float:
        return self.start + self.step * len(self.mean)

    def _at(self, values: Sequence[float], t: float) -> float:
        """Linear interpolation between bucket centres; flat beyond the first and last."""
        if not values:
            return 0.0
        x = (t - self.start) / self.step - 0.5
        if x <= 0:
            return values[0]
        i = int(x)
        if i >= len(values) - 1:
            return values[-1]
        frac = x - i
        return values[i] * (1 - frac) + values[i + 1] * frac

    def mean_at(self, t: float) -> float:
        return self._at(self.mean, t)

    def upper_at(self, t: float) -> float:
        return self._at(self.upper, t)

    def peak(self, start: float, end: float, *, upper: bool = True) -> float:
        """The highest value (the upper bound by default) over [start, end]."""
        values = self.upper if upper else self.mean
        points = [start, end]
        first = math.ceil((start - self.start) / self.step - 0.5)
        last = math.floor((end - self.start) / self.step - 0.5)
        points += [self.start + (i + 0.5) * self.step for i in range(max(0, first), min(len(values), last + 1))]
        return max(self._at(values, t) for t in points)

    def describe(self) -> str:
        seasons = "/".join(_period_name(p) for p in self.periods) or "no season"
        return (
            f"{seasons}, strength {self.strength:.2f}, trend {self.slope_per_hour:+.3g}/h, "
            f"{'reliable' if self.reliable else 'unreliable: ' + self.reason}"
        )


def _period_name(p: float) -> str:
    return {DAY: "daily", WEEK: "weekly"}.get(p, f"{p / 3600:g}h")


def _fill(values: Array) -> Array:
    """NaN gaps filled by linear interpolation (the ends by the nearest value)."""
    ok = np.isfinite(values)
    if ok.all() or not ok.any():
        return values
    idx = np.arange(len(values))
    return np.interp(idx, idx[ok], values[ok])


def _detect(coarse: Array, bucket: float, policy: ForecastPolicy) -> tuple[tuple[int, ...], str]:
    """Season lags (in buckets) whose autocorrelation of the detrended series is high enough."""
    n = len(coarse)
    idx = np.arange(n, dtype=np.float64)
    slope, intercept = np.polyfit(idx, coarse, 1)
    detrended = coarse - (slope * idx + intercept)
    if float(np.std(detrended)) <= 1e-12:
        return (), "flat history"
    found: list[int] = []
    notes: list[str] = []
    for period in policy.periods:
        lag = round(period / bucket)
        if lag < 2 or n <= policy.min_cycles * lag:  # MSTL drops a period of half the series or more
            notes.append(f"{_period_name(period)}: {n * bucket / period:.1f} cycles of history")
            continue
        r = float(acf(detrended, nlags=lag, fft=True)[lag])
        notes.append(f"{_period_name(period)} acf {r:.2f}")
        if r >= policy.min_autocorrelation:
            found.append(lag)
    return tuple(found), ", ".join(notes)


def _buckets(
    values: Sequence[float], start: float, step: float, policy: ForecastPolicy
) -> tuple[Array, Array, int, float] | None:
    """(fine samples, bucket means, samples per bucket, time of the first kept sample), gaps filled, the history
    cut to `max_history_seconds` and to whole buckets ending at its end; None with fewer than 4 buckets."""
    raw = np.asarray(values, dtype=np.float64)
    keep = int(policy.max_history_seconds // step)
    if len(raw) > keep:
        start += (len(raw) - keep) * step
        raw = raw[-keep:]
    if not np.isfinite(raw).any():
        return None
    fine = _fill(raw)
    per = max(1, math.ceil(max(policy.bucket_seconds, len(fine) * step / policy.max_points) / step))
    n = len(fine) // per
    if n < 4:
        return None
    offset = len(fine) - n * per  # drop the oldest samples so buckets end at the history's end
    fine = fine[offset:]
    return fine, fine.reshape(n, per).mean(axis=1), per, start + offset * step


def _decompose(coarse: Array, lags: tuple[int, ...]) -> tuple[Array, list[Array]]:
    """(trend, seasonal components) by STL for one season, MSTL for several; no season: the series itself."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if len(lags) == 1:
            result = STL(coarse, period=lags[0]).fit()
            return np.asarray(result.trend), [np.asarray(result.seasonal)]
        if len(lags) > 1:
            result = MSTL(coarse, periods=lags).fit()
            seasonal = np.asarray(result.seasonal)
            return np.asarray(result.trend), [seasonal[:, i] for i in range(seasonal.shape[1])]
    return coarse.copy(), []


def _residual_quantiles(
    fine: Array, fitted: Array, per: int, eps: float, *, window: int, policy: ForecastPolicy
) -> tuple[float, float]:
    """Quantiles of each sample's deviation from the fitted curve (interpolated between bucket centres),
    relative to the curve, over the last `window` samples."""
    centres = (np.arange(len(fitted)) + 0.5) * per
    fitted_fine = np.interp(np.arange(len(fine), dtype=np.float64) + 0.5, centres, fitted)
    rel = (fine - fitted_fine) / (np.abs(fitted_fine) + eps)
    recent = rel[-max(per, window) :]
    return float(np.quantile(recent, policy.upper_quantile)), float(np.quantile(recent, policy.lower_quantile))


def fit(values: Sequence[float], start: float, step: float, policy: ForecastPolicy | None = None) -> Forecast | None:
    """Forecast from regular samples `values` (NaN for gaps), the first at `start`, one every `step` seconds.
    None without enough history to say anything (fewer than 4 buckets)."""
    policy = policy or ForecastPolicy()
    prepared = _buckets(values, start, step, policy)
    if prepared is None:
        return None
    fine, coarse, per, start = prepared
    n, bucket = len(coarse), per * step
    lags, detection = _detect(coarse, bucket, policy)
    trend, seasonals = _decompose(coarse, lags)
    seasonal_sum = np.sum(seasonals, axis=0) if seasonals else np.zeros(n)
    resid = coarse - trend - seasonal_sum
    denom = float(np.var(seasonal_sum + resid))
    strength = max(0.0, 1.0 - float(np.var(resid)) / denom) if seasonals and denom > 0 else 0.0

    tw = max(3, min(n, round(policy.trend_window_seconds / bucket)))
    slope = float(np.polyfit(np.arange(tw, dtype=np.float64), trend[-tw:], 1)[0]) if lags else 0.0
    h = max(1, math.ceil(policy.horizon_seconds / bucket))
    if lags:
        mean = float(trend[-1]) + slope * np.arange(1, h + 1, dtype=np.float64)
        for lag, s in zip(lags, seasonals, strict=True):
            mean = mean + np.resize(s[-lag:], h)
        fitted = trend + seasonal_sum
    else:  # no season: the recent level, not a trend of noise
        mean = np.full(h, float(np.mean(coarse[-tw:])))
        fitted = np.full(n, float(np.mean(coarse[-tw:])))
    mean = np.maximum(mean, 0.0)
    eps = 0.05 * max(float(np.mean(np.abs(coarse))), 1e-9)
    q_hi, q_lo = _residual_quantiles(
        fine, fitted, per, eps, window=int(policy.residual_window_seconds // step), policy=policy
    )
    upper = np.maximum(mean, mean + q_hi * (mean + eps))
    lower = np.maximum(0.0, np.minimum(mean, mean + q_lo * (mean + eps)))

    reasons: list[str] = []
    if not lags:
        reasons.append(f"no season found ({detection})")
    elif strength < policy.min_strength:
        reasons.append(f"seasonal strength {strength:.2f} < {policy.min_strength}")
    if q_hi - q_lo > policy.max_relative_width:
        reasons.append(f"interval {q_hi - q_lo:.0%} of the level > {policy.max_relative_width:.0%}")
    return Forecast(
        start=start + n * bucket,
        step=bucket,
        mean=tuple(float(v) for v in mean),
        lower=tuple(float(v) for v in lower),
        upper=tuple(float(v) for v in upper),
        periods=tuple(lag * bucket for lag in lags),
        strength=strength,
        slope_per_hour=slope * 3_600.0 / bucket,
        reliable=not reasons,
        reason="; ".join(reasons) or detection,
    )


@dataclass
class ForecastCache:
    """Fits per key (a workload's container, or its total demand), reused for `policy.refresh_seconds`: the
    planners ask every cycle, the fit runs on the schedule. The clock is the caller's `now`."""

    policy: ForecastPolicy = field(default_factory=ForecastPolicy)
    entries: dict[str, tuple[float, Forecast | None]] = field(default_factory=dict)
    fits: int = 0

    def get(self, key: str, now: float, values: Sequence[float], start: float, step: float) -> Forecast | None:
        cached = self.entries.get(key)
        if cached is not None and now - cached[0] < self.policy.refresh_seconds:
            return cached[1]
        result = fit(values, start, step, self.policy)
        self.fits += 1
        self.entries[key] = (now, result)
        return result

    def due(self, key: str, now: float) -> bool:
        cached = self.entries.get(key)
        return cached is None or now - cached[0] >= self.policy.refresh_seconds
