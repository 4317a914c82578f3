"""The crash-loop ladder end to end with the real deployer: delete_pod, then rollout_restart, then a rollback
the healer asks of the deployer (`deploy.requested`, strategy rollback) and follows to its outcome.

The sandbox, NATS JetStream and PostgreSQL are real; the healer runs through its service wiring and the
deployer through its own (`opsbus.deployer.service.start`), both in this process. The bad release is a real
rollout: the sandbox's crashloop fault written into the Deployment's pod template (revision 2).
"""

# ruff: noqa: F401, F811 - `start_healer` is the fixture imported from the shared healer harness below

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry

from opsbus.common.bus import Bus
from opsbus.common.events import ObjectRef
from opsbus.common.settings import DatabaseSettings, NatsSettings
from opsbus.common.store import upgrade
from opsbus.deployer import store as deployer_store
from opsbus.deployer.service import Deployer, start
from opsbus.deployer.settings import DeployerOptions, DeployerSettings
from tests.cluster.kube import Cluster, container_status, wait_until
from tests.cluster.test_healer_remediation import (
    CLUSTER,
    StartHealer,
    alert,
    envelope,
    start_healer,
    stream,
    wait_for_events,
)

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]
CHAOS_LABEL = "opsbus.io/chaos"
POLICIES = """
policies:
  - name: crashloop
    match: {alertname: KubePodCrashLooping}
    cooldown: 0s
    max_attempts: 5
    ladder:
      - {action: delete_pod, params: {grace_period_seconds: 0}, verify: alert_resolved, timeout: 10s}
      - {action: rollout_restart, verify: alert_resolved, timeout: 10s}
      - {action: rollback, verify: deploy_succeeded, timeout: 180s}
"""
MakeBus = Callable[..., Awaitable[Bus]]


@pytest.fixture
async def deployer(
    cluster: Cluster, nats_url: str, database_url: str, tracer_provider: TracerProvider
) -> AsyncIterator[Deployer]:
    settings = DeployerSettings(
        cluster=CLUSTER,
        nats=NatsSettings(url=nats_url),
        database=DatabaseSettings(url=database_url),
        deployer=DeployerOptions(kubeconfig=str(cluster.kubeconfig), tick_seconds=0.5),
        shutdown_grace_seconds=5,
    )
    await upgrade(settings.database, deployer_store.MIGRATIONS, deployer_store.SCHEMA)
    running = await start(
        settings, registry=CollectorRegistry(), tracer_provider=tracer_provider, instance="deployer-test"
    )
    try:
        yield running
    finally:
        await running.close()


def crash_looping(cluster: Cluster, app: str) -> Any:
    for p in cluster.pods(app):
        cs = container_status(p)
        if cs is not None and cs.state.waiting is not None and cs.state.waiting.reason == "CrashLoopBackOff":
            return p
    return None


def steps(events: list[Any], rid: str) -> list[tuple[int, str]]:
    return [(e.data.get("step", 0), e.type.split(".")[3]) for e in events if e.data.get("recovery_id") == rid]


async def test_crashloop_ladder_ends_in_a_rollback_done_by_the_deployer_and_followed_by_the_healer(
    cluster: Cluster, deployer: Deployer, start_healer: StartHealer, make_bus: MakeBus
) -> None:
    cluster.create_deployment("shop", replicas=1, image="registry.example/shop:1")
    await asyncio.to_thread(wait_until, "shop rolled out", lambda: cluster.rollout_complete("shop"), 120)
    # The bad release: revision 2's pods crash.
    await asyncio.to_thread(cluster.chaos, "crashloop", "deployment/shop")
    pod = await asyncio.to_thread(wait_until, "a crash-looping shop pod", lambda: crash_looping(cluster, "shop"), 120)

    await start_healer(policies=POLICIES)
    bus = await make_bus("watcher")
    fired = envelope(
        alert("KubePodCrashLooping", cluster.namespace, pod=pod.metadata.name, workload="shop"),
        ObjectRef(kind="Pod", namespace=cluster.namespace, name=pod.metadata.name),
    )
    await bus.publisher.publish(fired)

    recovery = await wait_for_events(
        bus, "recovery.>", lambda es: any(e.type.endswith(("succeeded.v1", "escalated.v1")) for e in es), 300
    )
    rid = recovery[0].data["recovery_id"]
    deploys = await stream(bus, "deploy.>")
    assert steps(recovery, rid) == [
        (1, "planned"), (1, "started"), (1, "failed"),
        (2, "planned"), (2, "started"), (2, "failed"),
        (3, "planned"), (3, "started"), (3, "succeeded"),
    ], [(e.type, e.data.get("reason") or e.data.get("message")) for e in recovery + deploys]  # fmt: skip
    failed = [e.data for e in recovery if e.type.endswith("failed.v1")]
    assert [f["action"]["kind"] for f in failed] == ["delete_pod", "rollout_restart"]
    assert all(f["verification"]["observed"] == "alert still firing" for f in failed)
    assert [f["next_step"] for f in failed] == [2, 3]
    done = recovery[-1].data
    assert done["action"]["kind"] == "rollback" and done["action"]["parameters"]["to_revision"] == 1
    assert done["verification"]["passed"] is True and done["verification"]["observed"].startswith("deploy rolledback")

    # The request the healer made and the deployer's answer, linked to the alert.
    (request,) = [e for e in deploys if e.type == "io.opsbus.deploy.requested.v1"]
    assert request.data["strategy"] == "rollback" and request.data["to_revision"] == 1
    assert request.correlationid == fired.id and request.service == "healer"
    outcome = [e for e in deploys if e.type == "io.opsbus.deploy.rolledback.v1"]
    assert [e.data["request_id"] for e in outcome] == [request.id]

    # The cluster runs revision 1's template again, and healthy pods.
    d = await asyncio.to_thread(wait_until, "shop rolled back", lambda: cluster.rollout_complete("shop"), 60)
    assert CHAOS_LABEL not in (d.spec.template.metadata.labels or {})
    assert crash_looping(cluster, "shop") is None
