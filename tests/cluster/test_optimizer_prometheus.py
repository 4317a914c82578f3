"""The optimizer against a real Prometheus (Debian's prometheus package) on the sandbox.

Usage history is the kubelet's cAdvisor series the optimizer's Prometheus port queries
(`container_cpu_usage_seconds_total` as a counter under `rate(...[5m])`, `container_memory_working_set_bytes`),
written for the test's real pods with `promtool tsdb create-blocks-from openmetrics` into the server's storage
before it starts: one sample a minute for eight days, up to three hours ago (promtool's head-block rule). The
optimizer runs through its real wiring (the `start_optimizer` fixture of test_optimizer_rightsizing.py) with
the real server's URL: enough history gives a confident recommendation, auto mode patches within its guardrails
and records the audit, one day of history stays a recommendation, and an OOMKilled alert bumps memory at once.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from opsbus.common.bus import Bus
from opsbus.common.events import Envelope, ObjectRef
from opsbus.common.events.payloads import AlertAnnotations, AlertFired, AlertSource, Severity, WorkloadRef
from opsbus.common.testing.fixtures import StartPrometheus
from opsbus.common.testing.prometheus import HEAD_RANGE_SECONDS, Family, PrometheusServer, openmetrics
from opsbus.optimizer.domain.planning import Action
from opsbus.optimizer.domain.quantities import memory_bytes
from tests.cluster.kube import Cluster, wait_until
from tests.cluster.test_optimizer_rightsizing import (
    CLUSTER,
    MI,
    Start,
    create_deployment,
    idle,
    requests_of,
    running,
    start_optimizer,
    stream,
    wait_for,
)

pytestmark = [pytest.mark.cluster, pytest.mark.integration]
__all__ = ["start_optimizer"]  # the optimizer fixture shared with rightsizing

Usage = Callable[[str, str, str, float], tuple[float, float]]  # (ns, pod, container, t) -> (cores, bytes)
STEP = 60.0


def template_of(cluster: Cluster, name: str) -> tuple[dict[str, str], int]:
    """The container's requests and the Deployment's generation (status updates move resourceVersion)."""
    d = cluster.deployment(name)
    return d.spec.template.spec.containers[0].resources.requests, d.metadata.generation


def cadvisor_history(series: list[tuple[str, str, str]], usage: Usage, *, days: float, now: float) -> str:
    """cAdvisor's two series per container, one sample a minute from `days` ago up to the head block's range."""
    end = now - HEAD_RANGE_SECONDS - STEP
    start = now - days * 86_400 + STEP
    times = [start + i * STEP for i in range(int((end - start) // STEP) + 1)]
    cpu: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = {}
    memory: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = {}
    for ns, pod, container in series:
        labels = (("container", container), ("namespace", ns), ("pod", pod))
        used, total = [], 0.0
        for at in times:
            cores, working_set = usage(ns, pod, container, at)
            total += cores * STEP  # the counter: CPU seconds used so far
            used.append((at, total))
            memory.setdefault(labels, []).append((at, working_set))
        cpu[labels] = used
    return openmetrics(
        [
            Family("container_cpu_usage_seconds_total", "counter", cpu),
            Family("container_memory_working_set_bytes", "gauge", memory),
        ]
    )


async def with_history(
    start_prometheus: StartPrometheus, series: list[tuple[str, str, str]], usage: Usage, days: float
) -> PrometheusServer:
    now = time.time()
    text = cadvisor_history(series, usage, days=days, now=now)
    began = time.monotonic()
    prom = await asyncio.to_thread(start_prometheus, history=text)
    print(f"\n{len(text.splitlines())} samples backfilled and the server ready in {time.monotonic() - began:.1f}s")
    ns, pod, _ = series[0]
    at = now - HEAD_RANGE_SECONDS - 600
    mem = await asyncio.to_thread(prom.query, f'container_memory_working_set_bytes{{pod="{pod}"}}', at=at)
    assert len(mem) == 1 and mem[0]["metric"]["namespace"] == ns  # the history is there before the optimizer asks
    return prom


async def test_backfilled_history_in_prometheus_gives_a_confident_recommendation(
    cluster: Cluster, start_optimizer: Start, start_prometheus: StartPrometheus, make_bus: Callable[..., Awaitable[Bus]]
) -> None:
    ns = cluster.namespace
    create_deployment(cluster, "web", 2)
    series = await running(cluster, "web", 2)
    before = template_of(cluster, "web")
    prom = await with_history(start_prometheus, series, idle, days=8)
    optimizer = await start_optimizer(ns, prom.url, "recommend")
    bus = await make_bus("test")
    report = await optimizer.cycle()
    assert report.source == "prometheus" and report.workloads == 1
    assert report.samples > 2 * 1000  # ~7.9 days x 2 pods at the optimizer's 10-minute step
    (p,) = report.plans
    assert p.action is Action.RECOMMEND, p.reason

    events = await wait_for(bus, f"scale.recommended.{CLUSTER}.{ns}", lambda es: len(es) >= 1)
    rec = events[0].data
    c = rec["containers"][0]
    assert c["current"]["requests"] == {"cpu_millicores": 1000, "memory_bytes": 1024 * MI}
    assert 100 <= c["recommended"]["requests"]["cpu_millicores"] <= 250  # p90 of 80-120m + margin
    assert 250 * MI <= c["recommended"]["requests"]["memory_bytes"] <= 320 * MI
    assert rec["confidence"] > 0.8 and rec["observation_seconds"] >= 7 * 86_400
    assert rec["cost"]["monthly_delta"] < 0
    print(f"recommended {c['recommended']['requests']}, confidence {rec['confidence']:.2f}")
    assert template_of(cluster, "web") == before


async def test_one_day_of_history_is_not_enough_to_apply_in_auto_mode(
    cluster: Cluster, start_optimizer: Start, start_prometheus: StartPrometheus, make_bus: Callable[..., Awaitable[Bus]]
) -> None:
    ns = cluster.namespace
    create_deployment(cluster, "new", 1)
    series = await running(cluster, "new", 1)
    before = template_of(cluster, "new")
    prom = await with_history(start_prometheus, series, idle, days=1)
    optimizer = await start_optimizer(ns, prom.url, "auto")
    report = await optimizer.cycle()
    (p,) = report.plans
    assert p.action is not Action.APPLY, p.reason
    print(f"one day of history: {p.action.value}: {p.reason}")
    assert template_of(cluster, "new") == before
    bus = await make_bus("test")
    assert await stream(bus, f"scale.applied.{CLUSTER}.{ns}") == []


async def test_auto_mode_patches_requests_within_the_max_step_and_records_the_audit(
    cluster: Cluster, start_optimizer: Start, start_prometheus: StartPrometheus, make_bus: Callable[..., Awaitable[Bus]]
) -> None:
    ns = cluster.namespace
    create_deployment(cluster, "api", 2)
    series = await running(cluster, "api", 2)
    _, rv_before = requests_of(cluster, "api")
    prom = await with_history(start_prometheus, series, idle, days=8)
    optimizer = await start_optimizer(ns, prom.url, "auto", max_step_down=0.3)
    bus = await make_bus("test")
    report = await optimizer.cycle()
    (p,) = report.plans
    assert p.action is Action.APPLY, p.reason
    requests, rv_after = requests_of(cluster, "api")
    assert requests == {"cpu": "700m", "memory": str(round(1024 * MI * 0.7))}  # one -30% step, not the target
    assert rv_after != rv_before

    applied = await wait_for(bus, f"scale.applied.{CLUSTER}.{ns}", lambda es: len(es) >= 1)
    assert applied[0].data["dry_run"] is False
    audit = await wait_for(
        bus, f"audit.recorded.{CLUSTER}.{ns}", lambda es: any(e.data["outcome"] == "executed" for e in es)
    )
    executed = next(e.data for e in audit if e.data["outcome"] == "executed")
    assert executed["action"] == "scale.apply" and "step clamped" in executed["reason"]
    assert executed["target"]["name"] == "api"


async def test_an_oom_kill_bumps_memory_at_once_despite_the_cooldown(
    cluster: Cluster, start_optimizer: Start, start_prometheus: StartPrometheus, make_bus: Callable[..., Awaitable[Bus]]
) -> None:
    ns = cluster.namespace
    create_deployment(cluster, "leaky", 1)
    series = await running(cluster, "leaky", 1)

    def tight(ns_: str, pod: str, container: str, t: float) -> tuple[float, float]:
        return 0.85, 800 * MI

    prom = await with_history(start_prometheus, series, tight, days=8)
    optimizer = await start_optimizer(ns, prom.url, "auto", cooldown_seconds=86_400)
    bus = await make_bus("watcher")
    first = await optimizer.cycle()
    assert first.plans[0].action is Action.APPLY, first.plans[0].reason  # the cooldown now holds normal changes
    done = lambda: cluster.rollout_complete("leaky")  # noqa: E731
    await asyncio.to_thread(wait_until, "the right-sizing rolled out", done, 120)
    limit_before = cluster.deployment("leaky").spec.template.spec.containers[0].resources.limits["memory"]
    second = await optimizer.cycle()
    assert (second.plans[0].action, second.plans[0].guard) in ((Action.BLOCKED, "cooldown"), (Action.NOOP, None))

    _, pod, _ = series[0]
    labels = {"alertname": "KubeContainerOOMKilled", "cluster": CLUSTER, "namespace": ns, "pod": pod}
    alert = AlertFired(
        fingerprint=uuid.uuid4().hex[:16],
        alertname="KubeContainerOOMKilled",
        severity=Severity.WARNING,
        labels=labels | {"container": "app"},
        annotations=AlertAnnotations(summary="OOMKilled"),
        starts_at=datetime.now(UTC) - timedelta(seconds=5),
        source=AlertSource.WATCHER,
        workload=WorkloadRef(kind="Deployment", namespace=ns, name="leaky"),
    )
    event = Envelope.build(alert, service="watcher", cluster=CLUSTER, obj=ObjectRef(kind="Pod", namespace=ns, name=pod))
    await bus.publisher.publish(event)

    def bumped() -> Any:
        res = cluster.deployment("leaky").spec.template.spec.containers[0].resources
        return res if res.limits["memory"] != limit_before else None

    res = await asyncio.to_thread(wait_until, "memory raised after the OOM kill", bumped, 30)
    before = memory_bytes(limit_before) or 0
    assert (memory_bytes(res.limits["memory"]) or 0) >= 1.2 * before - 1
    assert (memory_bytes(res.requests["memory"]) or 0) >= 1.2 * before - 1
    applied = await wait_for(
        bus, f"scale.applied.{CLUSTER}.{ns}", lambda es: any(e.correlationid == event.id for e in es)
    )
    assert any(e.causationid == event.id for e in applied)
