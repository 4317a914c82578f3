"""Decaying histograms: buckets, percentiles, half-life decay, reference shifts, checkpoints."""

from __future__ import annotations

import itertools

import pytest

from opsbus.optimizer.domain.histogram import CPU_BUCKETS, MEMORY_BUCKETS, Buckets, DecayingHistogram

DAY = 86_400.0


@pytest.mark.parametrize("value", [0.0, 5.0, 10.0, 10.5, 99.9, 1000.0, 123_456.0, 999_999.0])
def test_every_value_falls_in_the_bucket_that_covers_it(value: float) -> None:
    i = CPU_BUCKETS.index(value)
    assert CPU_BUCKETS.start(i) <= value < CPU_BUCKETS.start(i + 1)


def test_buckets_grow_by_the_ratio_so_relative_error_is_bounded() -> None:
    b = Buckets(first_size=10.0, ratio=1.05)
    widths = [b.start(i + 1) - b.start(i) for i in range(50)]
    assert widths[0] == pytest.approx(10.0)
    assert all(w2 / w1 == pytest.approx(1.05) for w1, w2 in itertools.pairwise(widths))
    assert MEMORY_BUCKETS.start(1) == pytest.approx(1e7)  # the VPA's first memory bucket: 10 MB


@pytest.mark.parametrize(("p", "expected"), [(0.5, 500.0), (0.9, 900.0), (0.95, 950.0), (1.0, 1000.0)])
def test_percentile_of_uniform_samples_within_one_bucket(p: float, expected: float) -> None:
    h = DecayingHistogram(CPU_BUCKETS)
    for v in range(1, 1001):
        h.add(float(v), at=0.0)
    got = h.percentile(p)
    assert expected <= got <= expected * 1.05 + 10  # upper end of the bucket: never below the usage


def test_empty_histogram_has_no_percentile() -> None:
    assert DecayingHistogram(CPU_BUCKETS).percentile(0.9) == 0.0


def test_a_sample_one_half_life_newer_weighs_twice_as_much() -> None:
    h = DecayingHistogram(CPU_BUCKETS, half_life_seconds=DAY)
    for _ in range(100):
        h.add(100.0, at=0.0)
    for _ in range(100):
        h.add(1000.0, at=DAY)
    low = h.weights[CPU_BUCKETS.index(100.0)]
    high = h.weights[CPU_BUCKETS.index(1000.0)]
    assert high / low == pytest.approx(2.0)
    # one third of the weight is old: p40 is already in the new (high) bucket
    assert h.percentile(0.4) > 900.0
    same_age = DecayingHistogram(CPU_BUCKETS, half_life_seconds=DAY)
    for v in (100.0, 1000.0):
        for _ in range(100):
            same_age.add(v, at=0.0)
    assert same_age.percentile(0.4) < 115.0


def test_reference_shift_keeps_weights_finite_and_forgets_the_distant_past() -> None:
    h = DecayingHistogram(CPU_BUCKETS, half_life_seconds=3600.0)
    h.add(100.0, at=0.0)
    h.add(500.0, at=3600.0 * 150)  # exponent 150 > 100: the reference moves
    assert h.reference == 3600.0 * 150
    assert h.total_weight == pytest.approx(1.0)
    assert h.percentile(0.01) > 490.0


def test_share_above_is_the_weighted_exceedance() -> None:
    h = DecayingHistogram(CPU_BUCKETS)
    for v in range(1, 101):
        h.add(float(v * 10), at=0.0)
    assert h.share_above(500.0) == pytest.approx(0.5, abs=0.03)
    assert h.share_above(2000.0) == 0.0


def test_checkpoint_round_trip() -> None:
    h = DecayingHistogram(MEMORY_BUCKETS, half_life_seconds=DAY)
    for i in range(50):
        h.add(2e8 + i * 1e6, at=i * 60.0)
    back = DecayingHistogram.from_json(h.to_json())
    assert back.weights == pytest.approx(h.weights)
    assert back.percentile(0.95) == h.percentile(0.95)
