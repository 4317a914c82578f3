"""Forecasts on a schedule, with bounded CPU: which workloads are refitted this pass, and the fits kept between.

Why a module of its own: `domain.forecast.fit` is pure and costs tens of milliseconds per series; the cycle
runs every few minutes over every workload. This keeps one fit per workload for `refresh_seconds`, refits at
most `workloads_per_pass` workloads per cycle (the oldest fits first, workloads never fitted before them),
runs the fits in a worker thread (the event loop keeps serving the bus), and measures each fit
(`opsbus_optimizer_forecast_fit_seconds`). The history comes through the `HistorySource` port.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram

from opsbus.common.errors import TransientError
from opsbus.common.events.payloads.common import WorkloadRef
from opsbus.optimizer.domain.forecast import Forecast, ForecastPolicy, fit
from opsbus.optimizer.domain.planning import Forecasts
from opsbus.optimizer.domain.predictive import PredictivePolicy
from opsbus.optimizer.history import HistorySource, Series, WorkloadHistory

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fitted:
    at: float
    cpu: dict[str, Forecast] = field(default_factory=dict)
    memory: dict[str, Forecast] = field(default_factory=dict)
    demand: Forecast | None = None
    points: int = 0


def fit_history(h: WorkloadHistory, policy: ForecastPolicy, now: float) -> Fitted:
    """Every series of one workload fitted (pure CPU: run it off the event loop)."""

    def one(s: Series | None) -> Forecast | None:
        return None if s is None else fit(s.values, s.start, s.step, policy)

    cpu = {c: f for c, s in h.cpu.items() if (f := one(s)) is not None}
    memory = {c: f for c, s in h.memory.items() if (f := one(s)) is not None}
    return Fitted(at=now, cpu=cpu, memory=memory, demand=one(h.demand), points=h.points)


def _key(ref: WorkloadRef) -> tuple[str, str]:
    return ref.namespace, ref.name


class Forecaster:
    def __init__(
        self,
        source: HistorySource,
        *,
        policy: ForecastPolicy,
        predictive: PredictivePolicy,
        history_seconds: float,
        step_seconds: float,
        workloads_per_pass: int,
        registry: CollectorRegistry,
    ) -> None:
        self.source, self.policy, self.predictive = source, policy, predictive
        self.history_seconds, self.step_seconds = history_seconds, step_seconds
        self.workloads_per_pass = workloads_per_pass
        self.fitted: dict[tuple[str, str], Fitted] = {}
        self.fit_seconds = Histogram(
            "opsbus_optimizer_forecast_fit_seconds",
            "CPU time of one workload's forecast fit (every container and its total demand).",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=registry,
        )
        self.fits = Counter(
            "opsbus_optimizer_forecast_fits",
            "Forecast fits by outcome: reliable (demand or every CPU series), unreliable, no_history, failed.",
            ["outcome"],
            registry=registry,
        )

    def due(self, refs: Sequence[WorkloadRef], now: float) -> list[WorkloadRef]:
        """The workloads to refit this pass: never fitted first, then the oldest fits past `refresh_seconds`."""
        stale = [
            r for r in refs if now - self.fitted.get(_key(r), Fitted(at=-math.inf)).at >= self.policy.refresh_seconds
        ]
        stale.sort(key=lambda r: self.fitted.get(_key(r), Fitted(at=-math.inf)).at)
        return stale[: self.workloads_per_pass]

    async def refresh(self, refs: Sequence[WorkloadRef], now: float) -> list[WorkloadRef]:
        """Refit the due workloads (at most `workloads_per_pass`); forget workloads no longer in `refs`."""
        live = {_key(r) for r in refs}
        for gone in set(self.fitted) - live:
            del self.fitted[gone]
        done: list[WorkloadRef] = []
        for ref in self.due(refs, now):
            try:
                h = await self.source.history(ref, now - self.history_seconds, now, self.step_seconds)
            except TransientError as exc:
                log.warning("history of %s unavailable (%s): forecast kept as it was", ref, exc)
                self.fits.labels("failed").inc()
                continue

            def timed(h: WorkloadHistory = h) -> tuple[Fitted, float]:
                t0 = time.thread_time()
                result = fit_history(h, self.policy, now)
                return result, time.thread_time() - t0

            fitted, cpu = await asyncio.to_thread(timed)
            self.fit_seconds.observe(cpu)
            self.fitted[_key(ref)] = fitted
            self.fits.labels(self._outcome(fitted)).inc()
            done.append(ref)
        return done

    @staticmethod
    def _outcome(f: Fitted) -> str:
        if not f.cpu and f.demand is None:
            return "no_history"
        reliable = (f.demand is not None and f.demand.reliable) or (
            bool(f.cpu) and all(x.reliable for x in f.cpu.values())
        )
        return "reliable" if reliable else "unreliable"

    def forecasts(self, ref: WorkloadRef, *, in_place_resize: bool, startup_seconds: float) -> Forecasts | None:
        """What the planner takes (`Snapshot.forecasts`); None before the first fit of `ref`."""
        f = self.fitted.get(_key(ref))
        if f is None:
            return None
        return Forecasts(
            cpu=f.cpu,
            memory=f.memory,
            demand=f.demand,
            upper_quantile=self.policy.upper_quantile,
            in_place_resize=in_place_resize,
            startup_seconds=startup_seconds,
            policy=self.predictive,
        )
