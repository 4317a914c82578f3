"""The optimizer against the sandbox apiserver, real NATS JetStream, real PostgreSQL and a Prometheus HTTP API
server on 127.0.0.1 that serves eight days of cAdvisor usage for the test's pods.

The optimizer runs in-process through its real wiring (`opsbus.optimizer.service.setup` inside a `Runtime`);
the test drives its cycle (no timer), then reads what it published from the SCALE and AUDIT streams and what
it did from the cluster.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes import client

from opsbus.common.bus import Bus
from opsbus.common.events import Envelope, ObjectRef
from opsbus.common.events.payloads import (
    AlertAnnotations,
    AlertFired,
    AlertSource,
    ChangeOrigin,
    ChangeRecorded,
    Severity,
    WorkloadRef,
)
from opsbus.common.rpc import call
from opsbus.common.runtime import Runtime
from opsbus.common.settings import DatabaseSettings
from opsbus.common.store import upgrade
from opsbus.optimizer.domain.api import ListRecommendationsRequest, RecommendationList
from opsbus.optimizer.domain.planning import Action
from opsbus.optimizer.executing import Optimizer
from opsbus.optimizer.settings import OptimizerSettings
from opsbus.optimizer.store import MIGRATIONS, SCHEMA
from opsbus.optimizer.testing import FakePrometheus
from tests.cluster.conftest import SandboxHandle
from tests.cluster.kube import Cluster, wait_until

pytestmark = pytest.mark.cluster
CLUSTER = "sandbox"
MI = 2**20


class Start:
    """Starts optimizers in-process through their real wiring (`start(namespace, prometheus_url, mode,
    **guardrails)`), stops one like a pod being replaced (`stop(optimizer)`), and stops the rest at teardown."""

    def __init__(self, database_url: str, nats_url: str, kubeconfig: str) -> None:
        self.database_url, self.nats_url, self.kubeconfig = database_url, nats_url, kubeconfig
        self.runs: dict[int, tuple[Runtime[OptimizerSettings], asyncio.Task[int]]] = {}

    async def __call__(
        self,
        namespace: str,
        prometheus_url: str,
        mode: str,
        *,
        forecast: Any = None,  # dict of settings; Any: callers spread **guardrails typed object
        history: Any = None,
        options: Any = None,
        **guardrails: object,
    ) -> Optimizer:
        """`forecast`: the forecast settings; None: off, and requests changed through the pod template (the
        path these tests check; test_optimizer_forecasts checks the forecasts and in-place resize)."""
        from opsbus.optimizer.service import setup  # noqa: PLC0415

        settings = OptimizerSettings.model_validate(
            {
                "cluster": CLUSTER,
                "nats": {"url": self.nats_url},
                "database": {"url": self.database_url},
                "http": {"port": 0},
                "shutdown_grace_seconds": 5,
                "optimizer": {
                    "kubeconfig": self.kubeconfig,
                    "prometheus_url": prometheus_url,
                    "metrics_server_fallback": False,
                    "namespaces": [namespace],
                    "modes": {namespace: mode},
                    "usage_step_seconds": 600,
                    "guardrails": {"cooldown_seconds": 0, **guardrails},
                    "forecast": forecast or {"enabled": False, "in_place_resize": "off"},
                    "history": history or {},
                    **(options or {}),
                },
            }
        )
        rt = Runtime("optimizer", settings)
        holder: list[Optimizer] = []

        async def wired(r: Runtime[OptimizerSettings]) -> None:
            holder.append(await setup(r, run_cycles=False))

        task = asyncio.create_task(rt.run(wired, install_signals=False), name="optimizer-under-test")
        deadline = time.monotonic() + 30
        while not rt._ready:
            if task.done():
                await task
            assert time.monotonic() < deadline, "optimizer did not become ready"
            await asyncio.sleep(0.05)
        self.runs[id(holder[0])] = (rt, task)
        return holder[0]

    async def stop(self, optimizer: Optimizer) -> None:
        rt, task = self.runs.pop(id(optimizer))
        rt.request_shutdown()
        await asyncio.wait_for(task, 30)

    async def stop_all(self) -> None:
        for rt, task in self.runs.values():
            rt.request_shutdown()
            await asyncio.wait_for(task, 30)
        self.runs.clear()


@asynccontextmanager
async def optimizers(database_url: str, nats_url: str, sandbox: SandboxHandle) -> AsyncIterator[Start]:
    await upgrade(DatabaseSettings.model_validate({"url": database_url}), MIGRATIONS, SCHEMA)
    start = Start(database_url, nats_url, str(sandbox.kubeconfig))
    try:
        yield start
    finally:
        await start.stop_all()


@pytest.fixture
async def start_optimizer(database_url: str, nats_url: str, sandbox: SandboxHandle) -> AsyncIterator[Start]:
    async with optimizers(database_url, nats_url, sandbox) as start:
        yield start


def create_deployment(cluster: Cluster, name: str, replicas: int, *, paused: bool = False) -> Any:
    labels = {"app": name}
    resources = client.V1ResourceRequirements(
        requests={"cpu": "1", "memory": "1Gi"}, limits={"cpu": "2", "memory": "1Gi"}
    )
    body = client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            paused=paused,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(
                    containers=[client.V1Container(name="app", image="registry.example/app:1.0", resources=resources)]
                ),
            ),
        ),
    )
    return cluster.apps.create_namespaced_deployment(cluster.namespace, body)


async def running(cluster: Cluster, app: str, n: int) -> list[tuple[str, str, str]]:
    pods = await asyncio.to_thread(wait_until, f"{app} running", lambda: cluster.running_pods(app, n), 120)
    return [(cluster.namespace, p.metadata.name, "app") for p in pods]


def idle(ns: str, pod: str, container: str, t: float) -> tuple[float, float]:
    """An over-provisioned app: ~100m CPU with a daily swing, 200-230 Mi working set, against 1 CPU / 1 Gi."""
    day = (t % 86_400) / 86_400
    return 0.08 + 0.04 * (1 if 0.3 < day < 0.8 else 0), (200 + 30 * (1 if 0.4 < day < 0.6 else 0)) * MI


async def stream(bus: Bus, subject: str) -> list[Envelope]:
    sub = await bus.js.pull_subscribe(subject, durable=None)
    out: list[Envelope] = []
    try:
        while True:
            try:
                msgs = await sub.fetch(100, timeout=0.5)
            except Exception:
                break
            for m in msgs:
                out.append(Envelope.from_json(m.data))
                await m.ack()
    finally:
        await sub.unsubscribe()
    return out


async def wait_for(
    bus: Bus, subject: str, pred: Callable[[list[Envelope]], bool], timeout: float = 30
) -> list[Envelope]:
    deadline = time.monotonic() + timeout
    while True:
        events = await stream(bus, subject)
        if pred(events):
            return events
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting on {subject}; saw {[(e.type, e.data.get('reason')) for e in events]}")
        await asyncio.sleep(0.3)


def requests_of(cluster: Cluster, name: str) -> tuple[dict[str, str], str]:
    d = cluster.deployment(name)
    return d.spec.template.spec.containers[0].resources.requests, d.metadata.resource_version


async def test_recommend_mode_publishes_a_cheaper_recommendation_and_changes_nothing(
    cluster: Cluster, start_optimizer: Start, make_bus: Callable[..., Awaitable[Bus]]
) -> None:
    ns = cluster.namespace
    create_deployment(cluster, "web", 2)
    series = await running(cluster, "web", 2)
    before = requests_of(cluster, "web")
    async with AsyncExitStack() as stack:
        prom = await stack.enter_async_context(FakePrometheus(idle, lambda: series).running())
        optimizer = await start_optimizer(ns, prom.url, "recommend")
        bus = await make_bus("test")
        report = await optimizer.cycle()
    assert report.workloads == 1 and report.samples > 2 * 1000  # 8 days x 2 pods at 10-minute resolution
    assert report.source == "prometheus"
    (p,) = report.plans
    assert p.action is Action.RECOMMEND

    events = await wait_for(bus, f"scale.recommended.{CLUSTER}.{ns}", lambda es: len(es) >= 1)
    rec = events[0].data
    assert rec["workload"] == {"kind": "Deployment", "namespace": ns, "name": "web"}
    c = rec["containers"][0]
    assert c["current"]["requests"] == {"cpu_millicores": 1000, "memory_bytes": 1024 * MI}
    assert 100 <= c["recommended"]["requests"]["cpu_millicores"] <= 250  # p90 of 80-120m + margin
    assert 250 * MI <= c["recommended"]["requests"]["memory_bytes"] <= 320 * MI
    assert rec["cost"]["monthly_delta"] < 0 and rec["mode"] == "recommend"
    assert rec["confidence"] > 0.8 and rec["observation_seconds"] >= 7 * 86_400
    cost = rec["cost"]
    print(f"recommended: {c['recommended']['requests']} monthly {cost['monthly_now']} -> {cost['monthly_after']}")

    audit = await wait_for(bus, f"audit.recorded.{CLUSTER}.{ns}", lambda es: len(es) >= 1)
    assert audit[0].data["outcome"] == "skipped" and audit[0].data["details"]["decision"] == "recommend"
    assert requests_of(cluster, "web") == before  # nothing changed in the cluster

    listed = await call(
        bus.nc, "optimizer", "list_recommendations", ListRecommendationsRequest(namespace=ns), RecommendationList
    )
    assert [r.id for r in listed.recommendations] == [rec["recommendation_id"]]
    assert listed.recommendations[0].status == "open"


async def test_auto_mode_patches_requests_within_the_max_step(
    cluster: Cluster, start_optimizer: Start, make_bus: Callable[..., Awaitable[Bus]]
) -> None:
    ns = cluster.namespace
    create_deployment(cluster, "api", 2)
    series = await running(cluster, "api", 2)
    _, rv_before = requests_of(cluster, "api")
    async with AsyncExitStack() as stack:
        prom = await stack.enter_async_context(FakePrometheus(idle, lambda: series).running())
        optimizer = await start_optimizer(ns, prom.url, "auto", max_step_down=0.3)
        bus = await make_bus("test")
        report = await optimizer.cycle()
    (p,) = report.plans
    assert p.action is Action.APPLY, p.reason
    requests, rv_after = requests_of(cluster, "api")
    assert requests == {"cpu": "700m", "memory": str(round(1024 * MI * 0.7))}  # one step of -30%, not the target
    assert rv_after != rv_before
    limits = cluster.deployment("api").spec.template.spec.containers[0].resources.limits
    assert limits["cpu"] == "1400m"  # the limit moves one clamped step too, and stays 2x the request

    applied = await wait_for(bus, f"scale.applied.{CLUSTER}.{ns}", lambda es: len(es) >= 1)
    a = applied[0].data
    assert a["applied_by"] == {"kind": "service", "id": "optimizer"} and a["dry_run"] is False
    assert a["containers"][0]["recommended"]["requests"]["cpu_millicores"] == 700
    assert a["cost"]["monthly_delta"] < 0
    audit = await wait_for(
        bus, f"audit.recorded.{CLUSTER}.{ns}", lambda es: any(e.data["outcome"] == "executed" for e in es)
    )
    executed = next(e.data for e in audit if e.data["outcome"] == "executed")
    assert executed["action"] == "scale.apply" and "step clamped" in executed["reason"]
    assert executed["target"]["name"] == "api"


async def test_an_active_rollout_blocks_auto_apply_with_a_recorded_reason(
    cluster: Cluster, start_optimizer: Start, make_bus: Callable[..., Awaitable[Bus]]
) -> None:
    ns = cluster.namespace
    create_deployment(cluster, "pay", 2)
    series = await running(cluster, "pay", 2)
    # A paused rollout: the new template is observed but no pod runs it (updatedReplicas 0 < replicas 2).
    cluster.apps.patch_namespaced_deployment(
        "pay",
        ns,
        {
            "spec": {
                "paused": True,
                "template": {"spec": {"containers": [{"name": "app", "image": "registry.example/app:2.0"}]}},
            }
        },
    )

    def observed() -> Any:
        d = cluster.deployment("pay")
        return d if d.status.observed_generation == d.metadata.generation else None

    await asyncio.to_thread(wait_until, "the new generation observed", observed, 30)
    before = requests_of(cluster, "pay")
    async with AsyncExitStack() as stack:
        prom = await stack.enter_async_context(FakePrometheus(idle, lambda: series).running())
        optimizer = await start_optimizer(ns, prom.url, "auto")
        bus = await make_bus("test")
        report = await optimizer.cycle()
    (p,) = report.plans
    assert (p.action, p.guard) == (Action.BLOCKED, "rollout")
    assert requests_of(cluster, "pay") == before
    audit = await wait_for(
        bus, f"audit.recorded.{CLUSTER}.{ns}", lambda es: any(e.data["outcome"] == "denied" for e in es)
    )
    denied = next(e.data for e in audit if e.data["outcome"] == "denied")
    assert "rollout in progress: updatedReplicas 0 < replicas 2" in denied["reason"]
    assert denied["details"]["guard"] == "rollout"
    assert await stream(bus, f"scale.applied.{CLUSTER}.{ns}") == []
    recs = await stream(bus, f"scale.recommended.{CLUSTER}.{ns}")
    assert len(recs) == 1  # still recommended, for a human or a later cycle


async def test_an_oom_kill_bumps_memory_at_once(
    cluster: Cluster, start_optimizer: Start, make_bus: Callable[..., Awaitable[Bus]]
) -> None:
    ns = cluster.namespace
    create_deployment(cluster, "leaky", 1)
    series = await running(cluster, "leaky", 1)

    def tight(ns_: str, pod: str, container: str, t: float) -> tuple[float, float]:
        return 0.85, 800 * MI

    async with AsyncExitStack() as stack:
        prom = await stack.enter_async_context(FakePrometheus(tight, lambda: series).running())
        optimizer = await start_optimizer(ns, prom.url, "auto", cooldown_seconds=86_400)
        bus = await make_bus("watcher")
        first = await optimizer.cycle()
        assert first.plans[0].action is Action.APPLY  # a first right-sizing; the cooldown now holds normal changes
        # its new template rolls out first (a rollout in progress blocks every change, the OOM bump included)
        done = lambda: cluster.rollout_complete("leaky")  # noqa: E731
        await asyncio.to_thread(wait_until, "the right-sizing rolled out", done, 120)
        limit_before = cluster.deployment("leaky").spec.template.spec.containers[0].resources.limits["memory"]
        second = await optimizer.cycle()
        assert (second.plans[0].action, second.plans[0].guard) in ((Action.BLOCKED, "cooldown"), (Action.NOOP, None))
        _, pod, _ = series[0]
        alert = AlertFired(
            fingerprint=uuid.uuid4().hex[:16],
            alertname="KubeContainerOOMKilled",
            severity=Severity.WARNING,
            labels={
                "alertname": "KubeContainerOOMKilled",
                "cluster": CLUSTER,
                "namespace": ns,
                "pod": pod,
                "container": "app",
            },
            annotations=AlertAnnotations(summary="OOMKilled"),
            starts_at=datetime.now(UTC) - timedelta(seconds=5),
            source=AlertSource.WATCHER,
            workload=WorkloadRef(kind="Deployment", namespace=ns, name="leaky"),
        )
        event = Envelope.build(
            alert, service="watcher", cluster=CLUSTER, obj=ObjectRef(kind="Pod", namespace=ns, name=pod)
        )
        await bus.publisher.publish(event)

        def bumped() -> Any:
            res = cluster.deployment("leaky").spec.template.spec.containers[0].resources
            return res if res.limits["memory"] != limit_before else None

        res = await asyncio.to_thread(wait_until, "memory raised after the OOM kill", bumped, 30)
    # the kill happened at the limit: x1.2 (larger than +100 Mi here), despite the cooldown
    from opsbus.optimizer.domain.quantities import memory_bytes  # noqa: PLC0415

    before = memory_bytes(limit_before) or 0
    assert (memory_bytes(res.limits["memory"]) or 0) >= 1.2 * before - 1
    assert (memory_bytes(res.requests["memory"]) or 0) >= 1.2 * before - 1
    applied = await wait_for(
        bus, f"scale.applied.{CLUSTER}.{ns}", lambda es: any(e.correlationid == event.id for e in es)
    )
    assert any(e.causationid == event.id for e in applied)  # the chain: OOM alert -> scale.applied
    subject = f"change.recorded.{CLUSTER}.{ns}"
    timeline = await wait_for(bus, subject, lambda es: any(e.causationid == event.id for e in es))
    (bump,) = [e.payload_as(ChangeRecorded) for e in timeline if e.causationid == event.id]  # and on the timeline
    assert bump.origin is ChangeOrigin.OPTIMIZER and any(d.path.endswith("limits.memory") for d in bump.diff)
