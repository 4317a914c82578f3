"""The API key store against real PostgreSQL: a burst of requests with one key whose cache entry is missing or
expired costs one database query, not one per request; an unknown key is refused the same way."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import event

from opsbus.common.settings import DatabaseSettings
from opsbus.common.store import Database, upgrade
from opsbus.gateway import store
from opsbus.gateway.domain.access import ALL, Role
from opsbus.gateway.keystore import KeyStore

pytestmark = pytest.mark.integration


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    settings = DatabaseSettings.model_validate({"url": database_url, "pool_size": 5})
    await upgrade(settings, store.MIGRATIONS, store.SCHEMA)
    database = Database.from_settings(settings)
    yield database
    await database.close()


async def test_concurrent_misses_of_one_key_share_one_query(db: Database) -> None:
    now = [0.0]
    keys = KeyStore(db, cache_seconds=5.0, monotonic=lambda: now[0])
    _, token = await keys.create(name="busy", role=Role.VIEWER, namespaces=[ALL], clusters=[ALL], created_by="t")
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "api_keys" in statement:
            statements.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        first = await asyncio.gather(*(keys.authenticate(token) for _ in range(50)))
        assert all(p is not None and p.role is Role.VIEWER for p in first)
        assert len(statements) == 1
        await asyncio.gather(*(keys.authenticate(token) for _ in range(50)))
        assert len(statements) == 1  # cached
        now[0] += 6.0  # the entry expired: the next burst again costs one query
        again = await asyncio.gather(*(keys.authenticate(token) for _ in range(50)))
        assert all(p is not None for p in again) and len(statements) == 2
        unknown = "opsb_0000000000_" + "A" * 43
        assert await asyncio.gather(*(keys.authenticate(unknown) for _ in range(20))) == [None] * 20
        assert len(statements) == 3
        wrong_secret = token[:-1] + ("A" if token[-1] != "A" else "B")
        assert await keys.authenticate(wrong_secret) is None
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)
