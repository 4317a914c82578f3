"""The healer dying mid-recovery, and two replicas sharing the work, against the sandbox, real NATS
JetStream and real PostgreSQL.

Replicas run as real processes (`python -m opsbus.healer run`) so "killed" means SIGKILL: no shutdown hook
runs, the lease is not released, the in-flight message is not acknowledged. The proof each time is in the
cluster (how many times the Deployment's template changed), in the events (one `started`, one
`succeeded`) and in the healer's tables (one attempt).
"""

# ruff: noqa: F401, F811 - `start_healer` is the fixture imported from the shared healer harness below

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from opsbus.common.bus import Bus
from opsbus.common.events import Envelope, ObjectRef
from opsbus.common.events.payloads import AlertFired, AlertResolved
from opsbus.common.settings import DatabaseSettings
from opsbus.common.store import Database, upgrade
from opsbus.healer.cluster import RESTARTED_AT, KubeCluster
from opsbus.healer.domain.planning import Guards
from opsbus.healer.executing import Executor
from opsbus.healer.store import MIGRATIONS, SCHEMA
from tests.cluster.conftest import SandboxHandle
from tests.cluster.kube import Cluster, wait_until
from tests.cluster.test_healer_remediation import (
    CLUSTER,
    StartHealer,
    alert,
    envelope,
    start_healer,
    stream,
    types,
    wait_for_events,
)

pytestmark = pytest.mark.cluster
LEASE = 3.0
POLICIES = """
policies:
  - name: restart
    match: {alertname: RolloutStuck}
    cooldown: 10m
    ladder:
      - {action: rollout_restart, verify: alert_resolved, timeout: 180s}
"""

MakeBus = Callable[..., Awaitable[Bus]]


@dataclass
class Replica:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def replicas(
    database_url: str, nats_url: str, sandbox: SandboxHandle, tmp_path: Path
) -> Iterator[Callable[[str], Awaitable[Replica]]]:
    policy = tmp_path / "policies.yaml"
    policy.write_text(POLICIES)
    started: list[Replica] = []

    async def start(name: str) -> Replica:
        await upgrade(DatabaseSettings.model_validate({"url": database_url}), MIGRATIONS, SCHEMA)
        env = {
            **os.environ,
            "OPSBUS_CLUSTER": CLUSTER,
            "OPSBUS_INSTANCE": name,
            "OPSBUS_NATS__URL": nats_url,
            "OPSBUS_DATABASE__URL": database_url,
            "OPSBUS_HTTP__PORT": "0",
            "OPSBUS_SHUTDOWN_GRACE_SECONDS": "5",
            "OPSBUS_HEALER__POLICY_FILE": str(policy),
            "OPSBUS_HEALER__KUBECONFIG": str(sandbox.kubeconfig),
            "OPSBUS_HEALER__LEASE_SECONDS": str(LEASE),
        }
        log = tmp_path / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "opsbus.healer", "run"], env=env, stdout=out, stderr=subprocess.STDOUT
            )
        replica = Replica(name, proc, log)
        started.append(replica)
        deadline = time.monotonic() + 180  # a cold interpreter on a busy machine
        while "ready (instance" not in replica.output():
            assert proc.poll() is None, f"{name} exited {proc.returncode}:\n{replica.output()}"
            assert time.monotonic() < deadline, f"{name} not ready:\n{replica.output()}"
            await asyncio.sleep(0.2)
        return replica

    yield start
    for r in started:
        if r.proc.poll() is None:
            r.proc.send_signal(signal.SIGTERM)
            try:
                r.proc.wait(30)
            except subprocess.TimeoutExpired:
                r.proc.kill()
                r.proc.wait(10)


async def rows(database_url: str, sql: str) -> list[Any]:
    url = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(sql))
    finally:
        await conn.close()


