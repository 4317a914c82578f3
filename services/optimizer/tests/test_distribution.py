"""The usage the console draws (domain/distribution.py): shares per bucket add up, percentiles match the
histogram's, and an empty history is empty, not zero-filled."""

from __future__ import annotations

import pytest

from opsbus.optimizer.domain.distribution import container_view, resource_usage
from opsbus.optimizer.domain.histogram import CPU_BUCKETS, DecayingHistogram
from opsbus.optimizer.domain.vertical import ContainerUsage


def test_shares_add_up_and_percentiles_are_the_histograms() -> None:
    h = DecayingHistogram(CPU_BUCKETS, half_life_seconds=86_400)
    for i in range(100):
        h.add(100.0 if i < 90 else 800.0, at=1000.0 + i)
    usage = resource_usage(h, "millicores")
    assert sum(b.share for b in usage.buckets) == pytest.approx(1.0)
    assert usage.p50 == h.percentile(0.5) and usage.p99 == h.percentile(0.99)
    assert usage.p50 < 200 < 700 < usage.p99
    assert [b.start < 200 for b in usage.buckets] == [True, False]  # two buckets: 100m and 800m
    assert usage.buckets[0].share == pytest.approx(0.9, abs=0.01)
    assert usage.max == usage.buckets[-1].end and usage.unit == "millicores"


def test_a_container_without_samples_has_no_buckets() -> None:
    view = container_view("app", ContainerUsage())
    assert view.samples == 0 and view.cpu.buckets == [] and view.memory.buckets == []
    assert view.cpu.p95 == 0.0 and view.memory.unit == "bytes"
