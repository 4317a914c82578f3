"""The PNG of `bench/optimizer_replay.py --plot PATH`: two example traces replayed under each policy (memory of a
leaky container against its limit, CPU of a diurnal one against its request) and the run's per-policy scores
(cost-weighted slack with the 25% target, OOM-killed intervals, cost saved against fixed requests)."""

from __future__ import annotations

import random
from typing import Any

from bench.optimizer_replay import DAY, POLICIES, STEP, Resources, Score, generate, replay

COLOURS = {"fixed": "tab:gray", "vpa": "tab:orange", "opsbus": "tab:blue", "hindsight p90": "tab:green"}


def _tracks(shape: str, seed: int, days: int) -> tuple[list[float], list[float], dict[str, list[Resources]]]:
    trace = generate(shape, random.Random(seed), days)
    tracks: dict[str, list[Resources]] = {}
    for name, (policy, guard) in POLICIES.items():
        tracks[name] = []
        replay(trace, policy, guard, Score(), tracks[name])
    return trace.cpu, trace.mem, tracks


def plot(path: str, seed: int, days: int, scores: dict[str, Score]) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, axes = plt.subplots(2, 2, figsize=(13, 8.5))
    _, mem, leaky = _tracks("leaky", seed, days)
    cpu, _, diurnal = _tracks("diurnal", seed, days)
    hours = [i * STEP / 3600 for i in range(len(mem))]
    ax: Any = axes[0][0]
    ax.plot(hours, [m / 2**20 for m in mem], color="black", linewidth=0.8, label="working set")
    for name, track in leaky.items():
        ax.step(
            hours, [r.memory_limit / 2**20 for r in track], where="post", color=COLOURS[name], label=f"{name} limit"
        )
    ax.set(title="a leaky container: memory (MiB) and its limit", xlabel="hours", ylabel="MiB")
    ax.axvspan(0, DAY / 3600, color="0.9", label="warm-up")
    ax.legend(fontsize=8, loc="center right")
    ax = axes[0][1]
    ax.plot(hours, cpu, color="black", linewidth=0.6, label="CPU used")
    for name, track in diurnal.items():
        ax.step(hours, [r.cpu_request for r in track], where="post", color=COLOURS[name], label=f"{name} request")
    ax.set(title="a diurnal container: CPU (millicores) and its request", xlabel="hours", ylabel="millicores")
    ax.axvspan(0, DAY / 3600, color="0.9")
    ax.legend(fontsize=8)

    names = list(scores)
    colours = [COLOURS.get(n, "tab:purple") for n in names]
    ax = axes[1][0]
    slack = [100 * scores[n].cost_slack / scores[n].cost for n in names]
    ax.bar(names, slack, color=colours)
    ax.axhline(25, color="red", linestyle="--", linewidth=1, label="target 25%")
    ax.set(title="cost-weighted slack (% of what is paid for)", ylabel="%")
    ax.legend(fontsize=8)
    ax = axes[1][1]
    ooms = [scores[n].oom for n in names]
    bars = ax.bar(names, ooms, color=colours)
    fixed = scores["fixed"].cost
    for bar, n in zip(bars, names, strict=True):
        saved = 1 - scores[n].cost / fixed
        ax.annotate(
            f"{scores[n].oom} OOM, saved {saved:.0%}",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    ax.set_yscale("symlog")
    ax.set(title="OOM-killed intervals (count, symlog), and cost saved vs fixed", ylabel="intervals")
    fig.suptitle(f"optimizer replay: seed {seed}, {days} days, 5-minute intervals")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