async def until(what: str, check: Callable[[], Awaitable[Any]], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        if result := await check():
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


async def deployed(cluster: Cluster, app: str) -> Any:
    cluster.create_deployment(app, replicas=1)
    await asyncio.to_thread(wait_until, f"{app} running", lambda: cluster.running_pods(app, 1), 120)
    return await asyncio.to_thread(wait_until, f"{app} rolled out", lambda: cluster.rollout_complete(app), 60)


def stuck(cluster: Cluster, app: str) -> tuple[AlertFired, Envelope]:
    fired = alert("RolloutStuck", cluster.namespace, workload=app)
    obj = ObjectRef(kind="Deployment", namespace=cluster.namespace, name=app)
    return fired, envelope(fired, obj)


async def resolve(bus: Bus, cluster: Cluster, fired: AlertFired, app: str) -> None:
    resolved = AlertResolved(**fired.model_dump(exclude={"ends_at"}), ends_at=datetime.now(UTC), resolution="ok")
    obj = ObjectRef(kind="Deployment", namespace=cluster.namespace, name=app)
    await bus.publisher.publish(envelope(resolved, obj))


async def test_killing_the_replica_mid_verification_neither_repeats_nor_loses_the_action(
    cluster: Cluster,
    replicas: Callable[[str], Awaitable[Replica]],
    make_bus: MakeBus,
    database_url: str,
) -> None:
    before = await deployed(cluster, "web")
    a = await replicas("replica-a")
    b = await replicas("replica-b")
    bus = await make_bus("watcher")
    fired, event = stuck(cluster, "web")
    await bus.publisher.publish(event)

    # The action is applied and the holder waits for the alert to resolve: kill that replica.
    applied = await asyncio.to_thread(
        wait_until,
        "the restart applied",
        lambda: RESTARTED_AT in (cluster.deployment("web").spec.template.metadata.annotations or {}) or None,
        60,
    )
    assert applied
    (owner,) = await until(
        "a lease holder",
        lambda: rows(database_url, "select lease_owner from healer.recoveries where lease_owner is not null"),
        30,
    )
    holder, survivor = (a, b) if owner["lease_owner"].startswith("replica-a/") else (b, a)
    holder.proc.send_signal(signal.SIGKILL)
    holder.proc.wait(10)
    stamp = cluster.deployment("web").spec.template.metadata.annotations[RESTARTED_AT]

    # The survivor takes the lease over once it runs out and resumes the verification.
    await until(
        "the survivor holding the lease",
        lambda: rows(database_url, f"select 1 from healer.recoveries where lease_owner like '{survivor.name}/%'"),
        30,
    )
    await resolve(bus, cluster, fired, "web")
    recovery = await wait_for_events(bus, "recovery.>", lambda es: "succeeded" in types(es), 60)
    assert types(recovery) == ["planned", "started", "succeeded"]
    assert recovery[-1].data["verification"]["passed"] is True
    d = cluster.deployment("web")
    assert d.metadata.generation == before.metadata.generation + 1  # applied once, not again on resume
    assert d.spec.template.metadata.annotations[RESTARTED_AT] == stamp
    attempts = await rows(database_url, "select status from healer.attempts")
    assert [r["status"] for r in attempts] == ["succeeded"]
    assert "resuming step 1 after a restart" in survivor.output()


async def test_killed_after_the_plan_is_recorded_and_before_the_write_the_action_runs_once(
    cluster: Cluster, start_healer: StartHealer, make_bus: MakeBus, database_url: str, sandbox: SandboxHandle
) -> None:
    before = await deployed(cluster, "api")
    await upgrade(DatabaseSettings.model_validate({"url": database_url}), MIGRATIONS, SCHEMA)
    fired, event = stuck(cluster, "api")

    # Replica A: the real executor whose cluster write never returns (it dies right there).
    class DiesBeforeTheWrite(KubeCluster):
        async def rollout_restart(self, ns: str, name: str, rv: str | None, now: datetime) -> None:
            await asyncio.Event().wait()

    db = Database.from_settings(DatabaseSettings.model_validate({"url": database_url}), application_name="dying")
    dying = DiesBeforeTheWrite.from_kubeconfig(str(sandbox.kubeconfig))
    a = Executor(db=db, cluster=dying, guards=Guards(), cluster_name=CLUSTER, owner="replica-a/1", lease_seconds=LEASE)
    await a.load_policies(POLICIES, author="test")
    await a.on_alert_fired(event)  # the intake: the recovery walks in the background from here
    await until(
        "the attempt recorded as started",
        lambda: rows(database_url, "select 1 from healer.attempts where status = 'started'"),
        30,
    )
    await a.close()  # dead: its walk cancelled, no lease released, no event published (outbox rows wait)
    await db.close()
    await asyncio.to_thread(dying.close)
    assert cluster.deployment("api").metadata.generation == before.metadata.generation  # nothing written yet

    # Replica B (the real service) finds the orphan once the lease runs out and applies the planned write.
    await start_healer(policies=POLICIES, options={"lease_seconds": LEASE})
    bus = await make_bus("watcher")
    await asyncio.to_thread(
        wait_until,
        "the restart applied by the survivor",
        lambda: RESTARTED_AT in (cluster.deployment("api").spec.template.metadata.annotations or {}) or None,
        60,
    )
    await resolve(bus, cluster, fired, "api")
    recovery = await wait_for_events(bus, "recovery.>", lambda es: "succeeded" in types(es), 60)
    assert types(recovery) == ["planned", "started", "succeeded"]  # A's planned/started were not lost
    assert cluster.deployment("api").metadata.generation == before.metadata.generation + 1
    attempts = await rows(database_url, "select status from healer.attempts")
    assert [r["status"] for r in attempts] == ["succeeded"]


async def test_two_replicas_given_two_alerts_for_one_workload_act_once(
    cluster: Cluster,
    replicas: Callable[[str], Awaitable[Replica]],
    make_bus: MakeBus,
    database_url: str,
) -> None:
    before = await deployed(cluster, "pay")
    await replicas("replica-a")
    await replicas("replica-b")
    bus = await make_bus("watcher")
    # Two distinct alerts about the same workload (say the watcher and Alertmanager), at the same moment: one
    # incident (grouped under the planning lock, whichever replica takes each): one leads and acts, the other
    # joins it and waits, deferred with the incident, not dropped.
    _, e1 = stuck(cluster, "pay")
    _, e2 = stuck(cluster, "pay")
    await asyncio.gather(bus.publisher.publish(e1), bus.publisher.publish(e2))
    events = await wait_for_events(
        bus, "audit.recorded.>", lambda es: any(e.data["action"] == "recovery.group" for e in es), 60
    )
    (joined,) = [e.data for e in events if e.data["action"] == "recovery.group"]
    assert joined["outcome"] == "skipped" and "its lead acts for every alert of it" in joined["reason"], joined
    await asyncio.sleep(2)
    assert types(await stream(bus, "recovery.>")).count("started") == 1
    assert cluster.deployment("pay").metadata.generation == before.metadata.generation + 1
    recoveries = await until(
        "one recovery verifying, the other deferred",
        lambda: rows(
            database_url,
            "select id, status, incident_id, deferred_by from healer.recoveries where exists "
            "(select 1 from healer.recoveries where status = 'verifying') order by status",
        ),
        10,
    )
    assert [r["status"] for r in recoveries] == ["deferred", "verifying"]  # deferred, not dropped
    member, lead = recoveries
    assert (member["incident_id"], member["deferred_by"]) == (lead["id"], "incident")
    assert joined["details"]["incident"] == lead["id"]
