"""The console's audit search against the real gateway, NATS and PostgreSQL: entries published on the bus are
found by actor, action, target, namespace, outcome and time, paged by keyset to the end; the CSV export streams
the same search (header, every row, formula cells neutralised, the caller's scope only); every filter's page is
one index range scan in PostgreSQL's measured plan over 100,000 rows (no sequential scan, under 150 buffers); and
admins list and end console sessions."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.dialects import postgresql

from opsbus.common.audit import Auditor
from opsbus.common.bus import Bus
from opsbus.common.events.payloads.audit import AuditOutcome
from opsbus.common.events.payloads.common import ResourceRef
from opsbus.gateway.readmodel import AUDIT_WINDOW, AuditFilter, Visibility, audit_query
from tests.integration.gateway_stack import GatewayStack, gateway_stack

pytestmark = pytest.mark.integration

MakeBus = Callable[..., Awaitable[Bus]]
EVERYONE = Visibility(None, None)
DIALECT: Any = postgresql.dialect()  # type: ignore[no-untyped-call]


@pytest.fixture
async def stack(database_url: str, nats_url: str) -> AsyncIterator[GatewayStack]:
    async for s in gateway_stack(database_url, nats_url):
        yield s


async def _publish(make_bus: MakeBus) -> None:
    bus = await make_bus("auditors")
    healer = Auditor(service="healer", cluster="prod", sink=bus.publisher.publish)
    for i in range(5):
        await healer.record(
            action="recovery.delete_pod",
            target=ResourceRef(kind="Pod", namespace="team-a", name=f"web-{i}"),
            outcome=AuditOutcome.EXECUTED,
            reason="crash loop",
        )
    await healer.record(
        action="recovery.rollback",
        target=ResourceRef(kind="Deployment", namespace="team-b", name="checkout"),
        outcome=AuditOutcome.DENIED,
        reason='=HYPERLINK("http://evil") freeze window',
    )


async def _search(stack: GatewayStack, token: str, **params: Any) -> list[dict[str, Any]]:
    async with stack.client(token) as c:
        response = await c.get("/v1/audit", params=params)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


async def _until(check: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


async def test_search_by_every_field_pages_by_keyset_and_exports_csv(stack: GatewayStack, make_bus: MakeBus) -> None:
    await stack.start()
    admin = await stack.key("admin")
    viewer_a = await stack.key("viewer", namespaces=["team-a"])
    await _publish(make_bus)

    async def six() -> bool:
        return len(await _search(stack, admin, actor="healer")) >= 6

    await _until(six)
    assert [r["target"]["name"] for r in await _search(stack, admin, target="checkout")] == ["checkout"]
    assert {r["action"] for r in await _search(stack, admin, action="recovery.delete_pod")} == {"recovery.delete_pod"}
    assert len(await _search(stack, admin, action="recovery.delete_pod", namespace="team-a")) == 5
    denied = await _search(stack, admin, outcome="denied")
    assert [(r["action"], r["outcome"]) for r in denied] == [("recovery.rollback", "denied")]
    now = datetime.now(UTC)
    assert len(await _search(stack, admin, actor="healer", since=(now - timedelta(minutes=5)).isoformat())) == 6
    assert await _search(stack, admin, actor="healer", until=(now - timedelta(minutes=5)).isoformat()) == []
    assert await _search(stack, admin, actor="nobody") == []

    # keyset: two rows a page, newest first, every entry once, the last page says so
    seen: list[str] = []
    cursor = None
    async with stack.client(admin) as c:
        for _ in range(5):
            params: dict[str, Any] = {"actor": "healer", "limit": 2} | ({"cursor": cursor} if cursor else {})
            page = (await c.get("/v1/audit", params=params)).json()
            seen += [r["id"] for r in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == len(set(seen)) == 6 and cursor is None
        times = [r["time"] for r in await _search(stack, admin, actor="healer")]
        assert times == sorted(times, reverse=True)

        response = await c.get("/v1/audit/export", params={"actor": "healer"})
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        assert "attachment" in response.headers["content-disposition"]
        rows = list(csv.DictReader(io.StringIO(response.text)))
        assert [r["id"] for r in rows] == seen
        rollback = next(r for r in rows if r["action"] == "recovery.rollback")
        assert rollback["reason"].startswith("'=HYPERLINK") and rollback["outcome"] == "denied"
        assert rollback["target_name"] == "checkout" and rollback["namespace"] == "team-b"
        limited = list(csv.DictReader(io.StringIO((await c.get("/v1/audit/export", params={"rows": 2})).text)))
        assert len(limited) == 2
        bad = await c.get("/v1/audit", params={"since": "2025-01-01T00:00:00"})
        assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")

    async with stack.client(viewer_a) as c:
        mine = list(csv.DictReader(io.StringIO((await c.get("/v1/audit/export")).text)))
        assert len(mine) == 5 and {r["namespace"] for r in mine} == {"team-a"}
        assert (await c.get("/v1/audit/export", params={"namespace": "team-b"})).status_code == 403


FILTERS = {
    "none": AuditFilter(),
    "actor": AuditFilter(actor="user-7"),
    "action": AuditFilter(action="deploy.abort"),
    "target": AuditFilter(target="web-42"),
    "namespace": AuditFilter(namespace="ns-3"),
    "cluster": AuditFilter(cluster="edge"),
    "outcome": AuditFilter(outcome="denied"),
    "actor, next page": AuditFilter(actor="user-7", after=70_000),
}


async def test_every_filter_reads_one_index_range_over_100k_rows(stack: GatewayStack) -> None:
    gateway = await stack.start()
    engine = gateway.ctx.reads.db.engine
    async with engine.begin() as conn:
        await conn.execute(text("SET LOCAL statement_timeout = 0"))
        await conn.execute(
            text(
                """
                INSERT INTO gateway.audit_entries (event_id, time, service, cluster, namespace, actor_kind, actor_id,
                    action, target_kind, target_name, outcome, reason, details, dry_run)
                SELECT 'e-' || i, now() - (100000 - i) * interval '1 second', 'healer',
                    CASE WHEN i % 50 = 0 THEN 'edge' ELSE 'prod' END, 'ns-' || (i % 40), 'user', 'user-' || (i % 97),
                    (ARRAY['deploy.abort','deploy.promote','recovery.delete_pod','apikey.create'])[1 + i % 4],
                    'Pod', 'web-' || (i % 5000),
                    (ARRAY['executed','skipped','dry_run','denied','failed'])[1 + i % 5], 'r', '{}'::jsonb, false
                FROM generate_series(1, 100000) AS i
                """
            )
        )
        await conn.execute(text("ANALYZE gateway.audit_entries"))
    async with engine.connect() as conn:
        for name, f in FILTERS.items():
            sql = audit_query(f, EVERYONE).compile(dialect=DIALECT, compile_kwargs={"literal_binds": True})
            plan = (await conn.execute(text(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}"))).scalar_one()[0]
            top = plan["Plan"]
            # one index range scan: a page touches some 50-100 buffers; without the (column, seq) indexes
            # the actor's page is a backward walk of the primary key over ~5,000 rows
            assert "Seq Scan" not in json.dumps(plan), (name, plan)
            assert top["Shared Hit Blocks"] + top["Shared Read Blocks"] < 150, (name, plan)
            rows = (await conn.execute(audit_query(f, EVERYONE))).all()
            assert len(rows) == (20 if "target" in name else 50), name
    # two conditions that never meet (action index i % 4 == 0 needs an even i, namespace ns-1 an odd one): each
    # page searches a bounded stretch, answers quickly with no rows and a cursor, and the walk ends
    never = AuditFilter(action="deploy.abort", namespace="ns-1", limit=50)
    reads = gateway.ctx.reads
    cursors = 0
    after: int | None = None
    while True:
        started = time.monotonic()
        rows, after = await reads.audit(dataclasses.replace(never, after=after), EVERYONE)
        assert rows == [] and time.monotonic() - started < 2.0
        cursors += 1
        if after is None:
            break
    assert cursors == -(-100_000 // AUDIT_WINDOW)
    # a combination that does meet: the walk finds every match once, newest first
    both = AuditFilter(action="deploy.promote", namespace="ns-1", limit=50)  # i % 4 == 1 and i % 40 == 1
    found: list[int] = []
    after = None
    while True:
        rows, after = await reads.audit(dataclasses.replace(both, after=after), EVERYONE)
        found += [r["seq"] for r in rows]
        if after is None:
            break
    assert len(found) == len(set(found)) == 2500 and found == sorted(found, reverse=True)


async def test_admins_list_and_end_console_sessions(stack: GatewayStack) -> None:
    await stack.start(key_cache_seconds=0, console={"insecure_loopback_cookie": True})
    admin = await stack.key("admin")
    team = await stack.key("viewer", namespaces=["payments"])
    payments_admin = await stack.key("admin", namespaces=["payments"])
    async with stack.client() as browser:
        assert (await browser.post("/v1/session", json={"api_key": team})).status_code == 201
        assert (await browser.get("/v1/whoami")).status_code == 200
        async with stack.client(admin) as c:
            sessions = (await c.get("/v1/sessions")).json()["items"]
            assert [(s["role"], s["namespaces"], s["ended_at"]) for s in sessions] == [("viewer", ["payments"], None)]
            session_id = sessions[0]["id"]
            async with stack.client(await stack.key("viewer")) as viewer:
                assert (await viewer.get("/v1/sessions")).status_code == 403
            ended = await c.delete(f"/v1/sessions/{session_id}")
            assert ended.status_code == 200 and ended.json()["ended_at"] is not None
            assert (await c.delete(f"/v1/sessions/{session_id}")).status_code == 409
            assert (await c.delete("/v1/sessions/nope")).status_code == 404
            assert (await browser.get("/v1/whoami")).status_code == 401
            entries = await _search(stack, admin, action="console.session.end")
            deadline = time.monotonic() + 15
            while not entries:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
                entries = await _search(stack, admin, action="console.session.end")
            assert entries[0]["target"]["name"] == session_id
        async with stack.client(payments_admin) as narrow:
            assert len((await narrow.get("/v1/sessions")).json()["items"]) == 1
        async with stack.client(admin) as c:
            assert (await c.post("/v1/session", json={"api_key": admin})).status_code == 201
        async with stack.client(payments_admin) as narrow:
            assert len((await narrow.get("/v1/sessions")).json()["items"]) == 1  # not the wider admin's
