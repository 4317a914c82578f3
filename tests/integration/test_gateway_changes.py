"""`GET /v1/changes` against the real gateway, NATS and PostgreSQL: `change.recorded` events published on the bus
become the timeline (filters by cluster, namespace, workload, kind, since/until; keyset pagination), a key scoped
to namespace a never sees b (nor nodes), bad queries are 4xx problem+json, a malformed change goes to the DLQ and
the consumer keeps going, retention purges old rows."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from nats.js.api import DeliverPolicy

from opsbus.common.bus import Bus
from opsbus.common.events import Envelope
from opsbus.common.events.payloads import (
    ChangeKind,
    ChangeOrigin,
    ChangeRecorded,
    FieldChange,
    ResourceRef,
    WorkloadRef,
)
from opsbus.common.store import purge_all
from opsbus.gateway import store
from opsbus.gateway.service import consumer_specs
from tests.integration.gateway_stack import GatewayStack, gateway_stack

pytestmark = pytest.mark.integration

MakeBus = Callable[..., Awaitable[Bus]]
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


@pytest.fixture
async def stack(database_url: str, nats_url: str) -> AsyncIterator[GatewayStack]:
    async for s in gateway_stack(database_url, nats_url):
        yield s


def _image_change(namespace: str, name: str, minutes: int, cluster: str = "prod") -> Envelope:
    workload = WorkloadRef(kind="Deployment", namespace=namespace, name=name)
    payload = ChangeRecorded(
        kinds=(ChangeKind.IMAGE,),
        object=workload.as_resource_ref(),
        workload=workload,
        diff=(FieldChange(path="spec.template.spec.containers[app].image", before="web:1", after="web:2"),),
        summary=f"Deployment {namespace}/{name}: containers[app].image web:1 -> web:2",
        origin=ChangeOrigin.OBSERVED,
        observed_at=T0 + timedelta(minutes=minutes),
    )
    return Envelope.build(payload, service="watcher", cluster=cluster, obj=workload.as_object_ref())


def _config_change(namespace: str, minutes: int) -> Envelope:
    payload = ChangeRecorded(
        kinds=(ChangeKind.CONFIG,),
        object=ResourceRef(kind="ConfigMap", namespace=namespace, name="web-config", api_version="v1"),
        diff=(FieldChange(path="data[LOG_LEVEL]", before="sha256:" + "a" * 64, after="sha256:" + "b" * 64),),
        summary=f"ConfigMap {namespace}/web-config: data[LOG_LEVEL] changed",
        origin=ChangeOrigin.OBSERVED,
        observed_at=T0 + timedelta(minutes=minutes),
    )
    return Envelope.build(payload, service="watcher", cluster="prod", obj=payload.object.as_object_ref())


def _node_change(minutes: int) -> Envelope:
    payload = ChangeRecorded(
        kinds=(ChangeKind.NODE_TAINT,),
        object=ResourceRef(kind="Node", name="node-a", api_version="v1"),
        diff=(FieldChange(path="spec.taints[dedicated:NoSchedule]", after="gpu"),),
        summary="Node node-a: spec.taints[dedicated:NoSchedule] added",
        origin=ChangeOrigin.OBSERVED,
        observed_at=T0 + timedelta(minutes=minutes),
    )
    return Envelope.build(payload, service="watcher", cluster="prod", obj=payload.object.as_object_ref())


async def _eventually(check: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return dict(response.json())


async def test_the_timeline_is_filtered_paginated_and_scoped(stack: GatewayStack, make_bus: MakeBus) -> None:
    await stack.start()
    bus = await make_bus("watcher")
    events = [
        _image_change("team-a", "web", 1),
        _config_change("team-a", 2),
        _image_change("team-a", "api", 3),
        _image_change("team-b", "web", 4),
        _node_change(5),
        _image_change("team-a", "web", 6, cluster="staging"),
    ]
    for event in events:
        await bus.publisher.publish(event)
    admin = await stack.key("admin")
    viewer_a = await stack.key("viewer", namespaces=["team-a"])

    async def items(token: str, **params: Any) -> list[dict[str, Any]]:
        async with stack.client(token) as c:
            response = await c.get("/v1/changes", params=params)
            assert response.status_code == 200, response.text
            return list(response.json()["items"])

    async def all_stored() -> bool:
        return len(await items(admin)) == len(events)

    await _eventually(all_stored)
    newest = (await items(admin))[0]
    assert newest["id"] == events[-1].id and newest["cluster"] == "staging"
    assert newest["kinds"] == ["image"] and newest["origin"] == "observed" and newest["service"] == "watcher"
    assert newest["change"]["diff"][0] == {
        "path": "spec.template.spec.containers[app].image",
        "before": "web:1",
        "after": "web:2",
    }

    # filters
    assert {i["id"] for i in await items(admin, cluster="prod", namespace="team-a", workload="web")} == {events[0].id}
    assert {i["id"] for i in await items(admin, kind="config")} == {events[1].id}
    assert {i["id"] for i in await items(admin, workload="web-config")} == {events[1].id}  # the object's own name
    window = {"since": (T0 + timedelta(minutes=2)).isoformat(), "until": (T0 + timedelta(minutes=4)).isoformat()}
    assert {i["id"] for i in await items(admin, **window)} == {events[1].id, events[2].id}
    assert [i["namespace"] for i in await items(admin, kind="node_taint")] == [None]

    # tenancy: a key of team-a sees team-a only (no team-b, no node), and asking for team-b is 403
    mine = await items(viewer_a)
    assert {i["namespace"] for i in mine} == {"team-a"} and len(mine) == 4
    async with stack.client(viewer_a) as c:
        _problem(await c.get("/v1/changes", params={"namespace": "team-b"}), 403)

    # keyset pagination: newest first, pages do not overlap, the cursor reaches the end
    async with stack.client(admin) as c:
        seen: list[str] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 4, **({"cursor": cursor} if cursor else {})}
            page = (await c.get("/v1/changes", params=params)).json()
            seen += [i["id"] for i in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
    assert seen == [e.id for e in reversed(events)]

    # bad queries: 4xx problem+json, never 500
    async with stack.client(admin) as c:
        for params in (
            {"kind": "nonsense"},
            {"since": "yesterday"},
            {"cursor": "abc"},
            {"limit": "0"},
            {"namespace": "a.b"},
            {"since": "2025-03-14T10:00:00Z", "until": "2025-03-14T09:00:00Z"},
            {"since": "2025-03-14T10:00:00"},
        ):
            _problem(await c.get("/v1/changes", params=params), 422)
    async with stack.client() as anonymous:
        _problem(await anonymous.get("/v1/changes"), 401)


async def test_a_malformed_change_goes_to_the_dlq_and_retention_purges(stack: GatewayStack, make_bus: MakeBus) -> None:
    gateway = await stack.start()
    bus = await make_bus("watcher")
    good = _image_change("team-a", "web", 1)
    bad = good.model_copy(update={"id": "0195b2f0-0000-7000-8000-00000000bad1", "data": {"kinds": ["image"]}})
    await bus.publisher.publish(bad)
    await bus.publisher.publish(good)
    admin = await stack.key("admin")

    async def stored() -> bool:
        async with stack.client(admin) as c:
            return [i["id"] for i in (await c.get("/v1/changes")).json()["items"]] == [good.id]

    await _eventually(stored)
    dead = await bus.js.subscribe("dlq.change.>", stream="DLQ", ordered_consumer=True, deliver_policy=DeliverPolicy.ALL)
    try:
        msg = await dead.next_msg(timeout=10)
        assert Envelope.from_json(msg.data).id == bad.id
    finally:
        await dead.unsubscribe()
    assert any(spec.stream == "CHANGE" for spec in consumer_specs(gateway.ctx.settings))

    from opsbus.common.store import RetentionRule  # noqa: PLC0415

    rule = RetentionRule(store.changes, "time", timedelta(minutes=1))
    await purge_all(gateway.db.engine, [rule])
    async with stack.client(admin) as c:
        assert (await c.get("/v1/changes")).json()["items"] == []


async def test_the_gateway_migrations_build_what_its_models_describe(stack: GatewayStack) -> None:
    """Autogenerate finds nothing to do at head (0002: the changes table and its indexes)."""
    from alembic.autogenerate import compare_metadata  # noqa: PLC0415
    from alembic.runtime.migration import MigrationContext  # noqa: PLC0415
    from sqlalchemy.engine import Connection  # noqa: PLC0415

    gateway = await stack.start()

    def diff(connection: Connection) -> list[object]:
        context = MigrationContext.configure(
            connection,
            opts={
                "include_schemas": True,
                "include_name": lambda name, type_, parents: name == store.SCHEMA if type_ == "schema" else True,
                "version_table_schema": store.SCHEMA,
                "compare_type": True,
            },
        )
        return list(compare_metadata(context, store.metadata))

    async with gateway.db.engine.connect() as conn:
        assert await conn.run_sync(diff) == []


async def test_opsbus_changes_lists_filters_and_explains_errors(stack: GatewayStack, make_bus: MakeBus) -> None:
    """The CLI against the same gateway: table and --output json, the filters, a 403 and a bad kind explained."""
    import json  # noqa: PLC0415

    from typer.testing import CliRunner  # noqa: PLC0415

    from opsbus.cli.main import app  # noqa: PLC0415

    await stack.start()
    bus = await make_bus("watcher")
    events = [_image_change("team-a", "web", 1), _config_change("team-a", 2), _image_change("team-b", "web", 3)]
    for event in events:
        await bus.publisher.publish(event)
    viewer_a = await stack.key("viewer", namespaces=["team-a"])

    async def opsbus(*args: str) -> tuple[int, str]:
        env = {"OPSBUS_URL": stack.url, "OPSBUS_API_KEY": viewer_a, "COLUMNS": "250"}
        result = await asyncio.to_thread(CliRunner().invoke, app, ["changes", *args], env=env)
        return result.exit_code, result.output

    async def both_visible() -> bool:
        code, text = await opsbus("-o", "json")
        return code == 0 and len(json.loads(text)["items"]) == 2

    await _eventually(both_visible)
    code, text = await opsbus()
    assert code == 0, text
    assert "Deployment/team-a/web" in text and "ConfigMap/team-a/web-config" in text and "team-b" not in text
    code, text = await opsbus("--kind", "config", "--since", "2d", "-o", "json", "--limit", "1")
    assert code == 0, text
    assert [i["id"] for i in json.loads(text)["items"]] == [events[1].id]
    code, text = await opsbus("--workload", "web", "-n", "team-a", "-o", "json")
    assert [i["id"] for i in json.loads(text)["items"]] == [events[0].id]
    code, text = await opsbus("-n", "team-b")
    assert code == 1 and "403" in text
    code, text = await opsbus("--kind", "nonsense")
    assert code == 1 and "422" in text
