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

    uv run --all-packages python bench/diagnosis.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry
from sqlalchemy import text

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


@dataclass(frozen=True)
class Change:
    ago: float  # seconds before the first alert
    kinds: tuple[ChangeKind, ...]
    obj: str  # "Deployment/web", "ConfigMap/web-settings", "Node/node-3"
    diff: tuple[tuple[str, str | None, str | None], ...] = ()


@dataclass(frozen=True)
class Pod:
    name: str
    alertname: str
    reason: str | None = None
    last: str | None = None
    event: str | None = None
    node: str = "node-1"


@dataclass(frozen=True)
class Scenario:
    name: str
    expected: tuple[str, str | None] | None  # (cause kind, target name); None: nothing explains it -> unknown
    changes: tuple[Change, ...]
    pods: tuple[Pod, ...]
    logs: dict[str, tuple[str, ...]] = field(default_factory=dict)  # failing pod -> its log
    config_refs: tuple[tuple[str, str], ...] = ()


def _img(name: str, a: str, b: str) -> tuple[tuple[str, str | None, str | None], ...]:
    return (("spec.template.spec.containers[app].image", f"shop/{name}:{a}", f"shop/{name}:{b}"),)


CRASH = {"alertname": "KubePodCrashLooping", "reason": "CrashLoopBackOff", "last": "Error"}
DISTRACT = Change(4, (ChangeKind.IMAGE,), "Deployment/cart", _img("cart", "3", "4"))
DISTRACT_CM = Change(
    2, (ChangeKind.CONFIG,), "ConfigMap/cart-settings", (("data[A]", "sha256:" + "a" * 16, "sha256:" + "b" * 16),)
)

SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "bad image rollout",
        ("rollout", "web"),
        (Change(40, (ChangeKind.IMAGE,), "Deployment/web", _img("web", "1.41", "1.42-typo")), DISTRACT),
        (Pod("web-a", "KubePodImagePullFailing", "ImagePullBackOff", event="Failed"),),
    ),
    Scenario(
        "configmap edit crashes pods",
        ("config_change", "web-settings"),
        (
            Change(
                30,
                (ChangeKind.CONFIG,),
                "ConfigMap/web-settings",
                (("data[DB_URL]", "sha256:" + "1" * 16, "sha256:" + "2" * 16),),
            ),
            DISTRACT_CM,
            DISTRACT,
        ),
        (Pod("web-a", **CRASH), Pod("web-b", **CRASH)),
        logs={
            "web-a": ("fatal: DB_URL: invalid scheme 'postgress'",),
            "web-b": ("fatal: DB_URL: invalid scheme 'postgress'",),
        },
        config_refs=(("ConfigMap", "web-settings"),),
    ),
    Scenario(
        "memory limit cut -> OOMKilled",
        ("resource_change", "web"),
        (
            Change(
                90,
                (ChangeKind.RESOURCES,),
                "Deployment/web",
                (("spec.template.spec.containers[app].resources.limits.memory", "512Mi", "96Mi"),),
            ),
            Change(600, (ChangeKind.IMAGE,), "Deployment/cart", _img("cart", "2", "3")),
        ),
        (Pod("web-a", "KubeContainerOOMKilled", "CrashLoopBackOff", last="OOMKilled"),),
    ),
    Scenario(
        "node NotReady takes its pods down",
        ("node", "node-3"),
        (
            Change(50, (ChangeKind.NODE_CONDITION,), "Node/node-3", (("status.conditions[Ready]", "True", "Unknown"),)),
            DISTRACT,
        ),
        (
            Pod("web-a", "KubeDeploymentReplicasMismatch", node="node-3"),
            Pod("web-b", "KubeDeploymentReplicasMismatch", node="node-3"),
        ),
    ),
    Scenario(
        "dependency outage visible only in logs",
        ("shared_dependency", None),
        (DISTRACT_CM,),
        (Pod("web-a", **CRASH), Pod("web-b", **CRASH)),
        logs=dict.fromkeys(
            ("web-a", "web-b"), ("starting", "dial tcp 10.0.4.2:5432: connect: connection refused to postgres:5432")
        ),
    ),
    Scenario(
        "dependency rolled out, clients crash",
        ("shared_dependency", "postgres"),
        (Change(25, (ChangeKind.IMAGE,), "Deployment/postgres", _img("postgres", "15", "16")), DISTRACT),
        (Pod("web-a", **CRASH),),
        logs={"web-a": ("error: connection refused to postgres:5432 (attempt 5)",)},
    ),
    Scenario(
        "request raise -> Pending",
        ("resource_change", "web"),
        (
            Change(
                60,
                (ChangeKind.RESOURCES,),
                "Deployment/web",
                (("spec.template.spec.containers[app].resources.requests.cpu", "250m", "48"),),
            ),
            Change(200, (ChangeKind.REPLICAS,), "Deployment/cart", (("spec.replicas", "2", "3"),)),
        ),
        (Pod("web-a", "KubePodNotScheduled", event="FailedScheduling"),),
    ),
    Scenario(
        "env change crashes pods",
        ("rollout", "web"),
        (
            Change(
                120, (ChangeKind.ENV,), "Deployment/web", (("spec.template.spec.containers[app].env[MODE]", "a", "b"),)
            ),
            DISTRACT,
            DISTRACT_CM,
        ),
        (Pod("web-a", **CRASH),),
    ),
    Scenario(
        "probe path change fails readiness",
        ("rollout", "web"),
        (
            Change(
                45,
                (ChangeKind.TEMPLATE,),
                "Deployment/web",
                (("spec.template.spec.containers[app].readinessProbe.httpGet.path", "/healthz", "/ready"),),
            ),
            DISTRACT,
        ),
        (Pod("web-a", "KubeDeploymentReplicasMismatch", event="Unhealthy"),),
    ),
    Scenario(
        "rollout minutes before, noise right before",
        ("rollout", "web"),
        (
            Change(180, (ChangeKind.IMAGE,), "Deployment/web", _img("web", "2.0", "2.1")),
            DISTRACT,
            DISTRACT_CM,
            Change(1, (ChangeKind.REPLICAS,), "Deployment/search", (("spec.replicas", "4", "6"),)),
        ),
        (Pod("web-a", **CRASH), Pod("web-b", **CRASH)),
        logs={"web-a": ("panic: nil map write in cart.Merge",), "web-b": ("panic: nil map write in cart.Merge",)},
    ),
    Scenario(
        "nothing explains it (only an unrelated change)",
        None,
        (DISTRACT,),
        (Pod("web-a", **CRASH),),
    ),
    Scenario(
        "nothing explains it (the workload's last rollout was 2 h ago)",
        None,
        (Change(7200, (ChangeKind.IMAGE,), "Deployment/web", _img("web", "1.0", "1.1")),),
        (Pod("web-a", **CRASH),),
    ),
)


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


