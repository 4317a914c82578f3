"""Kubernetes-based analysis checks and the terminal events of the edge cases, on the sandbox.

- restarts of the new pods fail a rolling update's analysis long before its progress deadline, and it rolls
  back; a healthy release passes the same checks (restarts and not_ready);
- a request older than the freshness bound ends in `deploy.skipped` and changes nothing;
- a rollback that cannot complete (the previous template crashes too) ends in `deploy.rollback_failed`;
- a DaemonSet request is refused with a reason that says so (not "not found").
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from opsbus.common.bus import Bus
from opsbus.common.events import Envelope, ObjectRef
from opsbus.common.events.payloads.common import WorkloadRef
from opsbus.common.events.payloads.deploy import (
    AnalysisOutcome,
    AnalysisSpec,
    CanarySpec,
    DeployFailed,
    DeployFailureReason,
    DeployRequested,
    DeployRollbackFailed,
    DeployRolledBack,
    DeploySkipped,
    DeploySucceeded,
    Strategy,
)
from opsbus.common.rpc import call
from opsbus.deployer.api import RolloutSelector, RolloutView
from opsbus.deployer.service import Deployer
from tests.cluster.kube import Cluster
from tests.cluster.test_deployer_canary import answer, metric
from tests.cluster.test_deployer_rollouts import (
    CLUSTER,
    REQUESTER,
    DeployEvents,
    FakePrometheus,
    client_bus,
    crashing_manifest,
    deploy_events,
    deployer,
    image_of,
    prometheus,
    request_event,
    rolled_out,
    settings,
)

pytestmark = [pytest.mark.cluster, pytest.mark.integration]
__all__ = ["client_bus", "deploy_events", "deployer", "prometheus", "settings"]  # fixtures shared with rollouts


def pod_check(name: str, check: str, **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "provider": {"kind": "kubernetes", "check": check},
        "success_condition": {"operator": "<=", "threshold": 0},
        "interval_seconds": 2,
        "count": 3,
        "initial_delay_seconds": 3,
        **fields,
    }


async def test_restarts_of_the_new_pods_fail_the_analysis_and_roll_back_before_the_progress_deadline(
    cluster: Cluster, deployer: Deployer, client_bus: Bus, deploy_events: DeployEvents
) -> None:
    cluster.create_deployment("chk", replicas=2, image="registry.example/chk:1")
    await rolled_out(cluster, "chk")
    analysis = AnalysisSpec.model_validate({"metrics": [pod_check("restarts", "restarts", inconclusive_limit=2)]})
    request = request_event(
        cluster,
        "chk",
        strategy=Strategy.ROLLING,
        manifest=crashing_manifest("chk", "registry.example/chk:2-crashes"),
        progress_deadline_seconds=600,  # the analysis, not the deadline, must catch it
        analysis=analysis,
    )
    began = time.monotonic()
    await client_bus.publisher.publish(request)
    failed = (await deploy_events.wait(request.id, DeployFailed, timeout=90)).payload_as(DeployFailed)
    took = time.monotonic() - began
    assert failed.reason is DeployFailureReason.ANALYSIS_FAILED and failed.rollback_pending
    (result,) = failed.analysis
    assert result.metric == "restarts" and result.outcome is AnalysisOutcome.FAILED
    assert any(m.value is not None and m.value > 0 for m in result.measurements)
    await deploy_events.wait(request.id, DeployRolledBack, timeout=90)
    await rolled_out(cluster, "chk", timeout=60)
    assert image_of(cluster, "chk") == "registry.example/chk:1"
    print(f"\ncrashing release caught by the restarts check after {took:.1f}s (progress deadline 600s)")


async def test_a_healthy_release_passes_the_restart_and_readiness_checks(
    cluster: Cluster, deployer: Deployer, client_bus: Bus, deploy_events: DeployEvents
) -> None:
    cluster.create_deployment("fine", replicas=2, image="registry.example/fine:1")
    await rolled_out(cluster, "fine")
    analysis = AnalysisSpec.model_validate(
        {"metrics": [pod_check("restarts", "restarts"), pod_check("not-ready", "not_ready")]}
    )
    request = request_event(
        cluster, "fine", strategy=Strategy.ROLLING, images={"app": "registry.example/fine:2"}, analysis=analysis
    )
    await client_bus.publisher.publish(request)
    done = (await deploy_events.wait(request.id, DeploySucceeded, timeout=90)).payload_as(DeploySucceeded)
    assert {r.metric: r.outcome for r in done.analysis} == {
        "restarts": AnalysisOutcome.SUCCESSFUL,
        "not-ready": AnalysisOutcome.SUCCESSFUL,
    }
    assert all(r.successful == 3 for r in done.analysis)
    assert image_of(cluster, "fine") == "registry.example/fine:2"


async def test_a_stale_request_ends_in_skipped_and_changes_nothing(
    cluster: Cluster, deployer: Deployer, client_bus: Bus, deploy_events: DeployEvents
) -> None:
    before = cluster.create_deployment("old", replicas=1, image="registry.example/old:1")
    await rolled_out(cluster, "old")
    payload = DeployRequested(
        cluster=CLUSTER,
        workload=WorkloadRef(kind="Deployment", namespace=cluster.namespace, name="old"),
        strategy=Strategy.ROLLING,
        images={"app": "registry.example/old:2"},
        requester=REQUESTER,
    )
    request = Envelope.build(
        payload,
        service="gateway",
        cluster=CLUSTER,
        obj=ObjectRef(kind="Deployment", namespace=cluster.namespace, name="old"),
        time=datetime.now(UTC) - timedelta(hours=2),  # the default freshness bound is one hour
    )
    await client_bus.publisher.publish(request)
    skipped = (await deploy_events.wait(request.id, DeploySkipped, timeout=30)).payload_as(DeploySkipped)
    assert skipped.reason == "stale" and skipped.age_seconds >= 7200 and skipped.freshness_seconds == 3600
    await asyncio.sleep(1)
    assert [e.type.split(".")[3] for e in deploy_events.for_request(request.id)] == ["skipped"]
    assert cluster.deployment("old").metadata.generation == before.metadata.generation
    assert image_of(cluster, "old") == "registry.example/old:1"
    status = await call(client_bus.nc, "deployer", "status", RolloutSelector(request_id=request.id), RolloutView)
    assert status.state == "skipped" and status.reason == "stale"


async def test_a_rollback_that_cannot_complete_ends_in_rollback_failed(
    cluster: Cluster, deployer: Deployer, client_bus: Bus, deploy_events: DeployEvents, prometheus: FakePrometheus
) -> None:
    cluster.create_deployment("sick", replicas=2, image="registry.example/sick:1")
    await rolled_out(cluster, "sick")
    # The running revision is broken already (its pods crash), so going back to it can never complete.
    cluster.apps.patch_namespaced_deployment(
        "sick", cluster.namespace, {"spec": {"template": {"metadata": {"labels": {"opsbus.io/chaos": "crashloop"}}}}}
    )
    prometheus.answer = answer(0.1)  # the fix's analysis fails at once
    request = request_event(
        cluster,
        "sick",
        strategy=Strategy.ROLLING,
        images={"app": "registry.example/sick:2"},
        progress_deadline_seconds=30,
        analysis=AnalysisSpec.model_validate({"metrics": [metric(0.95)]}),
    )
    await client_bus.publisher.publish(request)
    failed = (await deploy_events.wait(request.id, DeployFailed, timeout=60)).payload_as(DeployFailed)
    assert failed.reason is DeployFailureReason.ANALYSIS_FAILED and failed.rollback_pending
    stuck = await deploy_events.wait(request.id, DeployRollbackFailed, timeout=120)
    payload = stuck.payload_as(DeployRollbackFailed)
    assert payload.failure is DeployFailureReason.ANALYSIS_FAILED
    assert "rollback did not complete" in payload.message and payload.replicas is not None
    assert stuck.correlationid == request.id
    types = [e.type.split(".")[3] for e in deploy_events.for_request(request.id)]
    assert types[-1] == "rollback_failed" and types.count("rollback_failed") == 1
    assert not {"rolledback", "succeeded", "aborted"} & set(types)
    status = await call(client_bus.nc, "deployer", "status", RolloutSelector(request_id=request.id), RolloutView)
    assert status.state == "failed" and status.reason == "rollback_failed"


async def test_a_daemonset_request_is_refused_clearly_and_changes_nothing(
    cluster: Cluster, deployer: Deployer, client_bus: Bus, deploy_events: DeployEvents
) -> None:
    payload = DeployRequested(
        cluster=CLUSTER,
        workload=WorkloadRef(kind="DaemonSet", namespace=cluster.namespace, name="agent"),
        strategy=Strategy.ROLLING,
        images={"app": "registry.example/agent:2"},
        requester=REQUESTER,
    )
    request = Envelope.build(
        payload,
        service="gateway",
        cluster=CLUSTER,
        obj=ObjectRef(kind="StatefulSet", namespace=cluster.namespace, name="db"),
    )
    await client_bus.publisher.publish(request)
    failed = (await deploy_events.wait(request.id, DeployFailed, timeout=30)).payload_as(DeployFailed)
    assert failed.reason is DeployFailureReason.INVALID_REQUEST and not failed.rollback_pending
    assert "DaemonSet rollouts are not supported" in failed.message


async def test_a_crashing_canary_fails_its_step_analysis_on_restarts_and_is_removed(
    cluster: Cluster, deployer: Deployer, client_bus: Bus, deploy_events: DeployEvents
) -> None:
    cluster.create_deployment("cny", replicas=2, image="registry.example/cny:1")
    before = await rolled_out(cluster, "cny")
    spec = CanarySpec.model_validate(
        {"steps": [{"weight": 50, "analysis": {"metrics": [pod_check("restarts", "restarts", inconclusive_limit=2)]}}]}
    )
    request = request_event(
        cluster,
        "cny",
        strategy=Strategy.CANARY,
        manifest=crashing_manifest("cny", "registry.example/cny:2-crashes"),
        canary=spec,
    )
    await client_bus.publisher.publish(request)
    failed = (await deploy_events.wait(request.id, DeployFailed, timeout=120)).payload_as(DeployFailed)
    assert failed.reason is DeployFailureReason.ANALYSIS_FAILED, failed
    (result,) = failed.analysis
    assert result.metric == "restarts" and result.outcome is AnalysisOutcome.FAILED
    await deploy_events.wait(request.id, DeployRolledBack, timeout=60)
    assert cluster.deployment("cny").metadata.generation == before.metadata.generation  # stable never written
    assert image_of(cluster, "cny") == "registry.example/cny:1"


async def test_a_crashing_canary_fails_although_the_first_restarts_measurement_finds_no_pod_yet_in_one_trace(
    cluster: Cluster,
    deployer: Deployer,
    client_bus: Bus,
    deploy_events: DeployEvents,
    tracer_provider: TracerProvider,
    span_exporter: InMemorySpanExporter,
) -> None:
    """The restarts check as e2e scenario 2 writes it: no initial delay, no inconclusive measurement tolerated.

    Its first measurement comes before the canary has a pod (no data, inconclusive). That used to end the watch
    while the canary scaled up, so a crashing canary waited for its progress deadline (600 s) instead of failing.
    Every event of the rollout, though announced by the deployer's ticks, continues the request's trace (they
    carried no traceparent, so the notification of a failed rollout started a trace of its own).
    """
    cluster.create_deployment("cnz", replicas=2, image="registry.example/cnz:1")
    before = await rolled_out(cluster, "cnz")
    restarts = {
        "name": "restarts",
        "provider": {"kind": "kubernetes", "check": "restarts"},
        "success_condition": {"operator": "<", "threshold": 1},
        "interval_seconds": 2,
        "count": 3,
    }
    spec = CanarySpec.model_validate({"steps": [{"weight": 50, "analysis": {"metrics": [restarts]}}]})
    request = request_event(
        cluster,
        "cnz",
        strategy=Strategy.CANARY,
        manifest=crashing_manifest("cnz", "registry.example/cnz:2-crashes"),
        canary=spec,
        progress_deadline_seconds=600,  # the watch, not the deadline, must catch it
    )
    with tracer_provider.get_tracer("e2e-gateway").start_as_current_span("POST /v1/deployments") as requested:
        await client_bus.publisher.publish(request)
    trace_id = f"{requested.get_span_context().trace_id:032x}"
    failed = (await deploy_events.wait(request.id, DeployFailed, timeout=90)).payload_as(DeployFailed)
    assert failed.reason is DeployFailureReason.ANALYSIS_FAILED, failed
    (result,) = failed.analysis
    assert result.metric == "restarts" and result.outcome is AnalysisOutcome.FAILED
    assert all(m.value is not None and m.value >= 1 for m in result.measurements)
    await deploy_events.wait(request.id, DeployRolledBack, timeout=60)
    assert cluster.deployment("cnz").metadata.generation == before.metadata.generation
    assert image_of(cluster, "cnz") == "registry.example/cnz:1"
    announced = deploy_events.for_request(request.id)
    verbs = [e.verb for e in announced]
    assert verbs[0] == "started" and verbs[-2:] == ["failed", "rolledback"], verbs
    assert {(e.traceparent or "-").split("-")[1] for e in announced} == {trace_id}, [e.traceparent for e in announced]
    spans = {s.name for s in span_exporter.get_finished_spans() if f"{s.context.trace_id:032x}" == trace_id}
    assert {"deployer deploy.started", "deployer deploy.failed", "deployer deploy.rolledback"} <= spans, spans
