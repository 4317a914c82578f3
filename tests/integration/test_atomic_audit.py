"""A mutation and its audit entry are one transaction: when the audit step fails, nothing of the mutation
remains. The failure is injected where it would really happen, in PostgreSQL: a trigger on the owning
service's outbox table refuses `audit.recorded` rows (every other row goes through), so the write, its
other events and the audit entry commit together or not at all.

Against the real gateway (uvicorn), NATS JetStream and PostgreSQL. Also the regression of the key whose
reason outgrew the audit model (a long namespace list was a 500 after the key had been committed).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Table, func, select, text

from opsbus.common.bus import Bus
from opsbus.common.runtime import Runtime
from opsbus.common.settings import DatabaseSettings
from opsbus.common.store import Database
from opsbus.gateway import store as gateway_store
from opsbus.healer import store as healer_store
from opsbus.healer.settings import HealerSettings
from opsbus.notifier import store as notifier_store
from tests.integration.gateway_stack import GatewayStack, gateway_stack
from tests.integration.notifier_stack import Stack as NotifierStack
from tests.integration.notifier_stack import notifier_stack, yaml_config
from tests.integration.test_gateway_api import MakeBus, assert_problem, collect, eventually

pytestmark = pytest.mark.integration

AUDIT_TYPE = "io.opsbus.audit.recorded.v1"


@pytest.fixture
async def stack(database_url: str, nats_url: str) -> AsyncIterator[GatewayStack]:
    async for s in gateway_stack(database_url, nats_url):
        yield s


@pytest.fixture
async def notifier(database_url: str, nats_url: str) -> AsyncIterator[NotifierStack]:
    async for s in notifier_stack(database_url, nats_url):
        yield s


@pytest.fixture
async def healer(database_url: str, nats_url: str, tmp_path: Path) -> AsyncIterator[Runtime[HealerSettings]]:
    """The real healer (its wiring, endpoints and outbox). Its apiserver is unreachable: policies need none."""
    from opsbus.common.store import upgrade  # noqa: PLC0415
    from opsbus.healer.service import setup  # noqa: PLC0415

    await upgrade(DatabaseSettings.model_validate({"url": database_url}), healer_store.MIGRATIONS, healer_store.SCHEMA)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: none\n"
        "clusters: [{name: none, cluster: {server: 'https://127.0.0.1:9'}}]\n"
        "users: [{name: none, user: {token: none}}]\n"
        "contexts: [{name: none, context: {cluster: none, user: none}}]\n"
    )
    settings = HealerSettings.model_validate(
        {
            "environment": "test",
            "cluster": "prod",
            "nats": {"url": nats_url},
            "database": {"url": database_url},
            "http": {"port": 0},
            "shutdown_grace_seconds": 5,
            "healer": {"kubeconfig": str(kubeconfig)},
        }
    )
    rt: Runtime[HealerSettings] = Runtime("healer", settings)
    started: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def wired(r: Runtime[HealerSettings]) -> None:
        await setup(r)
        started.set_result(None)

    task = asyncio.create_task(rt.run(wired, install_signals=False), name="healer-under-test")
    waiting: list[asyncio.Future[Any]] = [started, task]
    done, _ = await asyncio.wait(waiting, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    assert started in done, f"healer did not start: {task.exception() if task.done() else 'timeout'}"
    yield rt
    rt.request_shutdown()
    assert await task == 0


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database.from_settings(DatabaseSettings.model_validate({"url": database_url, "pool_size": 2}))
    yield database
    await database.close()


@asynccontextmanager
async def audit_refused(db: Database, schema: str) -> AsyncIterator[None]:
    """While inside, inserting an `audit.recorded` row into `schema`'s outbox raises in PostgreSQL."""
    function = f"{schema}.opsbus_test_refuse_audit"
    async with db.engine.begin() as conn:
        await conn.execute(
            text(
                f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'audit refused by the test'; END $$"
            )
        )
        await conn.execute(
            text(
                f"CREATE TRIGGER opsbus_test_refuse_audit BEFORE INSERT ON {schema}.opsbus_outbox FOR EACH ROW "
                f"WHEN (NEW.event_type = '{AUDIT_TYPE}') EXECUTE FUNCTION {function}()"
            )
        )
    try:
        yield
    finally:
        async with db.engine.begin() as conn:
            await conn.execute(text(f"DROP TRIGGER opsbus_test_refuse_audit ON {schema}.opsbus_outbox"))
            await conn.execute(text(f"DROP FUNCTION {function}()"))


async def count(db: Database, table: Table, *where: Any) -> int:
    async with db.sessions() as session:
        return int((await session.execute(select(func.count()).select_from(table).where(*where))).scalar_one())


