"""Horizontal replay: the Kubernetes HPA and the optimizer's replica recommendations on the same load traces.

A workload's total CPU demand (millicores, one value a minute, with noise) is served by replicas that each
request 500 m; a new replica serves after a 60 s start-up, a removed one stops at once. Two controllers,
both targeting 70% of requests:

* **hpa**: the HPA's defaults: a sync every 15 s on the last minute's usage of the ready pods,
  desired = ceil(current x utilisation / target) with tolerance 0.1, scale-down stabilised over 300 s
  (the highest recommendation in the window), scale-up at most max(+100%, +4 pods) per sync;
* **opsbus**: the optimizer in auto mode as the service runs it: a cycle every 300 s
  (`interval_seconds`) on the last minute's usage, the same formula (`recommend_replicas`, the service's
  own code) with tolerance 0.1 and 300 s stabilisation, and its guardrails: min replicas 1, a cooldown of
  3600 s after each change, which a scale-up does not wait for (`planning._decide`).

Scored over 7 days per trace (day 0 is warm-up for nobody: both start at the replicas the first hour needs):
replica-hours (what the workload costs), overload minutes (demand above the requests of the ready replicas:
requests are what the scheduler guaranteed, so above them latency suffers under contention), and the
number of scale operations. Traces are synthetic, from `--seed`: daily cycle, bursts, steady growth,
a step change at mid-trace; 4 of each.

    uv run python bench/optimizer_horizontal.py [--seed 7] [--traces-per-shape 4] [--days 7]
"""

from __future__ import annotations

import argparse
import math
import random
import time
from dataclasses import dataclass

from opsbus.optimizer.domain.guardrails import Guardrails
from opsbus.optimizer.domain.horizontal import HorizontalPolicy, desired_replicas, recommend_replicas

MINUTE = 60.0
DAY = 86_400.0
REQUEST = 500.0  # millicores per replica
TARGET = 0.7
STARTUP = 60.0
SHAPES = ("diurnal", "spiky", "growing", "step")


def load_trace(shape: str, rng: random.Random, days: int) -> list[float]:
    """Total demand per minute, millicores."""
    base = rng.uniform(1_000, 8_000)
    phase = rng.uniform(0, 2 * math.pi)
    out: list[float] = []
    burst_until, burst = -1.0, 1.0
    n = int(days * DAY / MINUTE)
    for i in range(n):
        t = i * MINUTE
        d = 0.5 * (1 + math.sin(2 * math.pi * t / DAY + phase))
        noise = rng.gauss(1.0, 0.05)
        if shape == "diurnal":
            v = base * (0.3 + 0.9 * d)
        elif shape == "spiky":
            if t >= burst_until and rng.random() < 0.002:
                burst_until, burst = t + rng.uniform(5, 30) * MINUTE, rng.uniform(1.8, 3.0)
            v = base * (0.4 + 0.4 * d) * (burst if t < burst_until else 1.0)
        elif shape == "growing":
            v = base * (0.4 + 0.6 * d) * (1 + 1.0 * t / (days * DAY))
        elif shape == "step":
            v = base * (0.4 + 0.5 * d) * (2.0 if t >= days * DAY / 2 else 1.0)
        else:
            raise ValueError(shape)
        out.append(max(50.0, v * noise))
    return out


@dataclass
class Score:
    replica_seconds: float = 0.0
    overload_seconds: float = 0.0
    seconds: float = 0.0
    scalings: int = 0


@dataclass
class Pods:
    ready: list[float]  # start-up done at these instants (<= now: serving)

    def count(self) -> int:
        return len(self.ready)

    def serving(self, now: float) -> int:
        return sum(1 for t in self.ready if t <= now)

    def resize(self, n: int, now: float) -> None:
        if n > len(self.ready):
            self.ready += [now + STARTUP] * (n - len(self.ready))
        elif n < len(self.ready):
            self.ready.sort()
            del self.ready[n:]  # the youngest go first, as the ReplicaSet controller prefers


