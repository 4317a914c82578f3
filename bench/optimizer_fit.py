"""Forecast fit cost: CPU seconds of one workload's fit in the running optimizer (`forecasting.fit_history`: its
container's CPU and memory series and its total demand), by length of history, against the percentile
recommender's cost for the same samples (the baseline the optimizer paid before forecasts), in the same run.

Why: the service refits at most `forecast.workloadsPerPass` workloads per cycle; this says what one costs, so
the bound can be set from a CPU budget (fits per cycle x CPU per fit / cycle seconds = share of a core).

Series: 5-minute samples with a daily cycle, a weekday/weekend level and 5% noise (a season is found, so the
fit runs STL or MSTL, the expensive path).

    uv run python -m bench.optimizer_fit [--days 7,14,28] [--repeat 3]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np

from opsbus.optimizer.domain.forecast import DAY, WEEK, ForecastPolicy
from opsbus.optimizer.domain.vertical import ContainerUsage, VerticalPolicy
from opsbus.optimizer.forecasting import fit_history
from opsbus.optimizer.history import Series, WorkloadHistory

STEP = 300.0


def history(days: int, seed: int = 1) -> WorkloadHistory:
    rng = np.random.default_rng(seed)
    t = np.arange(int(days * DAY / STEP)) * STEP
    v = 300 * (1 + 0.6 * np.sin(2 * math.pi * t / DAY)) * (1 + 0.3 * (t % WEEK >= 5 * DAY))
    v = v * rng.normal(1, 0.05, len(t))
    cpu = Series(0.0, STEP, tuple(float(x) for x in v))
    memory = Series(0.0, STEP, tuple(float(x) * 1e6 for x in v))
    return WorkloadHistory(cpu={"app": cpu}, memory={"app": memory}, demand=cpu)


def percentile_cost(h: WorkloadHistory) -> float:
    policy = VerticalPolicy()
    started = time.thread_time()
    u = ContainerUsage.new(policy)
    cpu, mem = h.cpu["app"], h.memory["app"]
    for i, (c, m) in enumerate(zip(cpu.values, mem.values, strict=True)):
        u.add_pods(cpu.start + i * cpu.step, [c], [m], policy)
    return time.thread_time() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", default="7,14,28")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print("| history | points per series | seasons found | fit CPU (median) | percentile histograms CPU | ratio |")
    print("|---|---|---|---|---|---|")
    for days in (int(d) for d in args.days.split(",")):
        h = history(days)
        policy = ForecastPolicy(max_history_seconds=days * DAY)
        runs = []
        fitted = None
        for _ in range(args.repeat):
            started = time.thread_time()
            fitted = fit_history(h, policy, days * DAY)
            runs.append(time.thread_time() - started)
        base = statistics.median(percentile_cost(h) for _ in range(args.repeat))
        fit = statistics.median(runs)
        seasons = "/".join(f"{p / DAY:g}d" for p in fitted.demand.periods) if fitted and fitted.demand else "-"
        print(f"| {days} d | {len(h.cpu['app'].values)} | {seasons} | {fit:.3f} s | {base:.3f} s | {fit / base:.1f}x |")


if __name__ == "__main__":
    main()