async def run(repeats: int) -> dict[str, Any]:
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
        analyzer, baseline = Tally(), Tally()
        latencies: list[float] = []
        rows: list[tuple[str, int, int]] = []
        try:
            for index, s in enumerate(SCENARIOS):
                ok_a = ok_b = 0
                for r in range(repeats):
                    ns = f"s{index}-r{r}"
                    t0 = datetime.now(UTC)
                    changes = change_events(s, ns, t0)
                    for envelope, _, _ in changes:
                        await bus.publisher.publish(envelope)
                    logs.refs[ns] = frozenset(s.config_refs)
                    logs.healthy[ns] = ["web-h1", "web-h2"]
                    logs.lines[(ns, "web-h1")] = logs.lines[(ns, "web-h2")] = HEALTHY * 3
                    for pod, lines in s.logs.items():
                        logs.lines[(ns, pod)] = HEALTHY[:2] + lines
                    ids = [envelope.id for envelope, _, _ in changes]
                    for _ in range(500):  # the watcher publishes changes before faults; let them land first
                        async with db.sessions() as session:
                            n = (
                                await session.execute(
                                    text("select count(*) from analyzer.timeline where event_id = any(:ids)"),
                                    {"ids": ids},
                                )
                            ).scalar_one()
                        if n >= len(ids):
                            break
                        await asyncio.sleep(0.01)
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
                rows.append((s.name, ok_a, ok_b))
        finally:
            await db.close()
            await bus.close()
            rt.request_shutdown()
            await task
    ordered = sorted(latencies)
    return {
        "rows": rows,
        "repeats": repeats,
        "analyzer": analyzer,
        "baseline": baseline,
        "p50": statistics.median(ordered),
        "p99": ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))],
        "max": ordered[-1],
        "n": len(ordered),
    }


def report(result: dict[str, Any]) -> None:
    repeats = result["repeats"]
    print(f"{'scenario':<58} {'analyzer':>9} {'baseline':>9}")
    for name, a, b in result["rows"]:
        print(f"{name:<58} {a:>5}/{repeats:<3} {b:>5}/{repeats:<3}")
    for label in ("analyzer", "baseline"):
        t: Tally = result[label]
        print(
            f"{label:<9} top-1 accuracy {t.right / t.total:6.1%} ({t.right}/{t.total}); "
            f"unknown {t.unknown / t.total:6.1%} ({t.unknown}/{t.total})"
        )
    print(
        f"diagnosis latency (alert.fired published -> diagnosis.made received), n={result['n']}: "
        f"p50 {result['p50'] * 1000:.0f} ms, p99 {result['p99'] * 1000:.0f} ms, max {result['max'] * 1000:.0f} ms"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs of each scenario, each in its own namespace")
    args = parser.parse_args(argv)
    report(asyncio.run(run(args.repeats)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