async def outbox_audits(db: Database, table: Table, action: str) -> list[dict[str, Any]]:
    async with db.sessions() as session:
        rows = (await session.execute(select(table.c.body).where(table.c.event_type == AUDIT_TYPE))).all()
    entries = [json.loads(bytes(r.body))["data"] for r in rows]
    return [e for e in entries if e["action"] == action]


def assert_failed(response: Any) -> dict[str, Any]:
    """The write failed on the server's side: a 5xx problem+json that carries no token or result."""
    assert response.status_code >= 500, response.text
    body = assert_problem(response, response.status_code)
    assert "token" not in body and "id" not in body
    return body


# --- the gateway's own writes ----------------------------------------------------------------------------
async def test_a_key_whose_audit_fails_does_not_exist(stack: GatewayStack, db: Database) -> None:
    await stack.start()
    admin = await stack.key("admin")
    keys, outbox = gateway_store.api_keys, gateway_store.TABLES.outbox
    before = await count(db, keys)
    async with stack.client(admin) as c:
        async with audit_refused(db, gateway_store.SCHEMA):
            assert_failed(await c.post("/v1/keys", json={"name": "ghost", "role": "viewer", "namespaces": ["a"]}))
        assert await count(db, keys) == before
        assert await count(db, keys, keys.c.name == "ghost") == 0
        assert await outbox_audits(db, outbox, "apikey.create") == []
        # without the injected failure the same request creates the key and its audit entry together
        created = await c.post("/v1/keys", json={"name": "real", "role": "viewer", "namespaces": ["a"]})
        assert created.status_code == 201, created.text
        key_id = created.json()["id"]
        assert [e["target"]["name"] for e in await outbox_audits(db, outbox, "apikey.create")] == [key_id]

        # revoking: the audit fails -> the key stays usable, and a later revocation succeeds
        async with audit_refused(db, gateway_store.SCHEMA):
            assert_failed(await c.delete(f"/v1/keys/{key_id}"))
        assert await count(db, keys, keys.c.id == key_id, keys.c.revoked_at.is_(None)) == 1
        async with stack.client(created.json()["token"]) as viewer:
            assert (await viewer.get("/v1/whoami")).status_code == 200
        assert await outbox_audits(db, outbox, "apikey.revoke") == []
        assert (await c.delete(f"/v1/keys/{key_id}")).status_code == 200
        assert len(await outbox_audits(db, outbox, "apikey.revoke")) == 1


async def test_a_deploy_request_whose_audit_fails_is_not_requested(
    stack: GatewayStack, db: Database, make_bus: MakeBus
) -> None:
    await stack.start()
    bus: Bus = await make_bus("tester")
    await bus.ensure_streams()
    got = await collect(bus, "DEPLOY", ["deploy.requested.>"], "t-atomic-deploy")
    operator = await stack.key("operator", namespaces=["payments"])
    body = {
        "workload": {"kind": "Deployment", "namespace": "payments", "name": "checkout"},
        "strategy": "rolling",
        "images": {"app": "registry.example.com/payments/checkout:1.43.0"},
    }
    outbox, requests = gateway_store.TABLES.outbox, gateway_store.deploy_requests
    async with stack.client(operator) as c:
        async with audit_refused(db, gateway_store.SCHEMA):
            assert_failed(await c.post("/v1/deployments", json=body))
        assert await count(db, requests) == 0
        assert await count(db, outbox, outbox.c.event_type.like("io.opsbus.deploy.requested.%")) == 0
        await asyncio.sleep(1.5)  # more than the relay's poll interval: nothing may reach the bus
        assert got == []
        accepted = await c.post("/v1/deployments", json=body)
        assert accepted.status_code == 202, accepted.text
        await eventually(lambda: len(got) == 1)
        assert got[0].event.id == accepted.json()["request_id"]
        assert await count(db, requests) == 1


