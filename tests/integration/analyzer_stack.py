"""The analyzer service wired for real (Runtime, PostgreSQL, NATS) with the cluster port replaced by
`NoCluster` (no apiserver in the integration tier) unless a kubeconfig is given (the cluster tier), and helpers to
build and read its events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest
from nats.js.errors import NotFoundError
from prometheus_client import CollectorRegistry

from opsbus.analyzer import store
from opsbus.analyzer.cluster import NoCluster
from opsbus.analyzer.executing import Analyzer
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
    FieldChange,
    LogExcerpt,
    Severity,
    WorkloadRef,
)
from opsbus.common.runtime import Runtime
from opsbus.common.settings import DatabaseSettings
from opsbus.common.store import upgrade
from opsbus.common.testing.fixtures import MakeBus

CLUSTER = "it"
NS = "shop"
WEB = WorkloadRef(kind="Deployment", namespace=NS, name="web")


@dataclass
class AnalyzerStack:
    database_url: str
    nats_url: str
    running: list[tuple[Runtime[AnalyzerSettings], asyncio.Task[int]]] = field(default_factory=list)

    async def start(
        self, *, cluster: str = CLUSTER, kubeconfig: str | None = None, options: dict[str, Any] | None = None
    ) -> Analyzer:
        """An analyzer replica; with `kubeconfig` it reads logs and workloads from that cluster (cluster tests);
        `options` adds analyzer settings (e.g. `prometheus_url`)."""
        settings = AnalyzerSettings(
            environment="test",
            cluster=cluster,
            instance=f"a{len(self.running)}",
            nats={"url": self.nats_url},
            database={"url": self.database_url, "pool_size": 4},
            http={"port": 0},
            shutdown_grace_seconds=5.0,
            analyzer={"read_cluster": kubeconfig is not None, "kubeconfig": kubeconfig, **(options or {})},
        )
        rt: Runtime[AnalyzerSettings] = Runtime("analyzer", settings, registry=CollectorRegistry())
        made: asyncio.Future[Analyzer] = asyncio.get_running_loop().create_future()

        async def wire(runtime: Runtime[AnalyzerSettings]) -> None:
            made.set_result(await setup(runtime, reader=None if kubeconfig else NoCluster()))

        task = asyncio.create_task(rt.run(wire, install_signals=False), name=f"analyzer-{settings.instance}")
        self.running.append((rt, task))
        waiting: list[asyncio.Future[Any]] = [made, task]
        done, _ = await asyncio.wait(waiting, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        if made not in done:
            raise RuntimeError(f"analyzer did not start: {task.exception() if task.done() else 'timeout'}")
        return made.result()

    async def stop_all(self) -> None:
        for rt, task in self.running:
            if not task.done():
                rt.request_shutdown()
                assert await task == 0


async def analyzer_stack(database_url: str, nats_url: str) -> AsyncIterator[AnalyzerStack]:
    await upgrade(DatabaseSettings.model_validate({"url": database_url}), store.MIGRATIONS, store.SCHEMA)
    stack = AnalyzerStack(database_url, nats_url)
    yield stack
    await stack.stop_all()


@pytest.fixture
async def stack(database_url: str, nats_url: str) -> AsyncIterator[AnalyzerStack]:
    """A migrated analyzer schema and a stack that stops every replica it started (integration tests)."""
    async for s in analyzer_stack(database_url, nats_url):
        yield s


@pytest.fixture
async def bus(make_bus: MakeBus) -> Bus:
    """A test client of the bus with the streams in place."""
    b = await make_bus("tests")
    await b.ensure_streams()
    return b


def change_event(at: datetime, *, name: str = "web", image: str = "shop/web:1.42", kinds: Any = None) -> Envelope:
    workload = WorkloadRef(kind="Deployment", namespace=NS, name=name)
    payload = ChangeRecorded(
        kinds=kinds or (ChangeKind.IMAGE,),
        object=workload.as_resource_ref(),
        workload=workload,
        diff=(FieldChange(path="spec.template.spec.containers[app].image", before=f"shop/{name}:1.41", after=image),),
        summary=f"image app: {name}:1.41 -> {image}",
        origin=ChangeOrigin.OBSERVED,
        observed_at=at,
    )
    return Envelope.build(payload, service="watcher", cluster=CLUSTER, obj=workload.as_object_ref(), time=at)


def alert_event(
    at: datetime, *, pod: str = "web-7d9f-a1", reason: str = "ImagePullBackOff", fingerprint: str = "a1b2c3d4e5f60718"
) -> Envelope:
    alertname = {"ImagePullBackOff": "KubePodImagePullFailing", "CrashLoopBackOff": "KubePodCrashLooping"}[reason]
    payload = AlertFired(
        fingerprint=fingerprint,
        alertname=alertname,
        severity=Severity.CRITICAL,
        labels={"alertname": alertname, "namespace": NS, "pod": pod, "container": "app", "node": "node-1"},
        annotations=AlertAnnotations(summary=f"{reason} in {pod}"),
        starts_at=at,
        source=AlertSource.WATCHER,
        workload=WEB,
        evidence=AlertEvidence(
            containers=(ContainerState(name="app", state="waiting", reason=reason),),
            logs=(LogExcerpt(container="app", lines=("fatal: config key db.url missing",)),)
            if reason == "CrashLoopBackOff"
            else (),
        ),
    )
    return Envelope.build(
        payload, service="watcher", cluster=CLUSTER, obj=ObjectRef(kind="Pod", namespace=NS, name=pod), time=at
    )


async def last_event(bus: Bus, stream: str, subject: str, *, timeout: float = 5.0) -> Envelope:
    """The last event on `subject`, waiting for one to arrive."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            msg = await bus.js.get_last_msg(stream, subject)
            return Envelope.from_json(msg.data or b"")
        except NotFoundError:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.02)


async def wait_recorded(stack: AnalyzerStack, *events: Envelope, timeout: float = 10.0) -> None:
    """Until the analyzer's timeline holds these changes (a watcher publishes a change before the fault it
    causes; the analyzer's consumers run independently, so a test publishing both at once must wait)."""
    from sqlalchemy import func, select  # noqa: PLC0415

    from opsbus.common.store import Database  # noqa: PLC0415

    db = Database.from_settings(DatabaseSettings.model_validate({"url": stack.database_url}))
    t = store.timeline
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        ids = [e.id for e in events]
        while True:
            async with db.sessions() as s:
                n = (await s.execute(select(func.count()).where(t.c.event_id.in_(ids)))).scalar_one()
            if n == len(ids):
                return
            if loop.time() > deadline:
                raise TimeoutError(f"the analyzer recorded {n} of {len(ids)} changes")
            await asyncio.sleep(0.02)
    finally:
        await db.close()
