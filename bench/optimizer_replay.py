"""Quality of the optimizer's right-sizing, by replaying usage traces through three policies in the same run:

(a) **fixed**: requests written by hand once, from the first day, over-provisioned as people do (CPU 1.5x the
    first day's p99, memory 1.5x the first day's peak), never changed;
(b) **vpa**: the Kubernetes VPA recommender's defaults (CPU p90, memory p90 of 24 h peaks, margin 0.15,
    half-life 24 h, OOM bump x1.2 / +100 Mi, minimums 25 m / 250 Mi), applied whenever it moves by 10%;
(c) **opsbus**: the optimizer's recommender (`VerticalPolicy()`: hourly memory peaks at p95, a floor at the
    last day's peak, leak/growth extrapolation, confidence-widened margin) applied through its guardrails'
    step clamp (-30% / +100% per change), same cadence and threshold.

Both recommenders are the service's own pure code (`opsbus.optimizer.domain`); the VPA baseline is that
code configured with the VPA's defaults. Traces are synthetic but shaped like production: daily cycles,
bursts, steady growth, memory leaks with restarts, and step changes; generated from `--seed`, so a run is
reproducible. 5-minute intervals, 14 days; recommenders see usage as it happens and re-recommend every hour
and at once after an OOM kill; the first day is warm-up (everyone runs the fixed requests) and is not scored.

Scored per policy, over all traces: slack = sum(max(0, request - usage)) / sum(request) for CPU and memory, and
cost-weighted (requests priced per vCPU-hour and GiB-hour); the share of intervals OOM-killed (memory usage above
the limit; limit = request, as the fixed manifests set it) and CPU-throttled (usage above the limit, 2x request);
the number of request changes; cost, and the saving against fixed requests.

    uv run python bench/optimizer_replay.py [--seed 7] [--traces-per-shape 4] [--days 14]
"""

from __future__ import annotations

import argparse
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from opsbus.optimizer.domain.cost import GIB, Prices
from opsbus.optimizer.domain.guardrails import Guardrails, clamp_step, relative_change
from opsbus.optimizer.domain.vertical import MI, ContainerUsage, VerticalPolicy, recommend

STEP = 300.0
DAY = 86_400.0
HOUR = 3_600.0
PRICES = Prices()


@dataclass(frozen=True)
class Trace:
    shape: str
    cpu: list[float]  # millicores per interval
    mem: list[float]  # bytes per interval


def _diurnal(t: float, phase: float) -> float:
    return 0.5 * (1 + math.sin(2 * math.pi * (t / DAY) + phase))  # 0..1


def generate(shape: str, rng: random.Random, days: int) -> Trace:
    n = int(days * DAY / STEP)
    cpu_base = rng.uniform(100, 800)
    mem_base = rng.uniform(200, 1500) * MI
    phase = rng.uniform(0, 2 * math.pi)
    cpu: list[float] = []
    mem: list[float] = []
    leak_rate = rng.uniform(0.01, 0.04) * mem_base / HOUR  # 1-4% of the base per hour
    restart_every = rng.uniform(20, 40) * HOUR
    burst_until = -1.0
    for i in range(n):
        t = i * STEP
        d = _diurnal(t, phase)
        noise = rng.gauss(1.0, 0.08)
        if shape == "diurnal":
            c = cpu_base * (0.3 + 0.9 * d) * noise
            m = mem_base * (0.8 + 0.25 * d) * rng.gauss(1.0, 0.02)
        elif shape == "spiky":
            if rng.random() < 0.004:
                burst_until = t + rng.uniform(10, 40) * 60
            burst = t < burst_until
            c = cpu_base * (0.4 + 0.3 * d) * noise * (rng.uniform(2.5, 4.0) if burst else 1.0)
            m = mem_base * (0.85 + 0.1 * d) * (rng.uniform(1.25, 1.5) if burst else 1.0) * rng.gauss(1.0, 0.02)
        elif shape == "growing":
            g = 1.0 + 0.8 * t / (days * DAY)  # +80% over the trace
            c = cpu_base * (0.4 + 0.6 * d) * g * noise
            m = mem_base * (0.85 + 0.15 * d) * g * rng.gauss(1.0, 0.02)
        elif shape == "leaky":
            c = cpu_base * (0.5 + 0.4 * d) * noise
            m = mem_base * 0.7 + leak_rate * (t % restart_every) + rng.gauss(0, 0.01) * mem_base
        elif shape == "step":
            s = 2.0 if t >= days * DAY / 2 else 1.0
            c = cpu_base * (0.4 + 0.5 * d) * s * noise
            m = mem_base * (0.85 + 0.1 * d) * (1.6 if s > 1 else 1.0) * rng.gauss(1.0, 0.02)
        else:
            raise ValueError(shape)
        cpu.append(max(1.0, c))
        mem.append(max(10 * MI, m))
    return Trace(shape, cpu, mem)


