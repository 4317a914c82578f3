"""Saturation rules on plain series (table-driven, injected clock, no network), and the engine firing once on them
with the observed values as evidence, then resolving."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from opsbus.common.events.payloads.alert import AlertFired, AlertResolved
from opsbus.watcher.domain.cache import Cache
from opsbus.watcher.domain.detecting import fingerprint
from opsbus.watcher.domain.objects import POD
from opsbus.watcher.domain.saturation import (
    CPU_THROTTLED,
    MEMORY_FILLS_SOON,
    MEMORY_NEAR_LIMIT,
    VOLUME_FILLING_UP,
    ContainerId,
    SaturationRules,
    Snapshot,
    VolumeId,
    counter_increase,
    detect_saturation,
    linear_fit,
)
from opsbus.watcher.executing import Engine
from opsbus.watcher.settings import WatcherOptions

from . import shapes as s
from .test_alerting import NoLogs, Sent

NOW = datetime(2025, 3, 14, 9, 30, 0, tzinfo=UTC)
GI = 1024**3
CID = ContainerId("payments", "checkout-7d9f8b6c5-x2x4q", "app")
RULES = SaturationRules(
    memory_ratio=0.9,
    memory_for_seconds=300,
    throttle_ratio=0.25,
    throttle_window_seconds=300,
    throttle_min_periods=100,
    trend_window_seconds=3600,
    trend_horizon_seconds=4 * 3600,
    trend_min_samples=5,
)


def series(fn: Callable[[float], float], *, seconds: float, step: float = 30) -> list[tuple[datetime, float]]:
    """Samples every `step` over the last `seconds` ending at NOW; fn gets seconds-before-NOW."""
    n = int(seconds // step)
    return [(NOW - timedelta(seconds=(n - i) * step), fn((n - i) * step)) for i in range(n + 1)]


def memory(ws: Callable[[float], float], *, seconds: float = 600, limit: float = GI) -> Snapshot:
    return Snapshot(
        end=NOW,
        working_set={CID: series(ws, seconds=seconds)},
        memory_limit={CID: series(lambda _: limit, seconds=seconds)},
        queries={"working_set": "max by (namespace, pod, container) (container_memory_working_set_bytes)"},
    )


def cpu(throttled_per_step: float, periods_per_step: float, *, reset: bool = False) -> Snapshot:
    """CFS counters: 100 ms periods, `*_per_step` increments every 30 s sample; optionally a counter reset."""

    def counter(rate: float, base: float) -> Callable[[float], float]:
        def value(ago: float) -> float:
            steps = (600 - ago) / 30
            if reset and ago <= 150:
                return (150 - ago) / 30 * rate  # restarted container: counters from zero
            return base + steps * rate

        return value

    return Snapshot(
        end=NOW,
        throttled_periods={CID: series(counter(throttled_per_step, 5000), seconds=600)},
        periods={CID: series(counter(periods_per_step, 90000), seconds=600)},
    )


CASES: list[tuple[str, Snapshot, list[str]]] = [
    ("memory steady at 95% for 10 min", memory(lambda _: 0.95 * GI), [MEMORY_NEAR_LIMIT]),
    ("memory at 95% only for the last 2 min", memory(lambda ago: 0.95 * GI if ago <= 120 else 0.5 * GI), []),
    ("memory at 85%, flat", memory(lambda _: 0.85 * GI), []),
    (
        "memory exactly at the ratio for 5 min",
        memory(lambda ago: 0.9 * GI if ago <= 300 else 0.2 * GI),
        [MEMORY_NEAR_LIMIT],
    ),
    ("memory dipped below 1 min ago", memory(lambda ago: 0.5 * GI if ago == 60 else 0.95 * GI), []),
    ("no limit (0): no ratio", memory(lambda _: 0.95 * GI, limit=0), []),
    # grows 50% of the limit in an hour from 10%: at 60% now, the rest (40%) in 0.8 h
    (
        "memory growing, fills in 0.8 h",
        memory(lambda ago: (0.6 - 0.5 * ago / 3600) * GI, seconds=3600),
        [MEMORY_FILLS_SOON],
    ),
    # grows 5% of the limit per hour from 40%: 50% left at 5%/h is 10 h, beyond the 4 h horizon
    ("memory growing slowly, fills in 10 h", memory(lambda ago: (0.45 - 0.05 * ago / 3600) * GI, seconds=3600), []),
    ("memory shrinking", memory(lambda ago: (0.3 + 0.2 * ago / 3600) * GI, seconds=3600), []),
    ("growth seen over 10 min only (window half-covered)", memory(lambda ago: (0.6 - ago / 3600) * GI), []),
    (
        "near limit and still growing: one alert, near-limit",
        memory(lambda ago: (0.97 - 0.01 * ago / 600) * GI),
        [MEMORY_NEAR_LIMIT],
    ),
    ("throttled 50% of 300 periods per 30 s", cpu(150, 300), [CPU_THROTTLED]),
    ("throttled 10%", cpu(30, 300), []),
    ("throttled 100% of an idle container (20 periods in 5 min)", cpu(2, 2), []),
    ("throttled 50% across a counter reset", cpu(150, 300, reset=True), [CPU_THROTTLED]),
    ("no samples at all", Snapshot(end=NOW), []),
]


@pytest.mark.parametrize(("name", "snap", "expected"), CASES, ids=[c[0] for c in CASES])
def test_saturation_rules(name: str, snap: Snapshot, expected: list[str]) -> None:
    findings = detect_saturation(snap, RULES, "prod")
    assert [f.alertname for f in findings] == expected, name
    for f in findings:
        assert f.labels == {
            "alertname": f.alertname,
            "cluster": "prod",
            "severity": "warning",
            "namespace": "payments",
            "pod": CID.pod,
            "container": "app",
        }
        assert f.fingerprint == fingerprint(f.labels)
        assert f.target.kind == "Pod" and f.target.name == CID.pod
        assert f.since <= NOW
        (obs,) = f.metrics
        assert obs.threshold is not None


def test_evidence_values() -> None:
    (near,) = detect_saturation(memory(lambda _: 0.95 * GI), RULES, "prod")
    assert near.metrics[0].name == "memory_working_set_ratio"
    assert near.metrics[0].value == pytest.approx(0.95)
    assert near.metrics[0].query is not None and "container_memory_working_set_bytes" in near.metrics[0].query
    assert near.since == NOW - timedelta(seconds=600)  # the first sample of the run above the ratio

    (trend,) = detect_saturation(memory(lambda ago: (0.6 - 0.5 * ago / 3600) * GI, seconds=3600), RULES, "prod")
    secs = trend.metrics[0].predicted_exhaustion_seconds
    assert secs == pytest.approx(0.8 * 3600, rel=1e-3)
    assert "0.8 hours" in trend.summary

    (thr,) = detect_saturation(cpu(150, 300), RULES, "prod")
    assert thr.metrics[0].value == pytest.approx(0.5)
    (thr_reset,) = detect_saturation(cpu(150, 300, reset=True), RULES, "prod")
    assert thr_reset.metrics[0].value == pytest.approx(0.5)


def test_math_helpers() -> None:
    t = [NOW + timedelta(seconds=i) for i in range(4)]
    assert counter_increase(list(zip(t, [10.0, 15.0, 3.0, 8.0], strict=True))) == 5 + 3 + 5
    slope, at_last = linear_fit(list(zip(t, [1.0, 3.0, 5.0, 7.0], strict=True))) or (0, 0)
    assert (slope, at_last) == pytest.approx((2.0, 7.0))
    assert linear_fit([(NOW, 1.0), (NOW, 2.0)]) is None


def test_cache_scopes_and_labels_from_the_pod() -> None:
    cache = Cache()
    cache.apply("ReplicaSet", "ADDED", s.replicaset())
    cache.apply("Pod", "ADDED", s.pod())
    (f,) = detect_saturation(memory(lambda _: 0.95 * GI), RULES, "prod", cache)
    assert f.labels["node"] == "node-a"
    assert f.labels["workload"] == "checkout"  # pod -> ReplicaSet -> Deployment, as the pod detectors do
    assert f.workload is not None and f.workload.kind == "Deployment"
    assert f.target.uid == "uid-1"
    other = ContainerId("elsewhere", "unwatched", "app")
    snap = Snapshot(
        end=NOW,
        working_set={other: series(lambda _: 0.99 * GI, seconds=600)},
        memory_limit={other: series(lambda _: GI, seconds=600)},
    )
    assert detect_saturation(snap, RULES, "prod", cache) == []  # not in the cache: not watched (or gone)


async def test_engine_fires_once_with_metrics_then_resolves() -> None:
    clock = [NOW]
    sent = Sent()
    opts = WatcherOptions.model_validate({"thresholds": {"resolve_after_seconds": 5}})
    engine = Engine(
        cluster="prod", options=opts, sender=sent, logs=NoLogs(), registry=CollectorRegistry(), clock=lambda: clock[0]
    )
    engine.synced = True
    await engine.on_change(POD, engine.cache.apply("Pod", "ADDED", s.pod(rv="1")), False)  # type: ignore[arg-type]
    snap = memory(lambda _: 0.95 * GI)
    for _ in range(3):  # three saturation runs, same fault
        engine.set_saturation(detect_saturation(snap, RULES, "prod", engine.cache))
        await engine.evaluate()
        clock[0] += timedelta(seconds=30)
    (fired,) = sent.of("fired")
    alert = fired.payload_as(AlertFired)
    assert alert.alertname == MEMORY_NEAR_LIMIT
    assert alert.evidence.metrics[0].value == pytest.approx(0.95)
    assert alert.starts_at == NOW - timedelta(seconds=600)

    engine.set_saturation(detect_saturation(memory(lambda _: 0.5 * GI), RULES, "prod", engine.cache))
    await engine.evaluate()
    assert sent.of("resolved") == []  # hysteresis
    clock[0] += timedelta(seconds=6)
    await engine.evaluate()
    (resolved,) = sent.of("resolved")
    assert resolved.payload_as(AlertResolved).fingerprint == alert.fingerprint
    assert len(sent.of("fired")) == 1


async def test_engine_resolves_saturation_of_a_deleted_pod_at_once() -> None:
    sent = Sent()
    engine = Engine(
        cluster="prod",
        options=WatcherOptions(),
        sender=sent,
        logs=NoLogs(),
        registry=CollectorRegistry(),
        clock=lambda: NOW,
    )
    engine.synced = True
    await engine.on_change(POD, engine.cache.apply("Pod", "ADDED", s.pod(rv="1")), False)  # type: ignore[arg-type]
    engine.set_saturation(detect_saturation(cpu(150, 300), RULES, "prod", engine.cache))
    await engine.evaluate()
    assert [e.payload_as(AlertFired).alertname for e in sent.of("fired")] == [CPU_THROTTLED]
    await engine.on_change(POD, engine.cache.apply("Pod", "DELETED", s.pod(rv="2")), False)  # type: ignore[arg-type]
    await engine.evaluate()
    (resolved,) = sent.of("resolved")
    assert resolved.payload_as(AlertResolved).resolution == "object deleted"


VID = VolumeId("payments", "data-ledger-0")
VOLUME_RULES = SaturationRules(
    volume_available_ratio=0.03,
    volume_trend_window_seconds=6 * 3600,
    volume_horizon_seconds=4 * 86400,
    volume_trend_below_ratio=0.15,
    trend_min_samples=5,
)


def volume(free: Callable[[float], float], *, seconds: float = 6 * 3600, capacity: float = 100 * GI) -> Snapshot:
    """kubelet volume stats: free bytes as a fraction of capacity, fn of seconds-before-NOW."""
    return Snapshot(
        end=NOW,
        volume_available={VID: series(lambda ago: free(ago) * capacity, seconds=seconds, step=60)},
        volume_capacity={VID: series(lambda _: capacity, seconds=seconds, step=60)},
        queries={
            "volume_available": "max by (namespace, persistentvolumeclaim) (kubelet_volume_stats_available_bytes)"
        },
    )


# (name, snapshot, fires, predicted seconds to full or None)
VOLUME_CASES: list[tuple[str, Snapshot, bool, float | None]] = [
    ("half empty, steady", volume(lambda _: 0.5), False, None),
    ("2% free, steady: nearly full", volume(lambda _: 0.02), True, None),
    ("10% free, losing 2%/h: full in 5 h", volume(lambda ago: 0.10 + 0.02 * ago / 3600), True, 5 * 3600),
    (
        "10% free, losing 1%/day: 10 days, beyond the horizon",
        volume(lambda ago: 0.10 + 0.01 * ago / 86400),
        False,
        None,
    ),
    ("40% free, losing 5%/h: not below the 15% guard", volume(lambda ago: 0.40 + 0.05 * ago / 3600), False, None),
    ("10% free and rising (cleanup)", volume(lambda ago: 0.10 - 0.01 * ago / 3600), False, None),
    (
        "falling, seen for 1 h only (window half-covered)",
        volume(lambda ago: 0.1 + ago / 3600, seconds=3600),
        False,
        None,
    ),
    ("no capacity series", Snapshot(end=NOW, volume_available={VID: series(lambda _: 1.0, seconds=600)}), False, None),
]


@pytest.mark.parametrize(("name", "snap", "fires", "eta"), VOLUME_CASES, ids=[c[0] for c in VOLUME_CASES])
def test_disk_fill_rule(name: str, snap: Snapshot, fires: bool, eta: float | None) -> None:
    findings = detect_saturation(snap, VOLUME_RULES, "prod")
    assert [f.alertname for f in findings] == ([VOLUME_FILLING_UP] if fires else []), name
    for f in findings:
        assert dict(f.labels) == {
            "alertname": VOLUME_FILLING_UP,
            "cluster": "prod",
            "severity": "warning",
            "namespace": "payments",
            "persistentvolumeclaim": "data-ledger-0",
        }
        assert f.target.kind == "PersistentVolumeClaim" and f.target.name == "data-ledger-0"
        (obs,) = f.metrics
        assert obs.unit == "bytes" and obs.threshold == pytest.approx(0.03 * 100 * GI)
        if eta is None:
            assert obs.predicted_exhaustion_seconds is None
        else:
            assert obs.predicted_exhaustion_seconds == pytest.approx(eta, rel=0.01)


def test_nearly_full_volume_is_dated_from_when_it_crossed_the_ratio() -> None:
    snap = volume(lambda ago: 0.02 if ago <= 1800 else 0.5)
    (f,) = detect_saturation(snap, VOLUME_RULES, "prod")
    assert f.since == NOW - timedelta(seconds=1800)
    assert "nearly full" in f.summary
