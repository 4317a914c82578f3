"""The optimizer's usage history against real PostgreSQL and a Prometheus HTTP API on 127.0.0.1: the bounded
store (downsampled per workload and container, pruned by age and by points per series), the `query_range`
reader (one workload's pods only, a step that bounds the points, errors typed), and the forecaster reading
through either, refitting at most N workloads per pass and measuring each fit."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import func, select

from opsbus.common.events.payloads.common import WorkloadRef
from opsbus.common.settings import DatabaseSettings
from opsbus.common.store import Database, upgrade
from opsbus.optimizer import store
from opsbus.optimizer.domain.forecast import ForecastPolicy
from opsbus.optimizer.domain.predictive import PredictivePolicy
from opsbus.optimizer.forecasting import Forecaster
from opsbus.optimizer.history import PrometheusHistory, StoredHistory
from opsbus.optimizer.testing import FakePrometheus
from opsbus.optimizer.usage import PrometheusUsage, Sample, UsageUnavailable

pytestmark = pytest.mark.integration
NS = "shop"
WEB = WorkloadRef(kind="Deployment", namespace=NS, name="web")
PERIOD = 600.0  # a "day" compressed into ten minutes


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    settings = DatabaseSettings.model_validate({"url": database_url})
    await upgrade(settings, store.MIGRATIONS, store.SCHEMA)
    database = Database.from_settings(settings, application_name="opsbus-tests")
    yield database
    await database.close()


def daily(t: float) -> float:
    """Millicores per pod: 100m at night, 400m at the peak of the compressed day."""
    return 250.0 - 150.0 * math.cos(2 * math.pi * t / PERIOD)


OWNER = {(NS, "web-7d9f8-aaaaa"): "web", (NS, "web-7d9f8-bbbbb"): "web", (NS, "db-66c5d-ccccc"): "db"}


async def test_the_store_downsamples_per_workload_and_container_and_reads_back_with_gaps(db: Database) -> None:
    hist = StoredHistory(db, step=60.0, max_age_seconds=86_400.0, max_points=1_000)
    samples = [
        Sample(at, NS, pod, "app", cpu_millicores=cpu, memory_bytes=mem)
        for at in (0.0, 30.0)
        for pod, cpu, mem in (("web-7d9f8-aaaaa", 100.0, 1e8), ("web-7d9f8-bbbbb", 300.0, 3e8))
    ]
    samples += [
        Sample(0.0, NS, "db-66c5d-ccccc", "pg", cpu_millicores=50.0, memory_bytes=5e8),
        Sample(0.0, NS, "stray-pod", "app", cpu_millicores=9_999.0),  # no workload of ours: left out
        Sample(180.0, NS, "web-7d9f8-aaaaa", "app", cpu_millicores=200.0, memory_bytes=2e8),
    ]
    assert await hist.record(samples, OWNER) == 3  # web@0, db@0, web@180
    # a later cycle folds more samples into the same step: the step's mean, not the last value
    await hist.record([Sample(45.0, NS, "web-7d9f8-aaaaa", "app", cpu_millicores=500.0)], OWNER)

    h = await hist.history(WEB, 0.0, 240.0, 60.0)
    cpu = h.cpu["app"]
    assert (cpu.start, cpu.step, len(cpu.values)) == (0.0, 60.0, 4)
    assert cpu.values[0] == pytest.approx((200.0 + 200.0 + 500.0) / 3)  # per-pod means at 0, 30, 45
    assert math.isnan(cpu.values[1]) and math.isnan(cpu.values[2])
    assert cpu.values[3] == 200.0
    assert h.demand is not None and h.demand.values[0] == pytest.approx((400.0 + 400.0 + 500.0) / 3)
    assert h.memory["app"].values[0] == 3e8  # the highest pod's working set
    assert set(h.cpu) == {"app"}  # the db's container is the db's
    async with db.sessions() as s:
        total = (await s.execute(select(func.count()).select_from(store.usage_history))).scalar_one()
    assert total == 3


async def test_the_store_is_pruned_by_age_and_by_points_per_series(db: Database) -> None:
    hist = StoredHistory(db, step=60.0, max_age_seconds=50 * 60.0, max_points=20)
    samples = [
        Sample(i * 60.0, NS, pod, "app", cpu_millicores=float(i))
        for i in range(100)
        for pod in ("web-7d9f8-aaaaa", "db-66c5d-ccccc")
    ]
    await hist.record(samples, OWNER)
    # at 100 min: older than 50 min goes (keeps i >= 50), then all but the newest 20 per series
    removed = await hist.prune(now=100 * 60.0)
    assert removed == 2 * 80
    t = store.usage_history
    async with db.sessions() as s:
        rows = (await s.execute(select(t.c.workload, func.min(t.c.at), func.count()).group_by(t.c.workload))).all()
    assert sorted(rows) == [("db", 80 * 60.0, 20), ("web", 80 * 60.0, 20)]
    h = await hist.history(WEB, 0.0, 100 * 60.0, 60.0)
    assert len(h.cpu["app"].values) == 20  # a read never asks for more than max_points steps


async def test_prometheus_reader_reads_one_workloads_pods_at_a_bounded_step() -> None:
    pods = [(NS, "web-7d9f8-aaaaa", "app"), (NS, "webhook-5c8b9-ddddd", "app"), ("other", "web-7d9f8-eeeee", "app")]

    def usage(ns: str, pod: str, container: str, t: float) -> tuple[float, float]:
        return (0.1 if pod.startswith("web-") else 5.0), 2e8

    async with FakePrometheus(usage, lambda: pods).running() as prom, httpx.AsyncClient() as http:
        reader = PrometheusHistory(PrometheusUsage(http, prom.url, timeout=10.0), max_points=100)
        h = await reader.history(WEB, 0.0, 86_400.0, 60.0)
        steps = {r["step"] for r in prom.requests}
        assert steps == {"864"}  # one day at most 100 points: the 60 s asked for becomes 864 s
        assert all('namespace="shop",pod=~"web-[a-z0-9]{1,10}-[a-z0-9]{5}"' in r["query"] for r in prom.requests)
        cpu = h.cpu["app"]
        assert len(cpu.values) == 100 and cpu.step == 864.0
        # webhook-... is another Deployment's pod, other/web-... another namespace's: neither counted
        assert max(cpu.values) == pytest.approx(100.0)
        assert h.demand is not None and max(h.demand.values) == pytest.approx(100.0)
        prom.fail = True
        with pytest.raises(UsageUnavailable, match="HTTP 500"):
            await reader.history(WEB, 0.0, 3_600.0, 60.0)


async def test_forecaster_fits_from_the_store_at_most_n_workloads_per_pass(db: Database) -> None:
    hist = StoredHistory(db, step=10.0, max_age_seconds=86_400.0, max_points=10_000)
    refs = [WorkloadRef(kind="Deployment", namespace=NS, name=n) for n in ("web", "api", "db")]
    owner = {(NS, f"{r.name}-7d9f8-aaaaa"): r.name for r in refs}
    now = 4 * PERIOD
    samples = [
        Sample(t, NS, pod, "app", cpu_millicores=daily(t), memory_bytes=2e8)
        for t in (i * 10.0 for i in range(int(now / 10)))
        for (_, pod) in owner
    ]
    await hist.record(samples, owner)
    registry = CollectorRegistry()
    policy = ForecastPolicy(
        bucket_seconds=20.0,
        periods=(PERIOD,),
        horizon_seconds=PERIOD,
        trend_window_seconds=2 * PERIOD,
        residual_window_seconds=2 * PERIOD,
        refresh_seconds=300.0,
    )
    forecaster = Forecaster(
        hist,
        policy=policy,
        predictive=PredictivePolicy(cycle_seconds=30.0),
        history_seconds=now,
        step_seconds=10.0,
        workloads_per_pass=2,
        registry=registry,
    )
    first = await forecaster.refresh(refs, now)
    assert len(first) == 2  # the CPU bound: two fits this pass
    second = await forecaster.refresh(refs, now + 30)
    assert [r.name for r in second] == [n for n in ("web", "api", "db") if n not in {r.name for r in first}]
    assert await forecaster.refresh(refs, now + 60) == []  # nothing due before refresh_seconds
    f = forecaster.forecasts(WEB, in_place_resize=True, startup_seconds=15.0)
    assert f is not None and f.demand is not None and f.demand.reliable, f and f.demand and f.demand.reason
    assert f.demand.periods == (PERIOD,)
    # the next compressed day's peak (400m at half a period) is forecast
    assert f.demand.peak(now, now + PERIOD, upper=False) == pytest.approx(400.0, rel=0.1)
    assert f.demand.mean_at(now + 0.5 * PERIOD) > 2.5 * f.demand.mean_at(now + 0.02 * PERIOD)
    assert f.startup_seconds == 15.0 and f.in_place_resize
    assert registry.get_sample_value("opsbus_optimizer_forecast_fit_seconds_count") == 3
    assert registry.get_sample_value("opsbus_optimizer_forecast_fits_total", {"outcome": "reliable"}) == 3
