"""A fleet on this machine for tests: a hub nats-server and a leaf nats-server per cluster, 127.0.0.1 only.

Each server is a real process with its own port, store directory, stable `server_name` and JetStream domain,
configured by `opsbus.common.bus.fleet` as a deployment would be; the streams are provisioned the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext

from opsbus.common.bus.fleet import Server, ensure_fleet_streams, server_conf, streams_of
from opsbus.common.events import Envelope, ObjectRef
from opsbus.common.events.payloads import AlertAnnotations, AlertFired, AlertSource, Severity, WorkloadRef
from opsbus.common.testing.servers import NatsServer, free_port


@dataclass
class Fleet:
    hub: NatsServer
    leaves: dict[str, NatsServer]
    leaf_port: int
    clients: list[Client] = field(default_factory=list)

    async def connect(self, server: NatsServer) -> tuple[Client, JetStreamContext]:
        nc = await nats.connect(server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
        self.clients.append(nc)
        return nc, nc.jetstream()

    async def provision(self) -> None:
        """Every server's streams, leaves first (the hub's sources name them)."""
        for cluster, leaf in self.leaves.items():
            _, js = await self.connect(leaf)
            await ensure_fleet_streams(js, streams_of(Server(cluster=cluster)))
        _, js = await self.connect(self.hub)
        await ensure_fleet_streams(js, streams_of(Server(), list(self.leaves)))

    async def wait_linked(self, timeout: float = 60.0) -> None:
        """Until the hub answers JetStream requests for every leaf's domain across the leaf links."""
        nc, _ = await self.connect(self.hub)
        async with asyncio.timeout(timeout):
            for cluster in self.leaves:
                remote = nc.jetstream(domain=cluster)
                while True:
                    try:
                        await remote.stream_info("ALERT")
                        break
                    except Exception:  # no route to the leaf yet: no responders or a timeout
                        await asyncio.sleep(0.2)

    async def close(self) -> None:
        for nc in self.clients:
            if not nc.is_closed:
                await nc.close()


def crash_alert(
    cluster: str, pod: str, *, workload: str | None = None, starts_at: datetime | None = None, ns: str = "payments"
) -> Envelope:
    """The watcher's `alert.fired` for a crash-looping pod of `cluster` (the same namespace name in every cluster)."""
    fired = AlertFired(
        fingerprint=uuid.uuid4().hex[:16],
        alertname="KubePodCrashLooping",
        severity=Severity.CRITICAL,
        labels={"alertname": "KubePodCrashLooping", "cluster": cluster, "namespace": ns, "pod": pod},
        annotations=AlertAnnotations(summary=f"crash loop {pod}"),
        starts_at=starts_at or datetime.now(UTC),
        source=AlertSource.WATCHER,
        workload=WorkloadRef(kind="Deployment", namespace=ns, name=workload) if workload else None,
    )
    return Envelope.build(fired, service="watcher", cluster=cluster, obj=ObjectRef(kind="Pod", namespace=ns, name=pod))


def _server(root: Path, name: str, conf: str, port: int) -> NatsServer:
    (root / name).mkdir()
    return NatsServer(port=port, store_dir=root / name / "js", log_path=root / name / "nats.log", config=conf)


@contextlib.contextmanager
def fleet(clusters: tuple[str, ...] = ("east", "west")) -> Iterator[Fleet]:
    with tempfile.TemporaryDirectory(prefix="opsbus-fleet-") as tmp:
        root = Path(tmp)
        leaf_port = free_port()
        hub_port = free_port()
        hub = _server(root, "hub", server_conf(Server(port=hub_port, leaf_port=leaf_port)), hub_port)
        leaves = {}
        for cluster in clusters:
            port = free_port()
            conf = server_conf(Server(cluster=cluster, port=port, hub_url=f"nats-leaf://127.0.0.1:{leaf_port}"))
            leaves[cluster] = _server(root, f"leaf-{cluster}", conf, port)
        started: list[NatsServer] = []
        try:
            for server in (hub, *leaves.values()):
                server.start()
                started.append(server)
            yield Fleet(hub=hub, leaves=leaves, leaf_port=leaf_port)
        finally:
            for server in started:
                server.stop()
