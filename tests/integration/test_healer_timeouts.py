"""Every Kubernetes API call of the healer carries a request timeout: an apiserver that accepts the connection
and never answers makes each call fail as a `TransientError` within its bound instead of holding a worker
thread, the recovery's lease and its consumer slot forever.

The apiserver here is a real TCP listener on 127.0.0.1 that accepts and never writes a byte (what a hung
apiserver or a black-holed proxy looks like to the client); the healer's real `KubeCluster` talks to it over
the kubernetes client's own HTTP stack. A call without `_request_timeout` would block past the test's bound.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes import client

from opsbus.common.errors import TransientError
from opsbus.common.events.payloads import ResourceRef, Severity, WorkloadRef
from opsbus.healer.cluster import KubeCluster
from opsbus.healer.domain.planning import AlertState
from opsbus.healer.settings import HealerSettings

pytestmark = pytest.mark.integration
TIMEOUT = 0.1
# urllib3 retries an idempotent request 3 times after a read timeout: 4 tries, plus thread and loop slack
BOUND = 4 * TIMEOUT + 2.0


@pytest.fixture
def silent_apiserver() -> Iterator[str]:
    """A listener that accepts every connection and never answers; closed (unblocking readers) at the end."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(2)
        for conn in held:
            conn.close()
        server.close()


def cluster_at(host: str) -> KubeCluster:
    conf = client.Configuration()
    conf.host = host
    return KubeCluster(client.ApiClient(conf), timeout=TIMEOUT)


def alert() -> AlertState:
    return AlertState(
        fingerprint="f1",
        alertname="KubePodCrashLooping",
        severity=Severity.WARNING,
        labels={"pod": "web-1", "namespace": "shop"},
        namespace="shop",
        event_time=datetime.now(UTC),
        firing=True,
        workload=WorkloadRef(kind="Deployment", name="web", namespace="shop"),
    )


POD = ResourceRef(kind="Pod", name="web-1", namespace="shop", api_version="v1")
NODE = ResourceRef(kind="Node", name="n1", api_version="v1")
DEPLOYMENT = ResourceRef(kind="Deployment", name="web", namespace="shop", api_version="apps/v1")
PENDING_POD = SimpleNamespace(metadata=SimpleNamespace(namespace="shop", name="web-1", uid="u1"))
CALLS: dict[str, Callable[[KubeCluster], Awaitable[Any]]] = {
    "snapshot pod": lambda k: k.snapshot(POD, alert()),
    "snapshot node": lambda k: k.snapshot(NODE, alert()),
    "snapshot deployment": lambda k: k.snapshot(DEPLOYMENT, alert()),
    "delete_pod": lambda k: k.delete_pod("shop", "web-1", "u1", "1", 0),
    "rollout_restart": lambda k: k.rollout_restart("shop", "web", "1", datetime.now(UTC)),
    "scale": lambda k: k.scale("shop", "web", "1", 3),
    "set_memory_limit": lambda k: k.set_memory_limit("shop", "web", "1", "app", 2**28),
    "cordon": lambda k: k.cordon("n1", "1"),
    "evictable_pods": lambda k: k.evictable_pods("n1"),
    "evict": lambda k: k.evict(PENDING_POD, 0),
    "failed_pods": lambda k: k.failed_pods("shop", "app=web"),
    "pod_replaced": lambda k: k.pod_replaced("shop", "web-1", "u1"),
    "workload_available": lambda k: k.workload_available("shop", "web"),
    "node_cordoned": lambda k: k.node_cordoned("n1"),
    "node_drained": lambda k: k.node_drained("n1"),
    "no_failed_pods": lambda k: k.no_failed_pods("shop", "app=web"),
}


@pytest.mark.parametrize("name", sorted(CALLS))
async def test_a_silent_apiserver_fails_every_call_transiently_within_its_timeout(
    silent_apiserver: str, name: str
) -> None:
    cluster = cluster_at(silent_apiserver)
    started = time.monotonic()
    try:
        with pytest.raises(TransientError, match=r"within 0\.1s"):
            await asyncio.wait_for(CALLS[name](cluster), timeout=BOUND)
    finally:
        cluster.close()
    assert time.monotonic() - started < BOUND


def test_the_timeout_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert HealerSettings().healer.request_timeout_seconds == 10.0
    monkeypatch.setenv("OPSBUS_HEALER__REQUEST_TIMEOUT_SECONDS", "2.5")
    seconds = HealerSettings().healer.request_timeout_seconds
    assert seconds == 2.5
    assert KubeCluster(client.ApiClient(), timeout=seconds).timeout == 2.5
