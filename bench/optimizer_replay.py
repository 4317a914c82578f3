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

    uv run python -m bench.optimizer_replay [--seed 7] [--traces-per-shape 4] [--days 14] [--plot replay.png]

`--plot PATH` also draws a PNG (matplotlib, the dev group): one leaky and one diurnal trace under each policy,
and the per-policy slack, OOM-killed intervals and saving of the run.
"""

from __future__ import annotations

import argparse
import math
import random
import time
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
    mem_over_request: int = 0  # intervals with memory above the request (below the limit): evictable under pressure
    cpu_used: float = 0.0
    cpu_unreserved: float = 0.0  # CPU used above the request: served from the node's spare, not reserved
    changes: int = 0
    oom_by_shape: dict[str, int] = field(default_factory=dict)

    def add(self, shape: str, r: Resources, cpu_use: float, mem_use: float) -> bool:
        cpu_req, mem_req = r.cpu_request, r.memory_request
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
        oom = mem_use > r.memory_limit
        if oom:
            self.oom += 1
            self.oom_by_shape[shape] = self.oom_by_shape.get(shape, 0) + 1
        elif mem_use > mem_req:
            self.mem_over_request += 1
        if cpu_use > r.cpu_limit:
            self.throttled += 1
        self.cpu_used += cpu_use
        self.cpu_unreserved += max(0.0, min(cpu_use, r.cpu_limit) - cpu_req)
        return oom


@dataclass(frozen=True)
class Resources:
    cpu_request: int
    cpu_limit: int
    memory_request: int
    memory_limit: int


def fixed_requests(trace: Trace) -> Resources:
    """The hand-written manifest: CPU 1.5x the first day's p99 with a limit of twice that, memory 1.5x the
    first day's peak with the limit equal to the request."""
    first = int(DAY / STEP)
    cpu = sorted(trace.cpu[:first])
    cpu_req, mem_req = math.ceil(cpu[int(0.99 * len(cpu))] * 1.5), math.ceil(max(trace.mem[:first]) * 1.5)
    return Resources(cpu_req, 2 * cpu_req, mem_req, mem_req)


def _limit(target: int | None, old_limit: int, old_request: int, new_request: int) -> int:
    """The recommender's limit, or (none given) the old limit scaled with the request, as the VPA does."""
    if target is None:
        return max(new_request, round(old_limit * new_request / old_request))
    return max(new_request, target)


def replay(
    trace: Trace,
    policy: VerticalPolicy | None,
    guard: Guardrails | None,
    score: Score,
    track: list[Resources] | None = None,
) -> None:
    """Replay one trace; `track`, when given, gets the resources in force at every interval (for the plot)."""
    cur = fixed_requests(trace)
    usage = ContainerUsage.new(policy) if policy else None
    warmup = int(DAY / STEP)
    per_hour = int(HOUR / STEP)
    for i, (c, m) in enumerate(zip(trace.cpu, trace.mem, strict=True)):
        t = i * STEP
        oom = False
        if track is not None:
            track.append(cur)
        if i >= warmup:
            oom = score.add(trace.shape, cur, c, m)
        if usage is None or policy is None:
            continue
        usage.add_sample(t, c, min(m, cur.memory_limit) if oom else m, policy)  # a killed container stops there
        if oom:
            usage.record_oom(t, cur.memory_limit, policy)
        if i + 1 >= warmup and (oom or (i + 1) % per_hour == 0):
            r = recommend(usage, policy, t)
            if r is None:
                continue
            new_cpu, new_mem = r.cpu_millicores, r.memory_bytes
            if guard is not None:
                new_cpu, new_mem = (
                    clamp_step(cur.cpu_request, new_cpu, guard),
                    clamp_step(cur.memory_request, new_mem, guard),
                )
            cpu_lim = _limit(r.cpu_limit_millicores, cur.cpu_limit, cur.cpu_request, new_cpu)
            mem_lim = _limit(r.memory_limit_bytes, cur.memory_limit, cur.memory_request, new_mem)
            if guard is not None and r.memory_limit_bytes is not None:
                cpu_lim = max(new_cpu, clamp_step(cur.cpu_limit, cpu_lim, guard))
                mem_lim = max(new_mem, clamp_step(cur.memory_limit, mem_lim, guard))
            new = Resources(new_cpu, cpu_lim, new_mem, mem_lim)
            moved = (
                oom
                or relative_change(cur.cpu_request, new.cpu_request) >= 0.1
                or relative_change(cur.memory_request, new.memory_request) >= 0.1
                or new.cpu_limit >= 1.1 * cur.cpu_limit  # a limit that must grow is worth a change on its own
                or new.memory_limit >= 1.1 * cur.memory_limit
            )
            if moved and new != cur:
                cur = new
                score.changes += 1


def hindsight(trace: Trace, score: Score) -> None:
    """Not a recommender, a reference: per trace, constant requests at exactly its own scored CPU p90 and memory
    peak, chosen knowing the future (no margin, no OOM kill). What a perfect constant p90 sizing would reach."""
    warmup = int(DAY / STEP)
    cpu = sorted(trace.cpu[warmup:])
    cpu_req, mem_req = math.ceil(cpu[int(0.9 * len(cpu))]), math.ceil(max(trace.mem[warmup:]))
    r = Resources(cpu_req, 2 * cpu_req, mem_req, mem_req)
    for c, m in zip(trace.cpu[warmup:], trace.mem[warmup:], strict=True):
        score.add(trace.shape, r, c, m)


