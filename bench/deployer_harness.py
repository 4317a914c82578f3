"""Shared parts of the deployer benchmarks: a private nats-server and PostgreSQL, the shared sandbox cluster (one
namespace of the bench's own, deleted afterwards), a running deployer, and a small Prometheus stand-in.

The sandbox's kubeconfig comes from `--kubeconfig`, else `OPSBUS_TEST_KUBECONFIG`, else `sandbox.sh env`. The
sandbox is never started or stopped here: start it with `bash deploy/sandbox/sandbox.sh up` first.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from kubernetes import client, config
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry

from opsbus.common.bus import Bus
from opsbus.common.events import Envelope, ObjectRef
from opsbus.common.events.payloads.common import Actor, ActorKind, WorkloadRef
from opsbus.common.events.payloads.deploy import DeployRequested
from opsbus.common.settings import DatabaseSettings, NatsSettings
from opsbus.common.store import upgrade
from opsbus.common.testing.servers import nats_server, postgres_server
from opsbus.deployer.service import Deployer, start
from opsbus.deployer.settings import DeployerOptions, DeployerSettings
from opsbus.deployer.store import MIGRATIONS, SCHEMA

CLUSTER = "bench"
SANDBOX = Path(__file__).resolve().parents[1] / "deploy" / "sandbox" / "sandbox.sh"
POLL_SECONDS = 0.1


def sandbox_kubeconfig(explicit: str | None) -> str:
    if explicit:
        return explicit
    if os.environ.get("OPSBUS_TEST_KUBECONFIG"):
        return os.environ["OPSBUS_TEST_KUBECONFIG"]
    out = subprocess.run(["bash", str(SANDBOX), "env"], capture_output=True, text=True, check=True, timeout=60).stdout
    for line in out.splitlines():
        if line.startswith("export KUBECONFIG="):
            return line.split("=", 1)[1].strip().strip("'\"")
    raise SystemExit("no sandbox kubeconfig: start it with `bash deploy/sandbox/sandbox.sh up` or pass --kubeconfig")


class FakePrometheus:
    """Answers every /api/v1/query with one value, `self.value` (None: no data)."""

    def __init__(self) -> None:
        self.value: float | None = 1.0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                result = [] if fake.value is None else [{"metric": {}, "value": [0, str(fake.value)]}]
                body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Namespace:
    apps: client.AppsV1Api
    core: client.CoreV1Api
    name: str

    def create_deployment(self, name: str, replicas: int, image: str) -> None:
        labels = {"app": name}
        body = client.V1Deployment(
            metadata=client.V1ObjectMeta(name=name, labels=labels),
            spec=client.V1DeploymentSpec(
                replicas=replicas,
                selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels),
                    spec=client.V1PodSpec(containers=[client.V1Container(name="app", image=image)]),
                ),
            ),
        )
        self.apps.create_namespaced_deployment(self.name, body)

    def complete(self, name: str) -> bool:
        """What `kubectl rollout status` waits for."""
        d: Any = self.apps.read_namespaced_deployment(name, self.name)
        s, want = d.status, d.spec.replicas
        return bool(
            s.observed_generation is not None
            and s.observed_generation >= d.metadata.generation
            and (s.updated_replicas or 0) == want
            and (s.replicas or 0) == want
            and (s.available_replicas or 0) == want
        )

    async def wait_complete(self, name: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while not await asyncio.to_thread(self.complete, name):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}/{name} did not roll out within {timeout:.0f}s")
            await asyncio.sleep(POLL_SECONDS)

    def image(self, name: str) -> str:
        d: Any = self.apps.read_namespaced_deployment(name, self.name)
        return str(d.spec.template.spec.containers[0].image)


@contextlib.contextmanager
def namespace(kubeconfig: str) -> Iterator[Namespace]:
    api = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    name = f"bench-deployer-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    try:
        deadline = time.monotonic() + 60
        while "default" not in {
            str(getattr(sa.metadata, "name", "")) for sa in core.list_namespaced_service_account(name).items
        }:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no default service account in {name}")
            time.sleep(0.2)
        yield Namespace(apps=apps, core=core, name=name)
    finally:
        core.delete_namespace(name, propagation_policy="Background")
        api.close()


@dataclass
class Outcomes:
    """deploy.* events by request id, with the monotonic time each arrived."""

    seen: dict[str, list[tuple[float, Envelope]]] = field(default_factory=dict)

    async def on_message(self, msg: Any) -> None:
        event = Envelope.from_json(msg.data)
        request_id = getattr(event.payload(), "request_id", None)
        if request_id:
            self.seen.setdefault(request_id, []).append((time.monotonic(), event))

    async def wait(self, request_id: str, kind: type[Any], timeout: float = 600) -> float:
        """Monotonic arrival time of the first `kind` event for `request_id`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for at, event in self.seen.get(request_id, []):
                if isinstance(event.payload(), kind):
                    return at
            await asyncio.sleep(0.02)
        types = [e.type for _, e in self.seen.get(request_id, [])]
        raise TimeoutError(f"no {kind.__name__} for {request_id} within {timeout:.0f}s; saw {types}")


@dataclass
class Harness:
    deployer: Deployer
    bus: Bus
    outcomes: Outcomes
    ns: Namespace
    prometheus: FakePrometheus

    async def publish(self, name: str, **fields: Any) -> tuple[str, float]:
        payload = DeployRequested(
            cluster=CLUSTER,
            workload=WorkloadRef(kind="Deployment", namespace=self.ns.name, name=name),
            requester=Actor(kind=ActorKind.USER, id="bench"),
            **fields,
        )
        event = Envelope.build(
            payload,
            service="bench",
            cluster=CLUSTER,
            obj=ObjectRef(kind="Deployment", namespace=self.ns.name, name=name),
        )
        began = time.monotonic()
        await self.bus.publisher.publish(event)
        return event.id, began


@contextlib.asynccontextmanager
async def harness(kubeconfig: str, *, tick_seconds: float) -> AsyncIterator[Harness]:
    prometheus = FakePrometheus()
    with nats_server() as nats, postgres_server() as pg, namespace(kubeconfig) as ns:
        settings = DeployerSettings(
            cluster=CLUSTER,
            nats=NatsSettings(url=nats.url),
            database=DatabaseSettings(url=pg.url()),
            deployer=DeployerOptions(kubeconfig=kubeconfig, tick_seconds=tick_seconds, prometheus_url=prometheus.url),
            shutdown_grace_seconds=5,
        )
        await upgrade(settings.database, MIGRATIONS, SCHEMA)
        deployer = await start(
            settings, registry=CollectorRegistry(), tracer_provider=TracerProvider(), instance="bench"
        )
        bus = await Bus.connect(NatsSettings(url=nats.url), service="bench", registry=CollectorRegistry())
        outcomes = Outcomes()
        sub = await bus.nc.subscribe(f"deploy.*.{CLUSTER}.{ns.name}", cb=outcomes.on_message)
        try:
            yield Harness(deployer=deployer, bus=bus, outcomes=outcomes, ns=ns, prometheus=prometheus)
        finally:
            await sub.unsubscribe()
            await bus.close()
            await deployer.close()
            prometheus.close()
