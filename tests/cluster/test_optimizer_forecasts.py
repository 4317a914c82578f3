"""Forecast-driven scaling and in-place resize on the sandbox (Kubernetes 1.36: `pods/resize` served), with real
NATS JetStream and PostgreSQL, a Prometheus HTTP API on 127.0.0.1 for the current usage, and the history fed
through the optimizer's own store.

The workload follows a daily pattern compressed into 15 minutes: 150m per pod at night, 1.5 cores per pod at the
peak, the rise a third into the "day". The cycle runs just before the rise, while the pods are nearly idle: a
reactive optimizer would scale down here; the forecast says the rise comes within the lead time (the pods'
measured start -> ready plus one cycle), so it scales up ahead, and resizes the running pods' CPU in place for
the hours ahead instead of replacing them.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from opsbus.common.bus import Bus
from opsbus.optimizer.cluster import RESIZED_IN_PLACE
from opsbus.optimizer.domain.planning import Action
from opsbus.optimizer.history import StoredHistory
from opsbus.optimizer.testing import FakePrometheus
from opsbus.optimizer.usage import Sample
from tests.cluster.conftest import SandboxHandle
from tests.cluster.kube import Cluster, wait_until
from tests.cluster.test_optimizer_rightsizing import (
    MI,
    Start,
    create_deployment,
    optimizers,
    running,
    wait_for,
)

pytestmark = pytest.mark.cluster
PERIOD = 900.0  # one "day"
RISE = 0.33  # the load rises a third into the day
NOW_PHASE = 0.30  # the cycle runs 27 s before it


def per_pod(phase: float) -> float:
    """Millicores per pod: 150m, rising steeply at RISE to 1500m until 0.7 of the day."""
    if RISE <= phase < 0.7:
        return 1500.0
    return 150.0


@pytest.fixture
async def start_optimizer(database_url: str, nats_url: str, sandbox: SandboxHandle) -> AsyncIterator[Start]:
    async with optimizers(database_url, nats_url, sandbox) as start:
        yield start


async def test_scaled_ahead_of_a_forecast_rise_and_resized_in_place(
    cluster: Cluster, start_optimizer: Start, make_bus: Callable[..., Awaitable[Bus]]
) -> None:
    ns = cluster.namespace
    create_deployment(cluster, "daily", 2)  # 1 CPU / 1 Gi requested per pod
    series = await running(cluster, "daily", 2)
    t0 = [0.0]  # start of the current compressed day, set once the optimizer runs

    def phase(t: float) -> float:
        return ((t - t0[0]) % PERIOD) / PERIOD

    def usage(ns_: str, pod: str, container: str, t: float) -> tuple[float, float]:
        return per_pod(phase(t)) / 1000.0, 300 * MI

    async with FakePrometheus(usage, lambda: series).running() as prom:
        optimizer = await start_optimizer(
            ns,
            prom.url,
            "auto",
            min_confidence=0.0,
            forecast={
                "history_source": "store",
                "in_place_resize": "auto",
                "periods_seconds": [PERIOD],
                "bucket_seconds": 15.0,
                "history_seconds": 4 * PERIOD,
                "horizon_seconds": PERIOD,
                "trend_window_seconds": 2 * PERIOD,
                "residual_window_seconds": 2 * PERIOD,
                "refresh_seconds": 60.0,
                "in_place_window_seconds": PERIOD / 2,
            },
            history={"step_seconds": 5.0},
            options={"interval_seconds": 30.0, "usage_step_seconds": 15.0, "bootstrap_history_seconds": 600.0},
        )
        assert optimizer.in_place_resize, "the sandbox serves pods/resize (Kubernetes 1.33+)"
        now = time.time()
        t0[0] = now - NOW_PHASE * PERIOD
        # four compressed days of history, with noise, through the optimizer's own store
        history = optimizer.history
        assert isinstance(history, StoredHistory)
        rng = random.Random(7)
        owner = {(n, pod): "daily" for n, pod, _ in series}
        samples = [
            Sample(t, n, pod, c, cpu_millicores=per_pod(phase(t)) * rng.uniform(0.93, 1.07), memory_bytes=300 * MI)
            for t in (now - 4 * PERIOD + i * 5.0 for i in range(int(4 * PERIOD / 5.0)))
            for n, pod, c in series
        ]
        assert await history.record(samples, owner) > 0

        report = await optimizer.cycle()
        (p,) = report.plans
        assert p.action is Action.APPLY, p.reason
        # nearly idle now (300m of 2 cores): the reactive rule would go down; the forecast goes up, ahead
        assert p.replicas_step is not None and p.replicas_step > 2, p.reason
        assert "predictive: forecast" in p.reason, p.reason
        assert phase(time.time()) < RISE, "the scale-up must land before the rise"

        d = cluster.deployment("daily")
        assert d.spec.replicas == p.replicas_step
        # in place: the running pods' CPU request changed, the template (and so the pods) left as they were
        template = d.spec.template.spec.containers[0].resources.requests
        assert template["cpu"] == "1"
        resized = json.loads(d.metadata.annotations[RESIZED_IN_PLACE])
        cpu = resized["app"]["requests"]["cpu"]
        step = p.step[0].cpu_request
        assert step is not None and step > 1000  # the peak of the next half day, not the idle now
        for _, pod, _ in series:
            live = cluster.pod(pod)
            assert live.metadata.deletion_timestamp is None
            assert live.spec.containers[0].resources.requests["cpu"] == cpu

        def acknowledged() -> bool:  # the kubelet's side (the sandbox's pod-resize stage): running with it
            pods = [cluster.pod(pod) for _, pod, _ in series]
            return all(
                (s := p.status.container_statuses[0]).resources is not None and s.resources.requests["cpu"] == cpu
                for p in pods
            )

        await asyncio.to_thread(wait_until, "in-place resize acknowledged", acknowledged, 60)
        assert optimizer.resizes.labels("in_place")._value.get() == 1
        # the forecast is what the event says it acted on, with money and risk
        bus = await make_bus("forecast-probe")
        applied = await wait_for(bus, f"scale.applied.sandbox.{ns}", bool)
        assert applied[-1].data["replicas"]["recommended"] == p.replicas_step
        recs = await wait_for(bus, f"scale.recommended.sandbox.{ns}", bool)
        basis = recs[-1].data["containers"][0]["basis"]
        assert "cpu predictive: forecast" in basis and "min/month above request" in basis, basis
        assert not math.isnan(recs[-1].data["cost"]["monthly_delta"])