def simulate(trace: list[float], controller: str, score: Score) -> None:
    tick = 15.0
    first = math.ceil(max(trace[:60]) / (REQUEST * TARGET))
    pods = Pods([0.0] * first)
    policy = HorizontalPolicy(target_utilization=TARGET, tolerance=0.1, scale_down_stabilization_seconds=300.0)
    guard = Guardrails()
    history: tuple[tuple[float, int], ...] = ()
    hpa_window: list[tuple[float, int]] = []
    last_change: float | None = None
    period = 15.0 if controller == "hpa" else 300.0
    end = len(trace) * MINUTE
    t = 0.0
    while t < end:
        demand = trace[int(t // MINUTE)]
        serving = pods.serving(t)
        score.seconds += tick
        score.replica_seconds += pods.count() * tick
        if demand > serving * REQUEST:
            score.overload_seconds += tick
        if t % period == 0 and t > 0:
            observed = trace[int(t // MINUTE) - 1]  # the last full minute
            util = observed / (max(1, serving) * REQUEST)
            current = pods.count()
            if controller == "hpa":
                raw = desired_replicas(current, util, TARGET, 0.1)
                hpa_window = [(at, r) for at, r in hpa_window if at > t - 300.0] + [(t, raw)]
                if raw > current:  # scale-up policy: +100% or +4 pods per period, whichever is more
                    new = min(raw, max(2 * current, current + 4))
                else:  # scale-down: the highest recommendation of the stabilisation window
                    new = min(current, max(r for _, r in hpa_window))
            else:
                result = recommend_replicas(current, util, policy, history, t)
                history, new = result.history, result.recommended
                held = last_change is not None and t - last_change < guard.cooldown_seconds
                if new < current and held:
                    new = current
                new = max(guard.min_replicas, new)
            if new != current:
                pods.resize(new, t)
                score.scalings += 1
                last_change = t
        t += tick


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--traces-per-shape", type=int, default=4)
    ap.add_argument("--days", type=int, default=7)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    traces = [(s, load_trace(s, rng, args.days)) for s in SHAPES for _ in range(args.traces_per_shape)]
    started = time.perf_counter()
    controllers = ("hpa", "opsbus")
    by_shape: dict[tuple[str, str], Score] = {}
    for shape, trace in traces:
        for c in controllers:
            simulate(trace, c, by_shape.setdefault((c, shape), Score()))
    elapsed = time.perf_counter() - started
    totals = {c: Score() for c in controllers}
    for (c, _), s in by_shape.items():
        t = totals[c]
        t.replica_seconds += s.replica_seconds
        t.overload_seconds += s.overload_seconds
        t.seconds += s.seconds
        t.scalings += s.scalings
    print(
        f"{len(traces)} traces ({args.traces_per_shape} x {', '.join(SHAPES)}), {args.days} days, seed {args.seed}, "
        f"replayed in {elapsed:.1f}s\n"
    )
    print("| controller | shape | replica-hours | overload minutes | overload share | scale operations |")
    print("|---|---|---|---|---|---|")
    for c, total in totals.items():
        for shape in (*SHAPES, "all"):
            s = total if shape == "all" else by_shape[(c, shape)]
            print(
                f"| {c} | {shape} | {s.replica_seconds / 3600:.0f} | {s.overload_seconds / 60:.0f} "
                f"| {s.overload_seconds / s.seconds:.2%} | {s.scalings} |"
            )
    h, o = totals["hpa"], totals["opsbus"]
    print(
        f"\nopsbus / hpa: replica-hours {o.replica_seconds / h.replica_seconds:.2f}x, overload minutes "
        f"{o.overload_seconds / h.overload_seconds if h.overload_seconds else math.inf:.2f}x, "
        f"scale operations {o.scalings / h.scalings if h.scalings else math.inf:.2f}x"
    )


if __name__ == "__main__":
    main()