# --- writes owned by other services, asked for through the gateway ---------------------------------------
async def test_silences_and_routes_whose_audit_fails_are_not_changed(
    stack: GatewayStack, notifier: NotifierStack, db: Database
) -> None:
    notifier.env["HOOK_URL"] = "http://127.0.0.1:9/hook"
    await notifier.start(yaml_config("${HOOK_URL}"))
    await stack.start()
    admin = await stack.key("admin")
    silences, versions, outbox = notifier_store.silences, notifier_store.config_versions, notifier_store.TABLES.outbox
    silence = {"matchers": ['namespace="payments"'], "duration_seconds": 600, "comment": "maintenance"}
    async with stack.client(admin) as c:
        current = (await c.get("/v1/routes/config")).json()
        update = {"yaml": current["yaml"].replace("group_wait: 1s", "group_wait: 30s"), "expected_version": 1}
        async with audit_refused(db, notifier_store.SCHEMA):
            assert_failed(await c.post("/v1/silences", json=silence))
            assert_failed(await c.put("/v1/routes", json=update))
        assert await count(db, silences) == 0
        assert await count(db, versions) == 1
        assert await outbox_audits(db, outbox, "silence.create") == []
        assert await outbox_audits(db, outbox, "routes.put") == []
        assert (await c.get("/v1/routes/config")).json()["version"] == 1

        created = await c.post("/v1/silences", json=silence)
        assert created.status_code == 201, created.text
        sid = created.json()["id"]
        [entry] = await outbox_audits(db, outbox, "silence.create")  # the gateway's entry, now the notifier's
        assert entry["actor"]["kind"] == "apikey" and entry["request_id"] == created.headers["x-request-id"]
        assert entry["target"] == {"kind": "Silence", "namespace": "payments", "name": sid}
        assert entry["reason"] == "maintenance"

        async with audit_refused(db, notifier_store.SCHEMA):
            assert_failed(await c.delete(f"/v1/silences/{sid}"))
        [listed] = (await c.get("/v1/silences")).json()["silences"]
        assert listed["state"] == "active"
        assert await outbox_audits(db, outbox, "silence.expire") == []
        assert (await c.delete(f"/v1/silences/{sid}")).json()["state"] == "expired"
        assert len(await outbox_audits(db, outbox, "silence.expire")) == 1

        put = await c.put("/v1/routes", json=update)
        assert put.status_code == 200 and put.json()["version"] == 2, put.text
        [entry] = await outbox_audits(db, outbox, "routes.put")
        assert entry["actor"]["kind"] == "apikey" and entry["details"]["version"] == 2
        # the gateway's read model gets the entries from the bus
        await eventually(lambda: _audited(c, "routes.put"), timeout=15)


async def test_a_policy_version_whose_audit_fails_is_not_stored(
    stack: GatewayStack, healer: Runtime[HealerSettings], db: Database
) -> None:
    await stack.start()
    admin = await stack.key("admin")
    versions, outbox = healer_store.Base.metadata.tables["healer.policy_versions"], healer_store.TABLES.outbox
    async with stack.client(admin) as c:
        current = (await c.get("/v1/policies")).json()
        update = {"document": current["document"], "expected_version": current["version"], "comment": "same again"}
        stored = await count(db, versions)
        async with audit_refused(db, healer_store.SCHEMA):
            assert_failed(await c.put("/v1/policies", json=update))
        assert await count(db, versions) == stored
        assert (await c.get("/v1/policies")).json()["version"] == current["version"]
        assert await outbox_audits(db, outbox, "policy.put") == []

        put = await c.put("/v1/policies", json=update)
        assert put.status_code == 200 and put.json()["version"] == current["version"] + 1, put.text
        [entry] = await outbox_audits(db, outbox, "policy.put")
        assert entry["actor"]["kind"] == "apikey" and entry["request_id"] == put.headers["x-request-id"]
        assert entry["reason"] == "same again" and entry["target"]["kind"] == "RemediationPolicy"
        await eventually(lambda: _audited(c, "policy.put"), timeout=15)


async def _audited(c: Any, action: str) -> bool:
    return bool((await c.get("/v1/audit", params={"action": action})).json()["items"])


# --- a long namespace list ---------------------------------------------------------------------------------
async def test_a_key_for_hundreds_of_long_namespaces_is_created_with_an_audit_entry_that_fits(
    stack: GatewayStack, db: Database
) -> None:
    await stack.start()
    admin = await stack.key("admin")
    namespaces = [f"{i:03d}-" + "n" * 240 for i in range(500)]  # 500 names of 244 characters: ~122,000
    async with stack.client(admin) as c:
        created = await c.post("/v1/keys", json={"name": "wide", "role": "viewer", "namespaces": namespaces})
        assert created.status_code == 201, created.text
        assert created.json()["namespaces"] == namespaces
        [entry] = await outbox_audits(db, gateway_store.TABLES.outbox, "apikey.create")
        assert len(entry["reason"]) <= 2048 and entry["reason"].endswith(" and 496 more")
        assert entry["details"]["namespaces"].split(",") == namespaces
        # beyond the documented bounds: 422 problem+json, never 500
        too_many = [f"ns-{i}" for i in range(501)]
        assert_problem(await c.post("/v1/keys", json={"name": "x", "role": "viewer", "namespaces": too_many}), 422)
        too_long = ["n" * 254]
        assert_problem(await c.post("/v1/keys", json={"name": "x", "role": "viewer", "namespaces": too_long}), 422)
        long_name = {"name": "k" * 201, "role": "viewer", "namespaces": ["a"]}
        assert_problem(await c.post("/v1/keys", json=long_name), 422)
    entries = await outbox_audits(db, gateway_store.TABLES.outbox, "apikey.create")
    assert len(entries) == 1  # refused requests created nothing
