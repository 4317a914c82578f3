"""Deployer analyses against a real Prometheus (Debian's prometheus package) on the sandbox.

The same deployer fixtures as tests/cluster/test_deployer_rollouts.py, with their `prometheus` fixture replaced
by a real server scraping an in-process exporter every second (opsbus.common.testing.prometheus). The test
drives request counters on the exporter like a service under traffic; the deployer's analysis queries are
PromQL that the real server evaluates: a healthy success rate promotes a canary, a bad one aborts it, and a
query that matches nothing, or a ratio with no traffic (0/0 = NaN), never passes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client import Counter

from opsbus.common.bus import Bus
from opsbus.common.events.payloads.deploy import (
    AnalysisOutcome,
    AnalysisSpec,
    CanarySpec,
    DeployFailed,
    DeployFailureReason,
    DeployRolledBack,
    DeploySucceeded,
    Strategy,
)
from opsbus.common.testing.prometheus import Exporter, PrometheusServer
from opsbus.deployer.service import Deployer
from tests.cluster.kube import Cluster
from tests.cluster.test_deployer_canary import canary_pods, deployment_names
from tests.cluster.test_deployer_rollouts import (
    DeployEvents,
    client_bus,
    deploy_events,
    deployer,
    image_of,
    request_event,
    rolled_out,
    settings,
)

pytestmark = [pytest.mark.cluster, pytest.mark.integration]
__all__ = ["client_bus", "deploy_events", "deployer", "settings"]  # fixtures shared with rollouts

SUCCESS_RATE = (
    'sum(rate(http_requests_total{{app="{app}",code!~"5.."}}[10s]))'
    ' / sum(rate(http_requests_total{{app="{app}"}}[10s]))'
)


@pytest.fixture
def prometheus(prometheus_server: PrometheusServer) -> PrometheusServer:
    """The rollouts' `settings` fixture reads `prometheus.url`: here the real server's."""
    return prometheus_server


@pytest.fixture
def http_requests(prometheus_exporter: Exporter) -> Counter:
    return Counter("http_requests", "Requests served", ["app", "code"], registry=prometheus_exporter.registry)


@contextlib.asynccontextmanager
async def traffic(requests: Counter, app: str, *, ok: int, errors: int) -> AsyncIterator[None]:
    """Requests served every 0.25 s (`ok` 200s and `errors` 500s each time) while the context is open."""
    requests.labels(app, "200").inc(0)
    requests.labels(app, "500").inc(0)

    async def serve() -> None:
        while True:
            requests.labels(app, "200").inc(ok)
            requests.labels(app, "500").inc(errors)
            await asyncio.sleep(0.25)

    task = asyncio.create_task(serve(), name=f"traffic-{app}")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def value(result: list[dict[str, Any]]) -> float:
    return float(result[0]["value"][1]) if len(result) == 1 else float("nan")


def success_rate_metric(app: str, threshold: float) -> dict[str, Any]:
    return {
        "name": "success-rate",
        "provider": {"query": SUCCESS_RATE.format(app=app)},
        "success_condition": {"operator": ">=", "threshold": threshold},
        "interval_seconds": 1,
        "count": 3,
    }


async def test_canary_whose_success_rate_in_prometheus_holds_is_promoted(
    cluster: Cluster,
    deployer: Deployer,
    client_bus: Bus,
    deploy_events: DeployEvents,
    prometheus: PrometheusServer,
    http_requests: Counter,
) -> None:
    cluster.create_deployment("web", replicas=2, image="registry.example/web:1")
    await rolled_out(cluster, "web")
    async with traffic(http_requests, "web", ok=99, errors=1):
        rate = await prometheus.until(SUCCESS_RATE.format(app="web"), lambda r: 0.95 <= value(r) <= 1, timeout=30)
        spec = CanarySpec.model_validate(
            {"steps": [{"weight": 50, "analysis": {"metrics": [success_rate_metric("web", 0.95)]}}]}
        )
        request = request_event(
            cluster, "web", strategy=Strategy.CANARY, images={"app": "registry.example/web:2"}, canary=spec
        )
        await client_bus.publisher.publish(request)
        done = (await deploy_events.wait(request.id, DeploySucceeded, timeout=120)).payload_as(DeploySucceeded)

    (analysis,) = done.analysis
    assert analysis.outcome is AnalysisOutcome.SUCCESSFUL and analysis.successful == 3
    measured = [m.value for m in analysis.measurements]
    assert all(v is not None and 0.95 <= v <= 1 for v in measured), measured  # what the real server computed
    print(f"\nsuccess rate in prometheus before the request {value(rate):.3f}; measured {measured}")
    await rolled_out(cluster, "web", timeout=60)
    assert image_of(cluster, "web") == "registry.example/web:2"
    assert deployment_names(cluster) == ["web"]  # the canary Deployment is gone after promotion


async def test_canary_whose_success_rate_in_prometheus_is_too_low_is_aborted_and_rolled_back(
    cluster: Cluster,
    deployer: Deployer,
    client_bus: Bus,
    deploy_events: DeployEvents,
    prometheus: PrometheusServer,
    http_requests: Counter,
) -> None:
    cluster.create_deployment("api", replicas=2, image="registry.example/api:1")
    before = await rolled_out(cluster, "api")
    async with traffic(http_requests, "api", ok=6, errors=4):
        await prometheus.until(SUCCESS_RATE.format(app="api"), lambda r: 0.5 <= value(r) <= 0.7, timeout=30)
        spec = CanarySpec.model_validate(
            {"steps": [{"weight": 50, "analysis": {"metrics": [success_rate_metric("api", 0.95)]}}]}
        )
        request = request_event(
            cluster, "api", strategy=Strategy.CANARY, images={"app": "registry.example/api:2"}, canary=spec
        )
        await client_bus.publisher.publish(request)
        failed = (await deploy_events.wait(request.id, DeployFailed, timeout=120)).payload_as(DeployFailed)
        rolled = (await deploy_events.wait(request.id, DeployRolledBack, timeout=60)).payload_as(DeployRolledBack)

    assert failed.reason is DeployFailureReason.ANALYSIS_FAILED and failed.failed_step == 1
    first = failed.analysis[0].measurements[0].value
    assert first is not None and 0.5 <= first <= 0.7, first  # 6 of 10 requests succeed
    assert rolled.automatic
    assert not any(isinstance(e.payload(), DeploySucceeded) for e in deploy_events.for_request(request.id))
    assert cluster.deployment("api").metadata.generation == before.metadata.generation  # stable never written
    assert image_of(cluster, "api") == "registry.example/api:1"
    for _ in range(60):
        if deployment_names(cluster) == ["api"] and not canary_pods(cluster, "api"):
            break
        await asyncio.sleep(0.5)
    assert deployment_names(cluster) == ["api"] and not canary_pods(cluster, "api")


@pytest.mark.parametrize(
    ("case", "query", "says"),
    [
        ("absent", 'sum(rate(http_requests_total{app="shop"}[10s]))', "no data"),
        ("no-traffic", SUCCESS_RATE.format(app="shop"), "nan"),  # counters that do not move: 0/0
    ],
)
async def test_analysis_whose_prometheus_query_has_no_usable_data_does_not_pass(
    cluster: Cluster,
    deployer: Deployer,
    client_bus: Bus,
    deploy_events: DeployEvents,
    prometheus: PrometheusServer,
    http_requests: Counter,
    case: str,
    query: str,
    says: str,
) -> None:
    cluster.create_deployment("shop", replicas=1, image="registry.example/shop:1.0")
    await rolled_out(cluster, "shop")
    if case == "no-traffic":
        http_requests.labels("shop", "200").inc(0)
        http_requests.labels("shop", "500").inc(0)
        answer = await prometheus.until(query, lambda r: len(r) == 1, timeout=30)
        assert str(answer[0]["value"][1]) == "NaN"  # the real server's answer to 0/0
    else:
        assert prometheus.query(query) == []
    analysis = AnalysisSpec.model_validate(
        {
            "metrics": [
                {
                    "name": "success-rate",
                    "provider": {"query": query},
                    "success_condition": {"operator": ">=", "threshold": 0.95},
                    "interval_seconds": 1,
                    "count": 3,
                }
            ],
            "inconclusive": "fail",
        }
    )
    request = request_event(
        cluster, "shop", strategy=Strategy.ROLLING, images={"app": "registry.example/shop:2.0"}, analysis=analysis
    )
    await client_bus.publisher.publish(request)

    failed = (await deploy_events.wait(request.id, DeployFailed, timeout=120)).payload_as(DeployFailed)
    assert failed.reason is DeployFailureReason.ANALYSIS_INCONCLUSIVE
    assert failed.analysis[0].inconclusive >= 1 and failed.analysis[0].successful == 0
    assert says in failed.message.lower(), failed.message
    await deploy_events.wait(request.id, DeployRolledBack, timeout=90)
    assert not any(isinstance(e.payload(), DeploySucceeded) for e in deploy_events.for_request(request.id))
    d = await rolled_out(cluster, "shop", timeout=60)
    assert d.spec.template.spec.containers[0].image == "registry.example/shop:1.0"
