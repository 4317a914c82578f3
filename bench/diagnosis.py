"""The analyzer on fault scenarios whose cause is known: top-1 accuracy, the share left `unknown`, and diagnosis
latency (`alert.fired` published -> `diagnosis.made` received) p50/p99, against a "most recent change in the
namespace" baseline scored on the same scenarios in the same run.

The analyzer runs in this process through its real wiring (`opsbus.analyzer.service.setup` in a `Runtime`)
against a private nats-server (JetStream) and a private PostgreSQL. Each scenario publishes its change timeline
(`change.recorded` as the watcher would: the true cause and distractors, some in the same namespace at nearly
the same time), then its alerts with evidence; its container logs (failing pods and healthy ones) are served by
an in-memory log store behind the analyzer's cluster port, as a log-store adapter would serve them. Not the
sandbox: the scenario's cluster state is synthesised, the bus, the database and the analyzer are real.

Every scenario runs `--repeats` times, each in its own namespace. A scenario is answered correctly when the top
cause has the expected kind and target (or the outcome is `unknown` when nothing in the scenario explains it).
The baseline answers with the latest change of the namespace before the first alert (`unknown` when none).

    uv run --all-packages python -m bench.diagnosis [--repeats 5] [--set tuned|held-out|all]
        [--scale-nodes 1000 --scale-changes 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry
from sqlalchemy import text

from bench.diagnosis_scenarios import SETS, Scenario
from opsbus.analyzer import store
from opsbus.analyzer.service import setup
from opsbus.analyzer.settings import AnalyzerSettings
from opsbus.common.bus import Bus
from opsbus.common.events import Envelope, ObjectRef
from opsbus.common.events.payloads import (
    AlertAnnotations,
    AlertEvidence,
    AlertFired,
    AlertSource,
    ChangeKind,
    ChangeOrigin,
    ChangeRecorded,
    ContainerState,
    DiagnosisMade,
    FieldChange,
    KubeEventSummary,
    ResourceRef,
    Severity,
    WorkloadRef,
)
from opsbus.common.runtime import Runtime
from opsbus.common.settings import DatabaseSettings, NatsSettings
from opsbus.common.store import Database, upgrade
from opsbus.common.testing.servers import nats_server, postgres_server

CLUSTER = "bench"
HEALTHY = ("GET /healthz 200 2ms", "GET /api/cart 200 14ms", "cache warm: 1200 keys", "GET /api/items 200 9ms")


class LogStore:
    """The analyzer's cluster port, served from the scenarios: failing pods' logs, healthy baselines, config refs."""

    def __init__(self) -> None:
        self.lines: dict[tuple[str, str], tuple[str, ...]] = {}
        self.healthy: dict[str, list[str]] = {}
        self.refs: dict[str, frozenset[tuple[str, str]]] = {}

    async def config_refs(self, workload: WorkloadRef) -> frozenset[tuple[str, str]] | None:
        return self.refs.get(workload.namespace, frozenset())

    async def logs(self, namespace: str, pod: str, container: str | None, lines: int) -> tuple[str, ...] | None:
        return self.lines.get((namespace, pod))

    async def healthy_pods(self, workload: WorkloadRef, exclude: frozenset[str], limit: int) -> list[str]:
        return [p for p in self.healthy.get(workload.namespace, []) if p not in exclude][:limit]

    async def unready_pods(self, workload: WorkloadRef, limit: int) -> dict[str, str]:
        return {}


def _ref(ns: str, obj: str) -> tuple[ResourceRef, WorkloadRef | None]:
    kind, name = obj.split("/")
    if kind == "Node":
        return ResourceRef(kind="Node", name=name), None
    if kind == "Deployment":
        w = WorkloadRef(kind="Deployment", namespace=ns, name=name)
        return w.as_resource_ref(), w
    return ResourceRef(kind=kind, name=name, namespace=ns), None


def change_events(s: Scenario, ns: str, t0: datetime) -> list[tuple[Envelope, str | None, datetime]]:
    out = []
    for c in s.changes:
        obj, workload = _ref(ns, c.obj)
        at = t0 - timedelta(seconds=c.ago)
        payload = ChangeRecorded(
            kinds=c.kinds,
            object=obj,
            workload=workload,
            diff=tuple(FieldChange(path=p, before=b, after=a) for p, b, a in c.diff),
            summary=f"{'/'.join(k.value for k in c.kinds)} of {c.obj}",
            origin=ChangeOrigin.OBSERVED,
            observed_at=at,
        )
        envelope = Envelope.build(payload, service="watcher", cluster=CLUSTER, obj=obj.as_object_ref(), time=at)
        out.append((envelope, obj.name if obj.namespace == ns else None, at))
    return out


def alert_events(s: Scenario, ns: str, t0: datetime) -> list[Envelope]:
    web = WorkloadRef(kind="Deployment", namespace=ns, name="web")
    out = []
    for pod in s.pods:
        labels = {"alertname": pod.alertname, "namespace": ns, "pod": pod.name, "container": "app", "node": pod.node}
        state = ContainerState(
            name="app",
            state="waiting" if pod.reason else "running",
            reason=pod.reason,
            last_termination_reason=pod.last,
        )
        events = (KubeEventSummary(type="Warning", reason=pod.event, message=pod.event),) if pod.event else ()
        payload = AlertFired(
            fingerprint=uuid.uuid4().hex[:16],
            alertname=pod.alertname,
            severity=Severity.CRITICAL,
            labels=labels,
            annotations=AlertAnnotations(summary=f"{pod.alertname} on {pod.name}"),
            starts_at=t0,
            source=AlertSource.WATCHER,
            workload=web,
            evidence=AlertEvidence(containers=(state,), events=events),
        )
        out.append(
            Envelope.build(
                payload, service="watcher", cluster=CLUSTER, obj=ObjectRef(kind="Pod", namespace=ns, name=pod.name)
            )
        )
    return out


def correct(expected: tuple[str, str | None] | None, answer: tuple[str, str | None] | None) -> bool:
    if expected is None or answer is None:
        return expected is None and answer is None
    return expected[0] == answer[0] and (expected[1] is None or expected[1] == answer[1])


@dataclass
class Tally:
    right: int = 0
    unknown: int = 0
    total: int = 0

    def add(self, ok: bool, unknown: bool) -> None:
        self.right += ok
        self.unknown += unknown
        self.total += 1


def scale_events(nodes: int, changes: int, t0: datetime) -> list[Envelope]:
    """A timeline at cluster scale, in the hour before the scenarios: a condition change of each of `nodes` nodes
    (cluster-scoped: every diagnosis reads them) and `changes` replica changes over 100 other namespaces."""
    out = []
    for i in range(nodes):
        at = t0 - timedelta(seconds=60 + (i * 3000) / max(nodes, 1))
        ref = ResourceRef(kind="Node", name=f"scale-node-{i:04d}")
        payload = ChangeRecorded(
            kinds=(ChangeKind.NODE_CONDITION,),
            object=ref,
            diff=(FieldChange(path="status.conditions[Ready]", before="True", after="False"),),
            summary=f"Ready True -> False on {ref.name}",
            origin=ChangeOrigin.OBSERVED,
            observed_at=at,
        )
        out.append(Envelope.build(payload, service="watcher", cluster=CLUSTER, obj=ref.as_object_ref(), time=at))
    for i in range(changes):
        at = t0 - timedelta(seconds=60 + (i * 3000) / max(changes, 1))
        w = WorkloadRef(kind="Deployment", namespace=f"scale-{i % 100}", name=f"app-{i // 100}")
        payload = ChangeRecorded(
            kinds=(ChangeKind.REPLICAS,),
            object=w.as_resource_ref(),
            workload=w,
            diff=(FieldChange(path="spec.replicas", before="9", after="10"),),
            summary=f"replicas 9 -> 10 of {w}",
            origin=ChangeOrigin.OBSERVED,
            observed_at=at,
        )
        out.append(Envelope.build(payload, service="watcher", cluster=CLUSTER, obj=w.as_object_ref(), time=at))
    return out


async def _recorded(db: Database, ids: Sequence[str], *, timeout: float) -> None:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        async with db.sessions() as session:
            n = (
                await session.execute(
                    text("select count(*) from analyzer.timeline where event_id = any(:ids)"), {"ids": list(ids)}
                )
            ).scalar_one()
        if n >= len(ids):
            return
        await asyncio.sleep(0.01 if len(ids) < 100 else 0.5)
    raise RuntimeError(f"the analyzer recorded {n} of {len(ids)} changes within {timeout:.0f} s")


async def run(repeats: int, sets: Sequence[str], *, scale_nodes: int = 0, scale_changes: int = 0) -> dict[str, Any]:
    logs = LogStore()
    with nats_server() as nats_srv, postgres_server() as pg:
        db_settings = DatabaseSettings.model_validate({"url": pg.url(), "pool_size": 5})
        await upgrade(db_settings, store.MIGRATIONS, store.SCHEMA)
        settings = AnalyzerSettings(
            environment="test",
            cluster=CLUSTER,
            instance="bench",
            nats={"url": nats_srv.url},
            database={"url": pg.url(), "pool_size": 5},
            http={"port": 0},
            shutdown_grace_seconds=5.0,
        )
        rt: Runtime[AnalyzerSettings] = Runtime("analyzer", settings, registry=CollectorRegistry())
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def wire(runtime: Runtime[AnalyzerSettings]) -> None:
            await setup(runtime, reader=logs)
            ready.set_result(None)

        task = asyncio.create_task(rt.run(wire, install_signals=False))
        await asyncio.wait_for(ready, 60)
        bus = await Bus.connect(
            NatsSettings.model_validate({"url": nats_srv.url}), service="bench", registry=CollectorRegistry()
        )
        db = Database.from_settings(db_settings)
        arrived: dict[str, tuple[float, Envelope]] = {}
        waiters: dict[str, asyncio.Future[None]] = {}

        async def on_made(msg: Any) -> None:
            event = Envelope.from_json(msg.data)
            ns = event.subject.split("/")[1]
            arrived[ns] = (time.perf_counter(), event)
            if ns in waiters and not waiters[ns].done():
                waiters[ns].set_result(None)

        await bus.nc.subscribe(f"diagnosis.made.{CLUSTER}.>", cb=on_made)
        tallies = {name: (Tally(), Tally()) for name in sets}
        latencies: list[float] = []
        rows: list[tuple[str, str, int, int]] = []
        preload = 0.0
        load = [os.getloadavg()[0]]
        try:
            if scale_nodes or scale_changes:
                started = time.perf_counter()
                bulk = scale_events(scale_nodes, scale_changes, datetime.now(UTC))
                for envelope in bulk:
                    await bus.publisher.publish(envelope)
                await _recorded(db, [e.id for e in bulk], timeout=1800)
                preload = time.perf_counter() - started
                load.append(os.getloadavg()[0])
            plan = [(set_name, i, s) for set_name in sets for i, s in enumerate(SETS[set_name])]
            for set_name, index, s in plan:
                analyzer, baseline = tallies[set_name]
                ok_a = ok_b = 0
                for r in range(repeats):
                    ns = f"{set_name[0]}{index}-r{r}"
                    t0 = datetime.now(UTC)
                    changes = change_events(s, ns, t0)
                    for envelope, _, _ in changes:
                        await bus.publisher.publish(envelope)
                    logs.refs[ns] = frozenset(s.config_refs)
                    logs.healthy[ns] = ["web-h1", "web-h2"]
                    logs.lines[(ns, "web-h1")] = logs.lines[(ns, "web-h2")] = HEALTHY * 3
                    for pod, lines in s.logs.items():
                        logs.lines[(ns, pod)] = HEALTHY[:2] + lines
                    # the watcher publishes changes before faults; let them land first
                    await _recorded(db, [envelope.id for envelope, _, _ in changes], timeout=30)
                    waiters[ns] = asyncio.get_running_loop().create_future()
                    alerts = alert_events(s, ns, t0)
                    sent = time.perf_counter()
                    for a in alerts[:1]:
                        await bus.publisher.publish(a)
                    try:
                        await asyncio.wait_for(waiters[ns], 10)
                    except TimeoutError:
                        raise RuntimeError(f"no diagnosis for scenario {s.name!r} in {ns}") from None
                    got_at, event = arrived[ns]
                    latencies.append(got_at - sent)
                    d = event.payload_as(DiagnosisMade)
                    top = d.top()
                    answer = (top.kind.value, top.target.name if top.target else None) if top else None
                    mine = correct(s.expected, answer)
                    in_ns = [(at, name) for _, name, at in changes if name is not None and at <= t0]
                    latest = max(in_ns)[1] if in_ns else None
                    base_answer = None if latest is None else ("any", latest)
                    base_ok = (s.expected is None and latest is None) or (
                        s.expected is not None and latest is not None and s.expected[1] in (None, latest)
                    )
                    if s.expected is not None and s.expected[1] is None:
                        base_ok = False  # a cause with no changed object cannot be a change
                    analyzer.add(mine, top is None)
                    baseline.add(base_ok, base_answer is None)
                    ok_a += mine
                    ok_b += base_ok
                    for a in alerts[1:]:  # the rest of the incident joins afterwards
                        await bus.publisher.publish(a)
                rows.append((set_name, s.name, ok_a, ok_b))
            load.append(os.getloadavg()[0])
        finally:
            await db.close()
            await bus.close()
            rt.request_shutdown()
            await task
    ordered = sorted(latencies)
    return {
        "rows": rows,
        "repeats": repeats,
        "tallies": tallies,
        "preload": preload,
        "scale": (scale_nodes, scale_changes),
        "p50": statistics.median(ordered),
        "p99": ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))],
        "max": ordered[-1],
        "n": len(ordered),
        "load": load,
    }


def report(result: dict[str, Any]) -> None:
    repeats = result["repeats"]
    print(f"{'set':<9} {'scenario':<58} {'analyzer':>9} {'baseline':>9}")
    for set_name, name, a, b in result["rows"]:
        print(f"{set_name:<9} {name:<58} {a:>5}/{repeats:<3} {b:>5}/{repeats:<3}")
    for set_name, pair in result["tallies"].items():
        for label, t in zip(("analyzer", "baseline"), pair, strict=True):
            print(
                f"{set_name:<9} {label:<9} top-1 accuracy {t.right / t.total:6.1%} ({t.right}/{t.total}); "
                f"unknown {t.unknown / t.total:6.1%} ({t.unknown}/{t.total})"
            )
    nodes, changes = result["scale"]
    if nodes or changes:
        print(
            f"timeline preloaded with {nodes} node and {changes} workload changes in the last hour "
            f"(ingested in {result['preload']:.1f} s)"
        )
    print(
        "load average (1 min) at the start, after the preload, at the end: "
        + ", ".join(f"{x:.1f}" for x in result["load"])
    )
    print(
        f"diagnosis latency (alert.fired published -> diagnosis.made received), n={result['n']}: "
        f"p50 {result['p50'] * 1000:.0f} ms, p99 {result['p99'] * 1000:.0f} ms, max {result['max'] * 1000:.0f} ms"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs of each scenario, each in its own namespace")
    parser.add_argument("--set", choices=[*SETS, "all"], default="all", help="tuned, held-out or both")
    parser.add_argument("--scale-nodes", type=int, default=0, help="preload: a condition change of N nodes")
    parser.add_argument("--scale-changes", type=int, default=0, help="preload: N workload changes elsewhere")
    args = parser.parse_args(argv)
    sets = list(SETS) if args.set == "all" else [args.set]
    report(asyncio.run(run(args.repeats, sets, scale_nodes=args.scale_nodes, scale_changes=args.scale_changes)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
