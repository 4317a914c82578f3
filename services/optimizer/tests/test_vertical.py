"""The vertical recommender: VPA defaults, percentiles with margin, minimums, OOM bump, confidence, trends."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from opsbus.optimizer.domain.vertical import (
    DAY,
    MI,
    ContainerUsage,
    VerticalPolicy,
    confidence,
    recommend,
)

STEP = 300.0


Series = Callable[[int, float], float]


def feed(policy: VerticalPolicy, days: float, cpu: Series, mem: Series, start: float = 0.0) -> ContainerUsage:
    u = ContainerUsage.new(policy)
    n = int(days * DAY / STEP)
    for i in range(n):
        t = start + i * STEP
        u.add_sample(t, cpu(i, t), mem(i, t), policy)
    return u


def test_vpa_defaults_are_the_documented_ones() -> None:
    v = VerticalPolicy.vpa()
    assert (v.cpu_percentile, v.memory_percentile, v.safety_margin) == (0.9, 0.9, 0.15)
    assert v.half_life_seconds == 24 * 3600
    assert (v.oom_bump_ratio, v.oom_bump_bytes) == (1.2, 100 * MI)
    assert (v.min_cpu_millicores, v.min_memory_bytes) == (25, 250 * MI)
    assert v.memory_window_seconds == 24 * 3600


def test_cpu_target_is_p90_plus_margin() -> None:
    p = VerticalPolicy.vpa()
    u = feed(p, 7, lambda i, t: float((i * 7919) % 1000 + 1), lambda i, t: 300.0 * MI)
    r = recommend(u, p, now=7 * DAY)
    assert r is not None
    assert 900 * 1.15 <= r.cpu_millicores <= 900 * 1.15 * 1.06 + 12


def test_minimums_apply_to_idle_containers() -> None:
    p = VerticalPolicy()
    u = feed(p, 2, lambda i, t: 1.0, lambda i, t: 5.0 * MI)
    r = recommend(u, p, now=2 * DAY)
    assert r is not None and (r.cpu_millicores, r.memory_bytes) == (25, 250 * MI)


def test_memory_target_covers_peaks_not_averages() -> None:
    p = VerticalPolicy()
    # 400 Mi most of the time, 900 Mi for 10 minutes every day
    u = feed(p, 7, lambda i, t: 100.0, lambda i, t: (900.0 if (t % DAY) < 600 else 400.0) * MI)
    r = recommend(u, p, now=7 * DAY)
    assert r is not None and r.memory_bytes >= 900 * MI


@pytest.mark.parametrize(
    ("at_kill", "expected"),
    [
        (1024 * MI, math.ceil(1024 * MI * 1.2)),  # x1.2 is larger
        (300 * MI, 400 * MI),  # +100 Mi is larger
        (500 * MI, 600 * MI),  # both equal
    ],
)
def test_oom_bump_takes_the_larger_of_ratio_and_bytes(at_kill: int, expected: int) -> None:
    p = VerticalPolicy()
    u = feed(p, 1, lambda i, t: 100.0, lambda i, t: 200.0 * MI)
    floor = u.record_oom(DAY, at_kill, p)
    assert floor == expected
    r = recommend(u, p, now=DAY)
    assert r is not None and r.memory_bytes >= expected  # at once, before any new usage sample


@pytest.mark.parametrize(("days", "expected"), [(0, 0.0), (1, 0.5), (3, 0.75), (7, 0.875)])
def test_confidence_grows_with_history(days: float, expected: float) -> None:
    assert confidence(days * DAY) == pytest.approx(expected)


def test_low_confidence_widens_the_limits_not_the_requests() -> None:
    p = VerticalPolicy()
    short = recommend(feed(p, 0.25, lambda i, t: 500.0, lambda i, t: 500.0 * MI), p, now=0.25 * DAY)
    long = recommend(feed(p, 7, lambda i, t: 500.0, lambda i, t: 500.0 * MI), p, now=7 * DAY)
    assert short is not None and long is not None
    assert short.confidence < long.confidence
    assert (short.cpu_millicores, short.memory_bytes) == (long.cpu_millicores, long.memory_bytes)
    assert short.memory_limit_bytes is not None and long.memory_limit_bytes is not None
    assert short.memory_limit_bytes > long.memory_limit_bytes


def test_low_confidence_widens_the_requests_when_limits_follow_them() -> None:
    p = VerticalPolicy(limits_from_usage=False)
    short = recommend(feed(p, 0.25, lambda i, t: 500.0, lambda i, t: 500.0 * MI), p, now=0.25 * DAY)
    long = recommend(feed(p, 7, lambda i, t: 500.0, lambda i, t: 500.0 * MI), p, now=7 * DAY)
    assert short is not None and long is not None
    assert short.cpu_millicores > long.cpu_millicores
    assert short.cpu_limit_millicores is None and short.memory_limit_bytes is None


def test_limits_cover_the_highest_peak_with_headroom_and_cpu_bursts() -> None:
    p = VerticalPolicy()

    def mem(i: int, t: float) -> float:  # 400 Mi, 900 Mi for 10 minutes once
        return (900.0 if 100 <= i < 102 else 400.0) * MI

    r = recommend(feed(p, 7, lambda i, t: float(100 + (i % 10) * 20), mem), p, now=7 * DAY)
    assert r is not None and r.cpu_limit_millicores is not None and r.memory_limit_bytes is not None
    assert r.memory_bytes < 900 * MI  # one old spike does not set the request...
    assert r.memory_limit_bytes >= 900 * MI * (1 + p.memory_limit_headroom)  # ...but the limit covers it
    assert r.cpu_millicores < 280  # p60 of 100..280m + 10%
    assert r.cpu_limit_millicores >= max(2 * r.cpu_millicores, 280)


def test_a_leak_is_extrapolated_where_the_vpa_lags() -> None:
    def leak(i: int, t: float) -> float:
        return (300.0 + 150.0 * t / 3600) * MI  # +150 Mi per hour

    ops, vpa = VerticalPolicy(), VerticalPolicy.vpa()
    now = DAY
    ahead = leak(0, now + 6 * 3600)  # usage when the next recommendation is due
    r_ops = recommend(feed(ops, 1, lambda i, t: 100.0, leak), ops, now=now)
    r_vpa = recommend(feed(vpa, 1, lambda i, t: 100.0, leak), vpa, now=now)
    assert r_ops is not None and r_vpa is not None
    assert r_ops.memory_bytes > ahead
    assert r_vpa.memory_bytes < ahead  # p90 of peaks + 15% falls behind the leak within hours


def test_checkpoint_round_trip_gives_the_same_recommendation() -> None:
    p = VerticalPolicy()
    u = feed(p, 2, lambda i, t: float(100 + i % 50), lambda i, t: (300.0 + i % 20) * MI)
    back = ContainerUsage.from_json(u.to_json())
    assert recommend(back, p, now=2 * DAY) == recommend(u, p, now=2 * DAY)


def test_out_of_order_samples_are_ignored() -> None:
    p = VerticalPolicy()
    u = ContainerUsage.new(p)
    u.add_sample(100.0, 50.0, 1e8, p)
    u.add_sample(50.0, 5000.0, 1e9, p)
    assert u.samples == 1
