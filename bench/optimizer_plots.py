"""The PNGs of the optimizer benchmarks (`--plot-dir DIR`), one per trace shape: usage, the predictive policy's
forecast band (mean and upper quantile, where the forecast was reliable) and what each policy reserved:
CPU requests (bench/optimizer_replay.py) or replicas x request (bench/optimizer_horizontal.py).

matplotlib is in the dev group only, so it is imported when a plot is asked for."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from bench import optimizer_horizontal as horizontal
from bench import optimizer_replay as vertical

COLOURS = {
    "fixed": "tab:gray",
    "vpa": "tab:orange",
    "hpa": "tab:orange",
    "opsbus reactive": "tab:purple",
    "opsbus predictive": "tab:blue",
}


def _figure() -> tuple[Any, Any]:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(12, 4.2))
    return plt, (fig, ax)


def _band(ax: Any, x: list[float], mean: list[float], upper: list[float]) -> None:
    ax.plot(x, mean, color="tab:green", linewidth=0.8, linestyle="--", label="forecast mean")
    ax.fill_between(x, mean, upper, color="tab:green", alpha=0.2, label="forecast band (to the upper quantile)")


def plot_vertical(directory: str, seed: int, days: int) -> list[str]:
    """One PNG per shape: the first trace of that shape for `seed`, CPU used and each policy's CPU request."""
    out: list[str] = []
    rng = random.Random(seed)
    traces = {}
    for shape in vertical.SHAPES:  # the same draws as `run` with one trace per shape
        traces[shape] = vertical.generate(shape, rng, days)
    for shape, trace in traces.items():
        plt, (fig, ax) = _figure()
        hours = [i * vertical.STEP / 3600 for i in range(len(trace.cpu))]
        ax.plot(hours, trace.cpu, color="black", linewidth=0.5, label="CPU used")
        forecasts = vertical.Forecasts()
        for name, contender in vertical.POLICIES.items():
            track: list[vertical.Resources] = []
            replay_forecasts = forecasts if contender.predictive else None
            vertical.replay(trace, contender, vertical.Score(), track, replay_forecasts)
            ax.step(hours, [r.cpu_request for r in track], where="post", color=COLOURS[name], label=f"{name} request")
        _band(ax, hours, forecasts.mean, forecasts.upper)
        ax.axvspan(0, 24, color="0.92", label="warm-up")
        ax.set(title=f"right-sizing, {shape} trace (seed {seed}): CPU (millicores)", xlabel="hours")
        ax.legend(fontsize=7, loc="upper left", ncol=4)
        path = str(Path(directory) / f"optimizer_vertical_{shape}.png")
        fig.tight_layout()
        fig.savefig(path, dpi=80)
        plt.close(fig)
        out.append(path)
    return out


def plot_horizontal(directory: str, seed: int, days: int) -> list[str]:
    """One PNG per shape: demand and the requests of each controller's replicas (replicas x 500 m)."""
    out: list[str] = []
    rng = random.Random(seed)
    traces = {shape: horizontal.load_trace(shape, rng, days) for shape in horizontal.SHAPES}
    for shape, trace in traces.items():
        plt, (fig, ax) = _figure()
        track = horizontal.Track()
        for c in horizontal.CONTROLLERS:
            horizontal.simulate(trace, c, horizontal.Score(), track)
        hours = [i / 60 for i in range(len(trace))]
        ax.plot(hours, trace, color="black", linewidth=0.4, label="demand")
        for c, replicas in track.replicas.items():
            ax.step(
                hours[: len(replicas)],
                [r * horizontal.REQUEST for r in replicas],
                where="post",
                color=COLOURS[c],
                linewidth=0.9,
                label=f"{c}: replicas x request",
            )
        _band(ax, hours[: len(track.mean)], track.mean, track.upper)
        ax.set(title=f"scaling, {shape} trace (seed {seed}): CPU (millicores)", xlabel="hours")
        ax.legend(fontsize=7, loc="upper left", ncol=3)
        path = str(Path(directory) / f"optimizer_horizontal_{shape}.png")
        fig.tight_layout()
        fig.savefig(path, dpi=80)
        plt.close(fig)
        out.append(path)
    return out
