"""An abort or a promote and its audit entry are one transaction (issue 28): the deployer records the entry of
the caller the gateway names in the transaction that records the command. The failure is injected in
PostgreSQL (a trigger on the deployer's outbox refuses `audit.recorded` rows, as in
tests/integration/test_atomic_audit.py): the call fails and the rollout carries no command; the same call
then succeeds with its one entry, and the abort is carried out.

Against the real deployer (its wiring and endpoints), NATS JetStream, PostgreSQL and the sandbox apiserver.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from opsbus.common.api.calling import Caller
from opsbus.common.bus import Bus
from opsbus.common.events.payloads.common import Actor, ActorKind
from opsbus.common.events.payloads.deploy import DeployAborted, DeployStarted, Strategy
from opsbus.common.rpc import RpcError, call
from opsbus.common.settings import DatabaseSettings
from opsbus.common.store import Database
from opsbus.deployer.api import CommandRequest, RolloutSelector, RolloutView
from opsbus.deployer.service import Deployer
from opsbus.deployer.store import SCHEMA, TABLES, Rollout
from tests.cluster.kube import Cluster
from tests.cluster.test_deployer_rollouts import (
    DeployEvents,
    client_bus,
    crashing_manifest,
    deploy_events,
    deployer,
    prometheus,
    request_event,
    rolled_out,
    settings,
)
from tests.integration.test_atomic_audit import audit_refused, outbox_audits

pytestmark = pytest.mark.cluster
__all__ = ["client_bus", "deploy_events", "deployer", "prometheus", "settings"]  # fixtures


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database.from_settings(DatabaseSettings.model_validate({"url": database_url, "pool_size": 2}))
    yield database
    await database.close()


async def test_an_abort_whose_audit_fails_is_not_recorded(
    cluster: Cluster, deployer: Deployer, client_bus: Bus, deploy_events: DeployEvents, db: Database
) -> None:
    cluster.create_deployment("pay", replicas=1, image="registry.example/pay:1.0")
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
    operator = Actor(kind=ActorKind.APIKEY, id="key-ops-1")
    command = CommandRequest(
        rollout=RolloutSelector(request_id=request.id),
        actor=operator,
        reason="wrong build",
        caller=Caller(actor=operator, request_id="req-abort-1"),
    )

    async with audit_refused(db, SCHEMA):
        with pytest.raises(RpcError) as failed:
            await call(client_bus.nc, "deployer", "abort", command, RolloutView)
    assert failed.value.code >= 500
    async with db.sessions() as s:
        row = (await s.execute(select(Rollout).where(Rollout.request_id == request.id))).scalar_one()
    assert row.state == "running" and row.command is None
    assert await outbox_audits(db, TABLES.outbox, "deploy.abort") == []

    answer = await call(client_bus.nc, "deployer", "abort", command, RolloutView)
    assert answer.state == "running"
    [entry] = await outbox_audits(db, TABLES.outbox, "deploy.abort")
    assert entry["actor"]["id"] == "key-ops-1" and entry["request_id"] == "req-abort-1"
    assert entry["reason"] == "wrong build"
    assert entry["target"]["namespace"] == cluster.namespace and entry["target"]["name"] == "pay"
    assert entry["details"] == {"request_id": request.id, "state": "running"}
    aborted = (await deploy_events.wait(request.id, DeployAborted, timeout=60)).payload_as(DeployAborted)
    assert aborted.aborted_by == operator
