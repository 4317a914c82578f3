"""`/v1/recommendations` through the gateway to the real optimizer: both in-process through their real wiring,
on real NATS JetStream and PostgreSQL, the optimizer reading the sandbox apiserver and a Prometheus HTTP API
on 127.0.0.1 (eight days of an over-provisioned app's usage), as in tests/cluster/test_optimizer_rightsizing.py.

Shown: a namespace-scoped caller sees only its namespace's recommendations, cannot apply another tenant's
(404) and cannot apply as a viewer (403); dry-run changes nothing; apply patches the Deployment's requests, is
audited by the optimizer (`recommendation.apply`, naming the caller), and a second apply is 409. An apply whose
audit entry cannot be stored (a trigger on the optimizer's outbox refuses it) fails before anything is patched
and leaves the recommendation open (issue 28). Without the optimizer the gateway answers 503.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest

from opsbus.common.settings import DatabaseSettings
from opsbus.common.store import Database
from opsbus.optimizer import store as optimizer_store
from opsbus.optimizer.domain.planning import Action
from opsbus.optimizer.testing import FakePrometheus
from tests.cluster.conftest import api_client, cluster, sandbox
from tests.cluster.kube import Cluster
from tests.cluster.test_optimizer_rightsizing import (
    Start,
    create_deployment,
    idle,
    requests_of,
    running,
    start_optimizer,
)
from tests.integration.gateway_stack import GatewayStack, gateway_stack
from tests.integration.test_atomic_audit import audit_refused, outbox_audits

pytestmark = [pytest.mark.integration, pytest.mark.cluster]
__all__ = ["api_client", "cluster", "sandbox", "start_optimizer"]  # fixtures shared with the cluster tests


@pytest.fixture
async def stack(database_url: str, nats_url: str) -> AsyncIterator[GatewayStack]:
    async for s in gateway_stack(database_url, nats_url):
        yield s


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database.from_settings(DatabaseSettings.model_validate({"url": database_url, "pool_size": 2}))
    yield database
    await database.close()


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    return body


async def audited(stack: GatewayStack, token: str, action: str, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 15
    async with stack.client(token) as c:
        while True:
            entries = (await c.get("/v1/audit", params={"action": action})).json()["items"]
            if len(entries) >= count or time.monotonic() > deadline:
                return list(entries)
            await asyncio.sleep(0.1)


async def recommending(
    cluster: Cluster, start_optimizer: Start, stack: GatewayStack, exits: AsyncExitStack
) -> dict[str, str]:
    """An over-provisioned `web` with one open recommendation, the gateway started: the requests before."""
    create_deployment(cluster, "web", 2)
    series = await running(cluster, "web", 2)
    before, _ = requests_of(cluster, "web")
    await stack.start()
    prom = await exits.enter_async_context(FakePrometheus(idle, lambda: series).running())
    optimizer = await start_optimizer(cluster.namespace, prom.url, "recommend")
    assert [p.action for p in (await optimizer.cycle()).plans] == [Action.RECOMMEND]
    return before


async def test_scoped_list_apply_dry_run_and_conflict_against_the_real_optimizer(
    cluster: Cluster, start_optimizer: Start, stack: GatewayStack
) -> None:
    ns = cluster.namespace
    async with AsyncExitStack() as exits:
        before = await recommending(cluster, start_optimizer, stack, exits)
        admin = await stack.key("admin")
        viewer = await stack.key("viewer", namespaces=[ns])
        operator = await stack.key("operator", namespaces=[ns])
        stranger = await stack.key("operator", namespaces=["someone-else"])

        async with stack.client(viewer) as c:
            listed = await c.get("/v1/recommendations")
            assert listed.status_code == 200, listed.text
            (rec,) = listed.json()["recommendations"]
            assert rec["namespace"] == ns and rec["status"] == "open"
            assert rec["recommendation"]["workload"] == {"kind": "Deployment", "namespace": ns, "name": "web"}
            assert (await c.get("/v1/recommendations", params={"status": "applied"})).json()["recommendations"] == []
            problem(await c.post(f"/v1/recommendations/{rec['id']}/apply", json={}), 403)  # a viewer
        async with stack.client(stranger) as c:
            assert (await c.get("/v1/recommendations")).json() == {"recommendations": []}
            problem(await c.get("/v1/recommendations", params={"namespace": ns}), 403)
            problem(await c.post(f"/v1/recommendations/{rec['id']}/apply", json={}), 404)
        async with stack.client(operator) as c:
            problem(await c.post("/v1/recommendations/no-such-id/apply", json={}), 404)
            problem(await c.post(f"/v1/recommendations/{rec['id']}/apply", json={"dry_run": "maybe"}), 422)
            dry = await c.post(f"/v1/recommendations/{rec['id']}/apply", json={"dry_run": True})
            assert dry.status_code == 200, dry.text
            assert dry.json()["applied"] is False and dry.json()["dry_run"] is True
            assert requests_of(cluster, "web")[0] == before  # dry run: nothing changed

            applied = await c.post(
                f"/v1/recommendations/{rec['id']}/apply", json={"comment": "saw the dashboard, go ahead"}
            )
            assert applied.status_code == 200, applied.text
            assert applied.json()["applied"] is True and applied.json()["resource_version"]
            wanted = rec["recommendation"]["containers"][0]["recommended"]["requests"]
            after, _ = requests_of(cluster, "web")
            assert after != before and after["cpu"] == f"{wanted['cpu_millicores']}m"

            again = problem(await c.post(f"/v1/recommendations/{rec['id']}/apply", json={}), 409)
            assert "applied" in again["detail"]
            listed_applied = await c.get("/v1/recommendations", params={"status": "applied"})
            assert [r["id"] for r in listed_applied.json()["recommendations"]] == [rec["id"]]

    entries = await audited(stack, admin, "recommendation.apply", 2)
    assert len(entries) == 2
    assert {e["service"] for e in entries} == {"optimizer"}  # one entry per call, the optimizer's
    real = [e for e in entries if e["details"].get("dry_run") is False and e["details"].get("applied") is True]
    assert real and real[0]["reason"] == "saw the dashboard, go ahead"
    assert real[0]["target"]["namespace"] == ns and real[0]["target"]["name"] == "web"


async def test_an_apply_whose_audit_fails_patches_nothing(
    cluster: Cluster, start_optimizer: Start, stack: GatewayStack, db: Database
) -> None:
    ns = cluster.namespace
    async with AsyncExitStack() as exits:
        before = await recommending(cluster, start_optimizer, stack, exits)
        operator = await stack.key("operator", namespaces=[ns])
        async with stack.client(operator) as c:
            (rec,) = (await c.get("/v1/recommendations")).json()["recommendations"]
            url = f"/v1/recommendations/{rec['id']}/apply"

            async with audit_refused(db, optimizer_store.SCHEMA):
                failed = await c.post(url, json={"comment": "go"})
            assert failed.status_code >= 500, failed.text
            problem(failed, failed.status_code)
            assert requests_of(cluster, "web")[0] == before  # nothing patched
            listed = (await c.get("/v1/recommendations", params={"status": "open"})).json()["recommendations"]
            assert [r["id"] for r in listed] == [rec["id"]]
            assert await outbox_audits(db, optimizer_store.TABLES.outbox, "recommendation.apply") == []

            applied = await c.post(url, json={"comment": "go"})
            assert applied.status_code == 200, applied.text
            assert applied.json()["applied"] is True
            assert requests_of(cluster, "web")[0] != before
    [entry] = await outbox_audits(db, optimizer_store.TABLES.outbox, "recommendation.apply")
    assert entry["actor"]["kind"] == "apikey" and entry["request_id"] == applied.headers["x-request-id"]
    assert entry["reason"] == "go"
    assert entry["target"]["namespace"] == ns and entry["target"]["name"] == "web"
    assert entry["details"] == {"recommendation_id": rec["id"], "dry_run": False, "applied": True}


async def test_without_the_optimizer_the_gateway_answers_503(stack: GatewayStack) -> None:
    await stack.start()
    token = await stack.key("operator")
    async with stack.client(token) as c:
        listed = problem(await c.get("/v1/recommendations"), 503)
        assert "did not answer" in listed["detail"]
        problem(await c.post("/v1/recommendations/r-1/apply", json={}), 503)
