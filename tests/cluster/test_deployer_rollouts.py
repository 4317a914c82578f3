"""The deployer against the sandbox apiserver, a real nats-server and a real PostgreSQL.

A `deploy.requested` published on the bus must end in exactly one terminal event carrying the request's
correlation id; a bad release (pods that crash) must fail on the kube-controller-manager's own
ProgressDeadlineExceeded and be rolled back automatically, leaving the old template in the apiserver; an
analysis whose Prometheus answers no data must not pass. Prometheus is a tiny real HTTP server on 127.0.0.1
that answers `/api/v1/query` with what the test chooses.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry

from opsbus.common.bus import Bus
from opsbus.common.events import Envelope, ObjectRef
from opsbus.common.events.payloads.common import Actor, ActorKind, WorkloadRef
from opsbus.common.events.payloads.deploy import (
    AnalysisSpec,
    DeployAborted,
    DeployFailed,
    DeployFailureReason,
    DeployPhase,
    DeployProgressed,
    DeployRequested,
    DeployRolledBack,
    DeployStarted,
    DeploySucceeded,
    DeploySuperseded,
    Strategy,
)
from opsbus.common.rpc import RpcError, call
from opsbus.common.settings import DatabaseSettings, NatsSettings
from opsbus.common.store import upgrade
from opsbus.deployer.api import CommandRequest, HistoryRequest, HistoryResponse, RolloutSelector, RolloutView
from opsbus.deployer.service import Deployer, start
from opsbus.deployer.settings import DeployerOptions, DeployerSettings
from opsbus.deployer.store import MIGRATIONS, SCHEMA
from tests.cluster.kube import Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.integration]

MakeBus = Callable[..., Awaitable[Bus]]
CLUSTER = "sandbox"
REQUESTER = Actor(kind=ActorKind.USER, id="test")


# --- a real HTTP Prometheus stand-in --------------------------------------------------------------------


class FakePrometheus:
    """Answers GET /api/v1/query with `self.answer` (a JSON body and status); records the queries it got."""

    def __init__(self) -> None:
        self.answer: tuple[int, dict[str, Any]] = (
            200,
            {"status": "success", "data": {"resultType": "vector", "result": []}},
        )
        self.queries: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                from urllib.parse import parse_qs, urlparse  # noqa: PLC0415

                url = urlparse(self.path)
                fake.queries.append(parse_qs(url.query).get("query", [""])[0])
                status, body = fake.answer if url.path == "/api/v1/query" else (404, {"status": "error"})
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakePrometheus:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def prometheus() -> Iterator[FakePrometheus]:
    with FakePrometheus() as fake:
        yield fake


# --- the deployer, and what it says on the bus ----------------------------------------------------------


class DeployEvents:
    """Every deploy.* event of one namespace, as a team subscribed to `deploy.*.sandbox.<ns>` sees them."""

    def __init__(self) -> None:
        self.events: list[Envelope] = []

    async def on_message(self, msg: Any) -> None:
        self.events.append(Envelope.from_json(msg.data))

    def for_request(self, request_id: str) -> list[Envelope]:
        return [e for e in self.events if getattr(e.payload(), "request_id", None) == request_id]

    async def wait(self, request_id: str, kind: type[Any], timeout: float) -> Envelope:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in self.for_request(request_id):
                if isinstance(event.payload(), kind):
                    return event
            await asyncio.sleep(0.2)
        seen = [(e.type, getattr(e.payload(), "message", "")) for e in self.for_request(request_id)]
        pytest.fail(f"no {kind.__name__} for {request_id} within {timeout:.0f}s; saw {seen}")


@pytest.fixture
async def settings(cluster: Cluster, nats_url: str, database_url: str, prometheus: FakePrometheus) -> DeployerSettings:
    settings = DeployerSettings(
        cluster=CLUSTER,
        nats=NatsSettings(url=nats_url),
        database=DatabaseSettings(url=database_url),
        deployer=DeployerOptions(kubeconfig=str(cluster.kubeconfig), tick_seconds=0.5, prometheus_url=prometheus.url),
        shutdown_grace_seconds=5,
    )
    await upgrade(settings.database, MIGRATIONS, SCHEMA)
    return settings


@pytest.fixture
async def deployer(
    settings: DeployerSettings, registry: CollectorRegistry, tracer_provider: TracerProvider
) -> AsyncIterator[Deployer]:
    deployer = await start(settings, registry=registry, tracer_provider=tracer_provider, instance="deployer-test")
    try:
        yield deployer
    finally:
        await deployer.close()


@pytest.fixture
async def client_bus(make_bus: MakeBus) -> Bus:
    return await make_bus("tester", registry_=CollectorRegistry())


@pytest.fixture
async def deploy_events(client_bus: Bus, cluster: Cluster) -> AsyncIterator[DeployEvents]:
    events = DeployEvents()
    sub = await client_bus.nc.subscribe(f"deploy.*.{CLUSTER}.{cluster.namespace}", cb=events.on_message)
    yield events
    await sub.unsubscribe()


def request_event(cluster: Cluster, name: str, **fields: Any) -> Envelope:
    payload = DeployRequested(
        cluster=CLUSTER,
        workload=WorkloadRef(kind="Deployment", namespace=cluster.namespace, name=name),
        requester=REQUESTER,
        **fields,
    )
    return Envelope.build(
        payload,
        service="gateway",
        cluster=CLUSTER,
        obj=ObjectRef(kind="Deployment", namespace=cluster.namespace, name=name),
    )


async def rolled_out(cluster: Cluster, name: str, timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = await asyncio.to_thread(cluster.rollout_complete, name)
        if found:
            return found
        await asyncio.sleep(0.5)
    pytest.fail(f"deployment {name} did not roll out within {timeout}s: {cluster.describe_pods(name)}")


def image_of(cluster: Cluster, name: str) -> str:
    return str(cluster.deployment(name).spec.template.spec.containers[0].image)


# --- tests ----------------------------------------------------------------------------------------------


async def test_rolling_update_requested_on_the_bus_succeeds_with_the_correlation_id(
    cluster: Cluster, deployer: Deployer, client_bus: Bus, deploy_events: DeployEvents
) -> None:
    cluster.create_deployment("web", replicas=3, image="registry.example/web:1.0")
    await rolled_out(cluster, "web")

    request = request_event(cluster, "web", strategy=Strategy.ROLLING, images={"app": "registry.example/web:2.0"})
    began = time.monotonic()
    await client_bus.publisher.publish(request)
    done = await deploy_events.wait(request.id, DeploySucceeded, timeout=120)
    took = time.monotonic() - began

    types = [e.type.split(".")[3] for e in deploy_events.for_request(request.id)]
    assert types[0] == "started"
    assert types.count("succeeded") == 1 and types[-1] == "succeeded"
    assert all(e.correlationid == request.id for e in deploy_events.for_request(request.id))
    assert done.causationid == request.id
    succeeded = done.payload_as(DeploySucceeded)
    assert succeeded.replicas is not None and succeeded.replicas.available == 3
    assert succeeded.revision == 2

    d = await rolled_out(cluster, "web", timeout=5)
    assert d.spec.template.spec.containers[0].image == "registry.example/web:2.0"
    assert d.metadata.annotations["opsbus.io/rollout-id"] == succeeded.deployment_id

    status = await call(client_bus.nc, "deployer", "status", RolloutSelector(request_id=request.id), RolloutView)
    assert status.state == "succeeded" and status.revision == 2
    history = await call(
        client_bus.nc,
        "deployer",
        "history",
        HistoryRequest(workload=WorkloadRef(kind="Deployment", namespace=cluster.namespace, name="web")),
        HistoryResponse,
    )
    assert [r.outcome for r in history.revisions] == ["good"]
    assert history.revisions[0].images == {"app": "registry.example/web:2.0"}
    print(f"\nrolling update of 3 replicas: request -> deploy.succeeded in {took:.1f}s")


async def test_bad_release_fails_on_the_progress_deadline_and_rolls_back_by_itself(
    cluster: Cluster, deployer: Deployer, client_bus: Bus, deploy_events: DeployEvents
) -> None:
    cluster.create_deployment("api", replicas=2, image="registry.example/api:1.0")
    await rolled_out(cluster, "api")
    bad_template = {
        "metadata": {"labels": {"app": "api", "opsbus.io/chaos": "crashloop"}},
        "spec": {"containers": [{"name": "app", "image": "registry.example/api:1.1-broken"}]},
    }
    manifest = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "api"},
        "spec": {"template": bad_template},
    }
    request = request_event(cluster, "api", strategy=Strategy.ROLLING, manifest=manifest, progress_deadline_seconds=30)
    began = time.monotonic()
    await client_bus.publisher.publish(request)

    failed_event = await deploy_events.wait(request.id, DeployFailed, timeout=120)
    failed_after = time.monotonic() - began
    failed = failed_event.payload_as(DeployFailed)
    assert failed.reason is DeployFailureReason.PROGRESS_DEADLINE_EXCEEDED
    assert failed.rollback_pending
    assert "ProgressDeadlineExceeded" in failed.message  # the controller's own condition, not only our clock

    rolled_event = await deploy_events.wait(request.id, DeployRolledBack, timeout=120)
    rolled_after = time.monotonic() - began
    rolled = rolled_event.payload_as(DeployRolledBack)
    assert rolled.automatic
    assert rolled.from_revision == 2 and rolled.to_revision == 3  # the controller renumbers revision 1 as 3
    assert rolled_event.correlationid == request.id

    d = await rolled_out(cluster, "api", timeout=30)
    assert d.spec.template.spec.containers[0].image == "registry.example/api:1.0"
    assert "opsbus.io/chaos" not in (d.spec.template.metadata.labels or {})
    types = [e.type.split(".")[3] for e in deploy_events.for_request(request.id)]
    assert types.count("failed") == 1 and types.count("rolledback") == 1 and "succeeded" not in types
    status = await call(client_bus.nc, "deployer", "status", RolloutSelector(request_id=request.id), RolloutView)
    assert status.state == "rolledback" and status.reason == "progress_deadline_exceeded"
    print(
        f"\nbad release: deploy.failed after {failed_after:.1f}s (deadline 30s), "
        f"deploy.rolledback after {rolled_after:.1f}s"
    )


async def test_analysis_whose_provider_returns_no_data_does_not_pass(
    cluster: Cluster, deployer: Deployer, client_bus: Bus, deploy_events: DeployEvents, prometheus: FakePrometheus
) -> None:
    cluster.create_deployment("shop", replicas=2, image="registry.example/shop:1.0")
    await rolled_out(cluster, "shop")
    analysis = AnalysisSpec.model_validate(
        {
            "metrics": [
                {
                    "name": "success-rate",
                    "provider": {"query": 'sum(rate(http_requests_total{code!~"5.."}[1m]))'},
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

    failed = (await deploy_events.wait(request.id, DeployFailed, timeout=90)).payload_as(DeployFailed)
    assert failed.reason is DeployFailureReason.ANALYSIS_INCONCLUSIVE
    assert failed.analysis[0].inconclusive >= 1 and failed.analysis[0].successful == 0
    assert "no data" in failed.message
    await deploy_events.wait(request.id, DeployRolledBack, timeout=90)
    assert prometheus.queries and prometheus.queries[0].startswith("sum(rate(http_requests_total")
    assert not any(isinstance(e.payload(), DeploySucceeded) for e in deploy_events.for_request(request.id))
    d = await rolled_out(cluster, "shop", timeout=30)
    assert d.spec.template.spec.containers[0].image == "registry.example/shop:1.0"


async def test_provider_error_does_not_pass_either_and_good_data_does(
    cluster: Cluster, deployer: Deployer, client_bus: Bus, deploy_events: DeployEvents, prometheus: FakePrometheus
) -> None:
    cluster.create_deployment("cart", replicas=1, image="registry.example/cart:1.0")
    await rolled_out(cluster, "cart")
    analysis = AnalysisSpec.model_validate(
        {
            "metrics": [
                {
                    "name": "success-rate",
                    "provider": {"query": "up"},
                    "success_condition": {"operator": ">=", "threshold": 0.95},
                    "interval_seconds": 1,
                    "count": 2,
                }
            ]
        }
    )
    prometheus.answer = (503, {"status": "error", "errorType": "unavailable", "error": "tsdb not ready"})
    broken = request_event(
        cluster, "cart", strategy=Strategy.ROLLING, images={"app": "registry.example/cart:2.0"}, analysis=analysis
    )
    await client_bus.publisher.publish(broken)
    failed = (await deploy_events.wait(broken.id, DeployFailed, timeout=90)).payload_as(DeployFailed)
    assert failed.reason is DeployFailureReason.ANALYSIS_INCONCLUSIVE
    assert "503" in failed.message
    await deploy_events.wait(broken.id, DeployRolledBack, timeout=90)

    prometheus.answer = (
        200,
        {"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}, "value": [0, "0.999"]}]}},
    )
    good = request_event(
        cluster, "cart", strategy=Strategy.ROLLING, images={"app": "registry.example/cart:3.0"}, analysis=analysis
    )
    await client_bus.publisher.publish(good)
    ok = (await deploy_events.wait(good.id, DeploySucceeded, timeout=90)).payload_as(DeploySucceeded)
    assert ok.analysis[0].successful == 2
    assert image_of(cluster, "cart") == "registry.example/cart:3.0"


async def test_three_requests_in_a_row_the_middle_one_is_superseded(
    cluster: Cluster, deployer: Deployer, client_bus: Bus, deploy_events: DeployEvents
) -> None:
    cluster.create_deployment("queue", replicas=2, image="registry.example/q:1")
    await rolled_out(cluster, "queue")
    first = request_event(cluster, "queue", strategy=Strategy.ROLLING, images={"app": "registry.example/q:2"})
    await client_bus.publisher.publish(first)
    await deploy_events.wait(first.id, DeployStarted, timeout=30)
    second = request_event(cluster, "queue", strategy=Strategy.ROLLING, images={"app": "registry.example/q:3"})
    third = request_event(cluster, "queue", strategy=Strategy.ROLLING, images={"app": "registry.example/q:4"})
    await client_bus.publisher.publish(second)
    await client_bus.publisher.publish(third)

    superseded = (await deploy_events.wait(second.id, DeploySuperseded, timeout=30)).payload_as(DeploySuperseded)
    assert superseded.superseded_by == third.id and not superseded.was_running
    await deploy_events.wait(first.id, DeploySucceeded, timeout=120)
    await deploy_events.wait(third.id, DeploySucceeded, timeout=120)
    assert [e.type.split(".")[3] for e in deploy_events.for_request(second.id)] == ["superseded"]
    assert image_of(cluster, "queue") == "registry.example/q:4"


def crashing_manifest(name: str, image: str) -> dict[str, Any]:
    template = {
        "metadata": {"labels": {"app": name, "opsbus.io/chaos": "crashloop"}},
        "spec": {"containers": [{"name": "app", "image": image}]},
    }
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": {"template": template}}


async def test_abort_of_a_running_rollout_puts_the_old_template_back(
    cluster: Cluster, deployer: Deployer, client_bus: Bus, deploy_events: DeployEvents
) -> None:
    cluster.create_deployment("pay", replicas=2, image="registry.example/pay:1.0")
    await rolled_out(cluster, "pay")
    request = request_event(
        cluster,
        "pay",
        strategy=Strategy.ROLLING,
        manifest=crashing_manifest("pay", "registry.example/pay:1.1"),
        progress_deadline_seconds=600,
    )
    await client_bus.publisher.publish(request)
    await deploy_events.wait(request.id, DeployStarted, timeout=30)
    operator = Actor(kind=ActorKind.USER, id="oncall@example.com")
    answer = await call(
        client_bus.nc,
        "deployer",
        "abort",
        CommandRequest(rollout=RolloutSelector(request_id=request.id), actor=operator, reason="wrong build"),
        RolloutView,
    )
    assert answer.state == "running"  # the abort is carried out at the rollout's next tick
    aborted = (await deploy_events.wait(request.id, DeployAborted, timeout=60)).payload_as(DeployAborted)
    assert aborted.aborted_by == operator and aborted.reason == "wrong build"
    d = await rolled_out(cluster, "pay", timeout=30)
    assert d.spec.template.spec.containers[0].image == "registry.example/pay:1.0"
    types = [e.type.split(".")[3] for e in deploy_events.for_request(request.id)]
    assert types[0] == "started" and types[-1] == "aborted"
    assert not {"failed", "succeeded", "rolledback"} & set(types)
    with pytest.raises(RpcError) as again:
        await call(
            client_bus.nc,
            "deployer",
            "abort",
            CommandRequest(rollout=RolloutSelector(request_id=request.id), actor=operator),
            RolloutView,
        )
    assert again.value.code == 409


async def test_inconclusive_analysis_with_pause_waits_for_promote(
    cluster: Cluster, deployer: Deployer, client_bus: Bus, deploy_events: DeployEvents
) -> None:
    cluster.create_deployment("ui", replicas=1, image="registry.example/ui:1")
    await rolled_out(cluster, "ui")
    analysis = AnalysisSpec.model_validate(
        {
            "metrics": [
                {
                    "name": "errors",
                    "provider": {"query": "sum(rate(errors[1m]))"},
                    "success_condition": {"operator": "<", "threshold": 1},
                    "interval_seconds": 1,
                    "count": 2,
                }
            ],
            "inconclusive": "pause",
        }
    )
    request = request_event(
        cluster, "ui", strategy=Strategy.ROLLING, images={"app": "registry.example/ui:2"}, analysis=analysis
    )
    await client_bus.publisher.publish(request)
    deadline = time.monotonic() + 60
    while not any(
        isinstance(p := e.payload(), DeployProgressed) and p.phase is DeployPhase.PAUSED
        for e in deploy_events.for_request(request.id)
    ):
        assert time.monotonic() < deadline, "never paused"
        await asyncio.sleep(0.2)
    await asyncio.sleep(2)  # paused means paused: no terminal event while nobody decides
    assert not any(
        isinstance(e.payload(), DeploySucceeded | DeployFailed) for e in deploy_events.for_request(request.id)
    )
    operator = Actor(kind=ActorKind.USER, id="oncall@example.com")
    await call(
        client_bus.nc,
        "deployer",
        "promote",
        CommandRequest(rollout=RolloutSelector(request_id=request.id), actor=operator, reason="metrics not wired yet"),
        RolloutView,
    )
    await deploy_events.wait(request.id, DeploySucceeded, timeout=30)
    assert image_of(cluster, "ui") == "registry.example/ui:2"


async def test_deployer_stopped_mid_rollout_is_resumed_by_another_replica_with_one_terminal_outcome(
    cluster: Cluster, settings: DeployerSettings, client_bus: Bus, deploy_events: DeployEvents
) -> None:
    cluster.create_deployment("svc", replicas=2, image="registry.example/svc:1.0")
    await rolled_out(cluster, "svc")
    first = await start(settings, registry=CollectorRegistry(), instance="deployer-a")
    request = request_event(
        cluster,
        "svc",
        strategy=Strategy.ROLLING,
        manifest=crashing_manifest("svc", "registry.example/svc:1.1"),
        progress_deadline_seconds=30,
    )
    try:
        await client_bus.publisher.publish(request)
        await deploy_events.wait(request.id, DeployStarted, timeout=30)
    finally:
        await first.close()  # mid-rollout: the new pods crash, nothing terminal yet
    assert not any(isinstance(e.payload(), DeployFailed) for e in deploy_events.for_request(request.id))
    second = await start(settings, registry=CollectorRegistry(), instance="deployer-b")
    try:
        await deploy_events.wait(request.id, DeployRolledBack, timeout=120)
        await asyncio.sleep(1)
    finally:
        await second.close()
    types = [e.type.split(".")[3] for e in deploy_events.for_request(request.id)]
    assert types.count("started") == 1 and types.count("failed") == 1 and types.count("rolledback") == 1, types
    assert image_of(cluster, "svc") == "registry.example/svc:1.0"


async def test_rollback_request_returns_to_the_previous_revision_and_a_missing_revision_is_refused(
    cluster: Cluster, deployer: Deployer, client_bus: Bus, deploy_events: DeployEvents
) -> None:
    cluster.create_deployment("back", replicas=2, image="registry.example/back:1")
    await rolled_out(cluster, "back")
    update = request_event(cluster, "back", strategy=Strategy.ROLLING, images={"app": "registry.example/back:2"})
    await client_bus.publisher.publish(update)
    await deploy_events.wait(update.id, DeploySucceeded, timeout=60)

    healer = Actor(kind=ActorKind.SERVICE, id="healer")
    rollback = Envelope.build(
        DeployRequested(
            cluster=CLUSTER,
            workload=WorkloadRef(kind="Deployment", namespace=cluster.namespace, name="back"),
            strategy=Strategy.ROLLBACK,
            requester=healer,
            reason="KubePodCrashLooping after release 2",
        ),
        service="healer",
        cluster=CLUSTER,
        obj=ObjectRef(kind="Deployment", namespace=cluster.namespace, name="back"),
    )
    await client_bus.publisher.publish(rollback)
    rolled = (await deploy_events.wait(rollback.id, DeployRolledBack, timeout=60)).payload_as(DeployRolledBack)
    assert not rolled.automatic
    assert rolled.from_revision == 2 and rolled.to_revision == 3  # revision 1's template, renumbered
    assert image_of(cluster, "back") == "registry.example/back:1"

    missing = request_event(cluster, "back", strategy=Strategy.ROLLBACK, to_revision=9)
    await client_bus.publisher.publish(missing)
    refused = (await deploy_events.wait(missing.id, DeployFailed, timeout=30)).payload_as(DeployFailed)
    assert refused.reason is DeployFailureReason.REVISION_NOT_FOUND
    assert "no revision 9" in refused.message and "2, 3" in refused.message
    assert image_of(cluster, "back") == "registry.example/back:1"


async def test_recreate_replaces_every_pod_and_succeeds(
    cluster: Cluster, deployer: Deployer, client_bus: Bus, deploy_events: DeployEvents
) -> None:
    cluster.create_deployment("batch", replicas=2, image="registry.example/batch:1")
    await rolled_out(cluster, "batch")
    request = request_event(cluster, "batch", strategy=Strategy.RECREATE, images={"app": "registry.example/batch:2"})
    await client_bus.publisher.publish(request)
    await deploy_events.wait(request.id, DeploySucceeded, timeout=60)
    d = cluster.deployment("batch")
    assert d.spec.strategy.type == "Recreate"
    assert d.spec.template.spec.containers[0].image == "registry.example/batch:2"


async def test_request_timeout_is_a_terminal_event_and_rolls_back(
    cluster: Cluster, deployer: Deployer, client_bus: Bus, deploy_events: DeployEvents
) -> None:
    cluster.create_deployment("slow", replicas=2, image="registry.example/slow:1")
    await rolled_out(cluster, "slow")
    request = request_event(
        cluster,
        "slow",
        strategy=Strategy.ROLLING,
        manifest=crashing_manifest("slow", "registry.example/slow:2"),
        progress_deadline_seconds=600,  # the rollout would sit for 10 minutes; the request allows 60 s
        timeout_seconds=60,
    )
    began = time.monotonic()
    await client_bus.publisher.publish(request)
    failed = (await deploy_events.wait(request.id, DeployFailed, timeout=90)).payload_as(DeployFailed)
    assert failed.reason is DeployFailureReason.TIMEOUT and failed.rollback_pending
    assert 59 <= time.monotonic() - began < 75
    await deploy_events.wait(request.id, DeployRolledBack, timeout=60)
    assert image_of(cluster, "slow") == "registry.example/slow:1"