SHAPES = ("diurnal", "spiky", "growing", "leaky", "step")
POLICIES: dict[str, tuple[VerticalPolicy | None, Guardrails | None]] = {
    "fixed": (None, None),
    "vpa": (VerticalPolicy.vpa(), None),
    "opsbus": (VerticalPolicy(), Guardrails()),
}


def run(seed: int, traces_per_shape: int, days: int) -> dict[str, Score]:
    rng = random.Random(seed)
    traces = [generate(shape, rng, days) for shape in SHAPES for _ in range(traces_per_shape)]
    scores = {name: Score() for name in (*POLICIES, "hindsight p90")}
    for trace in traces:
        for name, (policy, guard) in POLICIES.items():
            replay(trace, policy, guard, scores[name])
        hindsight(trace, scores["hindsight p90"])
    return scores


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else ("0 vs 0" if not a else "inf")


def report(seed: int, traces_per_shape: int, days: int, scores: dict[str, Score], elapsed: float) -> None:
    print(
        f"{len(SHAPES) * traces_per_shape} traces ({traces_per_shape} x {', '.join(SHAPES)}), {days} days, "
        f"5-minute intervals, seed {seed}, replayed in {elapsed:.1f}s\n"
    )
    print(
        "| policy | CPU slack | memory slack | cost-weighted slack | OOM-killed intervals | throttled intervals "
        "| memory above request | CPU used above request | changes | cost | saved vs fixed |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    fixed_cost = scores["fixed"].cost
    for name, s in scores.items():
        print(
            f"| {name} | {s.cpu_slack / s.cpu_request:.1%} | {s.mem_slack / s.mem_request:.1%} "
            f"| {s.cost_slack / s.cost:.1%} | {s.oom / s.intervals:.3%} ({s.oom}) "
            f"| {s.throttled / s.intervals:.3%} ({s.throttled}) | {s.mem_over_request / s.intervals:.2%} "
            f"| {s.cpu_unreserved / s.cpu_used:.1%} | {s.changes} | {s.cost:.2f} | {1 - s.cost / fixed_cost:.1%} |"
        )
    o, v, f = scores["opsbus"], scores["vpa"], scores["fixed"]
    print()
    for base_name, b in (("vpa", v), ("fixed", f)):
        print(
            f"opsbus / {base_name}: cost-weighted slack {ratio(o.cost_slack / o.cost, b.cost_slack / b.cost)}, "
            f"OOM intervals {ratio(o.oom, b.oom)}, throttled {ratio(o.throttled, b.throttled)}, "
            f"cost {ratio(o.cost, b.cost)}"
        )
    print()
    print(
        "OOM-killed intervals by shape: "
        + "; ".join(
            f"{name}: " + ", ".join(f"{k} {s.oom_by_shape.get(k, 0)}" for k in SHAPES)
            for name, s in scores.items()
            if name in POLICIES
        )
    )


def targets_met(scores: dict[str, Score]) -> tuple[bool, bool, bool]:
    """The issue's targets: cost-weighted slack <= 25%, OOM intervals <= 1/10 of the VPA's, >= 30% saved."""
    o, v, f = scores["opsbus"], scores["vpa"], scores["fixed"]
    return o.cost_slack / o.cost <= 0.25, o.oom * 10 <= v.oom, 1 - o.cost / f.cost >= 0.30


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=7, help="seed of the detailed table")
    ap.add_argument("--seeds", default="", help="comma-separated further seeds for a summary table, e.g. 1,2,3,4")
    ap.add_argument("--traces-per-shape", type=int, default=4)
    ap.add_argument("--days", type=int, default=14)
    ap.add_argument("--plot", metavar="PATH", help="also write a PNG of two example traces and the scores")
    args = ap.parse_args()
    started = time.perf_counter()
    scores = run(args.seed, args.traces_per_shape, args.days)
    report(args.seed, args.traces_per_shape, args.days, scores, time.perf_counter() - started)
    if args.plot:
        from bench.optimizer_replay_plot import plot  # noqa: PLC0415 - matplotlib only when asked

        plot(args.plot, args.seed, args.days, scores)
        print(f"\nplot written to {args.plot}")
    seeds = [args.seed, *(int(x) for x in args.seeds.split(",") if x.strip())]
    if len(seeds) < 2:
        return
    print(
        "\n| seed | slack fixed / vpa / opsbus | OOM intervals fixed / vpa / opsbus | throttled vpa / opsbus "
        "| saved vpa / opsbus | targets (slack, OOM, saved) |"
    )
    print("|---|---|---|---|---|---|")
    for seed in seeds:
        sc = scores if seed == args.seed else run(seed, args.traces_per_shape, args.days)
        f, v, o = sc["fixed"], sc["vpa"], sc["opsbus"]
        met = " ".join("yes" if m else "NO" for m in targets_met(sc))
        print(
            f"| {seed} | {f.cost_slack / f.cost:.1%} / {v.cost_slack / v.cost:.1%} / {o.cost_slack / o.cost:.1%} "
            f"| {f.oom} / {v.oom} / {o.oom} | {v.throttled} / {o.throttled} "
            f"| {1 - v.cost / f.cost:.1%} / {1 - o.cost / f.cost:.1%} | {met} |"
        )


if __name__ == "__main__":
    main()
