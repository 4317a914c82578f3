"""The forecaster's history port: usage per workload over days, from Prometheus or from a store of our own.

Why: the percentile histograms (`usage_checkpoints`) keep a distribution, not a time series; a forecast needs
the series itself (when in the day the load rises). Two sources behind one interface (`HistorySource`):

* `PrometheusHistory`: `query_range` over the same cAdvisor series the cycle reads, restricted to one
  workload's pods (`pod=~"<deployment>-<hash>-<suffix>"`, past pods included), with a step chosen so that no
  answer holds more than `max_points` points per series, and the HTTP client's timeout.
* `StoredHistory`: the optimizer's own table `usage_history`, filled every cycle from the samples it already
  reads (metrics-server or Prometheus), downsampled per (workload, container) to a fixed step, and pruned on
  a schedule by age and by points per series: bounded whatever the cluster's age or size.

Both return a `WorkloadHistory`: per container the mean CPU per pod and the highest working set per pod,
and the workload's total CPU (the horizontal planner's demand), as regular series with NaN for gaps.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sqlalchemy import delete, func, select, tuple_
from sqlalchemy.dialects.postgresql import insert

from opsbus.common.events.payloads.common import WorkloadRef
from opsbus.common.store import Database
from opsbus.optimizer import store
from opsbus.optimizer.usage import PrometheusUsage, Sample

# (namespace, workload, container, step start) -> [sample times, cpu per-pod mean sum, cpu total sum, memory max]
Folded = dict[tuple[str, str, str, float], list[float]]


@dataclass(frozen=True)
class Series:
    """Regular samples from `start`, one every `step` seconds; NaN where nothing was seen."""

    start: float
    step: float
    values: tuple[float, ...]


@dataclass(frozen=True)
class WorkloadHistory:
    cpu: dict[str, Series] = field(default_factory=dict)  # per container: millicores per pod (mean over pods)
    memory: dict[str, Series] = field(default_factory=dict)  # per container: bytes per pod (highest)
    demand: Series | None = None  # the workload's CPU, millicores (all pods, all containers)

    @property
    def points(self) -> int:
        return max((len(s.values) for s in self.cpu.values()), default=0)


class HistorySource(Protocol):
    name: str

    async def history(self, ref: WorkloadRef, start: float, end: float, step: float) -> WorkloadHistory: ...


def fold(samples: Sequence[Sample], owner: Mapping[tuple[str, str], str], step: float) -> Folded:
    """Per (namespace, workload, container, step): the sample times seen, the sums over them of the per-pod
    mean and of the pods' total CPU, and the highest working set. `owner` maps (namespace, pod) to workload;
    samples of other pods are left out."""
    at_once: dict[tuple[str, str, str, float], tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for x in samples:
        workload = owner.get((x.namespace, x.pod))
        if workload is None:
            continue
        cpu, mem = at_once[(x.namespace, workload, x.container, x.at)]
        if x.cpu_millicores is not None:
            cpu.append(x.cpu_millicores)
        if x.memory_bytes is not None:
            mem.append(x.memory_bytes)
    out: Folded = {}
    for (ns, workload, container, at), (cpu, mem) in at_once.items():
        if not cpu and not mem:
            continue
        key = (ns, workload, container, math.floor(at / step) * step)
        acc = out.setdefault(key, [0.0, 0.0, 0.0, 0.0])
        if cpu:
            acc[0] += 1
            acc[1] += sum(cpu) / len(cpu)
            acc[2] += sum(cpu)
        acc[3] = max(acc[3], max(mem, default=0.0))
    return out


def regular(points: Mapping[float, float], start: float, end: float, step: float) -> Series:
    """`points` (step start -> value) as a regular series over [start, end), NaN for missing steps."""
    first = math.floor(start / step) * step
    n = max(0, math.ceil((end - first) / step))
    return Series(first, step, tuple(points.get(first + i * step, math.nan) for i in range(n)))


def assemble(folded: Folded, start: float, end: float, step: float) -> WorkloadHistory:
    """A `WorkloadHistory` from folded steps of one workload."""
    cpu: dict[str, dict[float, float]] = defaultdict(dict)
    memory: dict[str, dict[float, float]] = defaultdict(dict)
    demand: dict[float, float] = defaultdict(float)
    for (_, _, container, at), (n, cpu_sum, demand_sum, mem_max) in folded.items():
        if n:
            cpu[container][at] = cpu_sum / n
            demand[at] += demand_sum / n
        if mem_max > 0:
            memory[container][at] = mem_max
    return WorkloadHistory(
        cpu={c: regular(v, start, end, step) for c, v in cpu.items()},
        memory={c: regular(v, start, end, step) for c, v in memory.items()},
        demand=regular(demand, start, end, step) if demand else None,
    )


def pod_pattern(deployment: str) -> str:
    """A Deployment's pods, `<name>-<pod-template-hash>-<suffix>` (RE2 and Python alike; no backslashes)."""
    return deployment.replace(".", "[.]") + "-[a-z0-9]{1,10}-[a-z0-9]{5}"