@dataclass
class Score:
    cpu_request: float = 0.0
    cpu_slack: float = 0.0
    mem_request: float = 0.0
    mem_slack: float = 0.0
    cost: float = 0.0
    cost_slack: float = 0.0
    intervals: int = 0
    oom: int = 0
    throttled: int = 0
    changes: int = 0
    oom_by_shape: dict[str, int] = field(default_factory=dict)

    def add(self, shape: str, cpu_req: float, mem_req: float, cpu_use: float, mem_use: float) -> bool:
        hours = STEP / HOUR
        self.intervals += 1
        self.cpu_request += cpu_req
        self.cpu_slack += max(0.0, cpu_req - cpu_use)
        self.mem_request += mem_req
        self.mem_slack += max(0.0, mem_req - mem_use)
        cost = (cpu_req / 1000 * PRICES.vcpu_hour + mem_req / GIB * PRICES.gib_hour) * hours
        used = (min(cpu_use, cpu_req) / 1000 * PRICES.vcpu_hour + min(mem_use, mem_req) / GIB * PRICES.gib_hour) * hours
        self.cost += cost
        self.cost_slack += cost - used
        oom = mem_use > mem_req  # memory limit = request
        if oom:
            self.oom += 1
            self.oom_by_shape[shape] = self.oom_by_shape.get(shape, 0) + 1
        if cpu_use > 2 * cpu_req:  # CPU limit = 2x request
            self.throttled += 1
        return oom


Recommender = Callable[[ContainerUsage, float], tuple[int, int] | None]


def fixed_requests(trace: Trace) -> tuple[int, int]:
    first = int(DAY / STEP)
    cpu = sorted(trace.cpu[:first])
    return math.ceil(cpu[int(0.99 * len(cpu))] * 1.5), math.ceil(max(trace.mem[:first]) * 1.5)


def replay(trace: Trace, policy: VerticalPolicy | None, guard: Guardrails | None, score: Score) -> None:
    cpu_req, mem_req = fixed_requests(trace)
    usage = ContainerUsage.new(policy) if policy else None
    warmup = int(DAY / STEP)
    per_hour = int(HOUR / STEP)
    for i, (c, m) in enumerate(zip(trace.cpu, trace.mem, strict=True)):
        t = i * STEP
        oom = False
        if i >= warmup:
            oom = score.add(trace.shape, cpu_req, mem_req, c, m)
        if usage is None or policy is None:
            continue
        usage.add_sample(t, c, min(m, mem_req) if oom else m, policy)  # a killed container's usage stops at the limit
        if oom:
            usage.record_oom(t, mem_req, policy)
        if i + 1 >= warmup and (oom or (i + 1) % per_hour == 0):
            r = recommend(usage, policy, t)
            if r is None:
                continue
            new_cpu, new_mem = r.cpu_millicores, r.memory_bytes
            if guard is not None:
                new_cpu, new_mem = clamp_step(cpu_req, new_cpu, guard), clamp_step(mem_req, new_mem, guard)
            moved = relative_change(cpu_req, new_cpu) >= 0.1 or relative_change(mem_req, new_mem) >= 0.1 or oom
            if moved and (new_cpu, new_mem) != (cpu_req, mem_req):
                cpu_req, mem_req = new_cpu, new_mem
                score.changes += 1


SHAPES = ("diurnal", "spiky", "growing", "leaky", "step")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--traces-per-shape", type=int, default=4)
    ap.add_argument("--days", type=int, default=14)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    traces = [generate(shape, rng, args.days) for shape in SHAPES for _ in range(args.traces_per_shape)]
    policies: dict[str, tuple[VerticalPolicy | None, Guardrails | None]] = {
        "fixed": (None, None),
        "vpa": (VerticalPolicy.vpa(), None),
        "opsbus": (VerticalPolicy(), Guardrails()),
    }
    scores = {name: Score() for name in policies}
    started = time.perf_counter()
    for trace in traces:
        for name, (policy, guard) in policies.items():
            replay(trace, policy, guard, scores[name])
    elapsed = time.perf_counter() - started

    print(
        f"{len(traces)} traces ({args.traces_per_shape} x {', '.join(SHAPES)}), {args.days} days, 5-minute intervals, "
        f"seed {args.seed}, replayed in {elapsed:.1f}s\n"
    )
    print(
        "| policy | CPU slack | memory slack | cost-weighted slack | OOM-killed intervals | throttled intervals "
        "| changes | cost | saved vs fixed |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    fixed_cost = scores["fixed"].cost
    for name, s in scores.items():
        print(
            f"| {name} | {s.cpu_slack / s.cpu_request:.1%} | {s.mem_slack / s.mem_request:.1%} "
            f"| {s.cost_slack / s.cost:.1%} | {s.oom / s.intervals:.3%} ({s.oom}) "
            f"| {s.throttled / s.intervals:.3%} ({s.throttled}) | {s.changes} | {s.cost:.2f} "
            f"| {1 - s.cost / fixed_cost:.1%} |"
        )
    o, v, f = scores["opsbus"], scores["vpa"], scores["fixed"]

    def ratio(a: float, b: float) -> str:
        return f"{a / b:.2f}x" if b else ("0 vs 0" if not a else "inf")

    print()
    print(
        f"opsbus / vpa:   cost-weighted slack {ratio(o.cost_slack / o.cost, v.cost_slack / v.cost)}, "
        f"OOM intervals {ratio(o.oom, v.oom)}, throttled {ratio(o.throttled, v.throttled)}, "
        f"cost {ratio(o.cost, v.cost)}"
    )
    print(
        f"opsbus / fixed: cost-weighted slack {ratio(o.cost_slack / o.cost, f.cost_slack / f.cost)}, "
        f"OOM intervals {ratio(o.oom, f.oom)}, throttled {ratio(o.throttled, f.throttled)}, "
        f"cost {ratio(o.cost, f.cost)}"
    )
    print()
    print(
        "OOM-killed intervals by shape: "
        + "; ".join(
            f"{name}: " + ", ".join(f"{k} {s.oom_by_shape.get(k, 0)}" for k in SHAPES) for name, s in scores.items()
        )
    )


if __name__ == "__main__":
    main()