class PrometheusHistory:
    """`query_range` restricted to one workload's pods, at a step that keeps each series within `max_points`."""

    name = "prometheus"

    def __init__(self, prometheus: PrometheusUsage, *, max_points: int = 2_000) -> None:
        self._prom = prometheus
        self.max_points = max_points

    async def history(self, ref: WorkloadRef, start: float, end: float, step: float) -> WorkloadHistory:
        step = max(step, math.ceil((end - start) / self.max_points))
        pattern = pod_pattern(ref.name)
        sel = f',namespace="{ref.namespace}",pod=~"{pattern}"'
        samples = await self._prom.select(sel, start, end, step)
        matches = re.compile(pattern).fullmatch
        owner = {(x.namespace, x.pod): ref.name for x in samples if x.namespace == ref.namespace and matches(x.pod)}
        return assemble(fold(samples, owner, step), start, end, step)


class StoredHistory:
    """The `usage_history` table: `record` every cycle, `history` for the forecaster, `prune` on a schedule."""

    name = "store"

    def __init__(self, db: Database, *, step: float, max_age_seconds: float, max_points: int) -> None:
        self.db, self.step, self.max_age_seconds, self.max_points = db, step, max_age_seconds, max_points

    async def record(self, samples: Sequence[Sample], owner: Mapping[tuple[str, str], str]) -> int:
        """Fold `samples` into the table (adding to the steps already there); the number of rows written."""
        folded = fold(samples, owner, self.step)
        if not folded:
            return 0
        t = store.usage_history
        rows = [
            {
                "namespace": ns,
                "workload": w,
                "container": c,
                "at": at,
                "samples": int(n),
                "cpu_sum": cpu,
                "demand_sum": demand,
                "memory_max": mem,
            }
            for (ns, w, c, at), (n, cpu, demand, mem) in sorted(folded.items())
        ]
        stmt = insert(t)
        stmt = stmt.on_conflict_do_update(
            index_elements=[t.c.namespace, t.c.workload, t.c.container, t.c.at],
            set_={
                "samples": t.c.samples + stmt.excluded.samples,
                "cpu_sum": t.c.cpu_sum + stmt.excluded.cpu_sum,
                "demand_sum": t.c.demand_sum + stmt.excluded.demand_sum,
                "memory_max": func.greatest(t.c.memory_max, stmt.excluded.memory_max),
            },
        )
        async with self.db.sessions.begin() as s:
            await s.execute(stmt, rows)
        return len(rows)

    async def history(self, ref: WorkloadRef, start: float, end: float, step: float) -> WorkloadHistory:
        """The stored steps of `ref` in [start, end), the newest `max_points` per container at most."""
        del step  # the store has one step, its own
        t = store.usage_history
        start = max(start, end - self.max_points * self.step)
        query = select(t.c.container, t.c.at, t.c.samples, t.c.cpu_sum, t.c.demand_sum, t.c.memory_max).where(
            t.c.namespace == ref.namespace, t.c.workload == ref.name, t.c.at >= start, t.c.at < end
        )
        async with self.db.sessions() as s:
            rows = (await s.execute(query)).all()
        folded: Folded = {
            (ref.namespace, ref.name, r.container, r.at): [r.samples, r.cpu_sum, r.demand_sum, r.memory_max]
            for r in rows
        }
        return assemble(folded, start, end, self.step)

    async def prune(self, now: float) -> int:
        """Drop steps older than `max_age_seconds`, then all but the newest `max_points` of each series."""
        t = store.usage_history
        ranked = select(
            t.c.namespace,
            t.c.workload,
            t.c.container,
            t.c.at,
            func.row_number()
            .over(partition_by=(t.c.namespace, t.c.workload, t.c.container), order_by=t.c.at.desc())
            .label("n"),
        ).subquery()
        excess = select(ranked.c.namespace, ranked.c.workload, ranked.c.container, ranked.c.at).where(
            ranked.c.n > self.max_points
        )
        async with self.db.sessions.begin() as s:
            old = await s.execute(delete(t).where(t.c.at < now - self.max_age_seconds))
            over = await s.execute(
                delete(t).where(tuple_(t.c.namespace, t.c.workload, t.c.container, t.c.at).in_(excess))
            )
        return int(old.rowcount or 0) + int(over.rowcount or 0)  # type: ignore[attr-defined]
