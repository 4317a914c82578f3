"""The gateway's hot statements (an audit page, a deploy request) on a pool of plain asyncpg connections.

Through SQLAlchemy each of these cost more CPU than the request around it (bench/gateway_load.py, profiles in
docs/benchmarks.md): the pool's check-out ping (`BEGIN`, `;`, `ROLLBACK`: three round trips, before autocommit
applies), the statement's cache key walked and its parameters processed on every execution, the result wrapped
twice. Here a statement is still written with SQLAlchemy (the one text that tests `EXPLAIN` and that the ORM
path would run), compiled once per shape into asyncpg's `$n` form, prepared once per connection by asyncpg's
statement cache, and executed with its arguments in order. Each statement is one implicit transaction
(autocommit), exactly as before.

No check-out ping: asyncpg notices a connection the server closed and replaces it. A read whose connection
failed under it is asked once more on another connection (a read has no effect to repeat); a write is not
repeated (whether it committed is unknown), its error propagates and the caller's contract for database errors
applies. This module must never log a statement's arguments: they may hold audit details.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.sql import ClauseElement

from opsbus.common.settings import DatabaseSettings

_DIALECT = asyncpg_dialect()  # type: ignore[no-untyped-call]
_GONE = (asyncpg.ConnectionDoesNotExistError, asyncpg.InterfaceError, ConnectionError)


@dataclass(frozen=True, slots=True)
class Compiled:
    """A statement in asyncpg's form and the names of its arguments, in order."""

    sql: str
    names: tuple[str, ...]
    defaults: Mapping[str, Any]  # values bound in the statement itself (literals such as a NOTIFY channel)

    @classmethod
    def of(cls, statement: ClauseElement) -> Compiled:
        compiled = statement.compile(dialect=_DIALECT, compile_kwargs={"render_postcompile": True})
        names = getattr(compiled, "positiontup", None) or ()  # an SQLCompiler's, for a positional paramstyle
        return cls(compiled.string, tuple(names), dict(compiled.params))

    def arguments(self, values: Mapping[str, Any]) -> list[Any]:
        return [values[name] if name in values else self.defaults[name] for name in self.names]


def _dsn(settings: DatabaseSettings) -> str:
    """The settings' SQLAlchemy URL as asyncpg takes it (`postgresql://`)."""
    from sqlalchemy.engine import make_url  # noqa: PLC0415 (only here)

    url = make_url(settings.url.get_secret_value())
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def _init(conn: asyncpg.Connection) -> None:
    for kind in ("json", "jsonb"):  # as SQLAlchemy's asyncpg dialect does: Python objects in and out
        await conn.set_type_codec(kind, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _no_reset(_: asyncpg.Connection) -> None:
    """Connections only run single statements in autocommit: nothing to reset on release (no round trip)."""


class Statements:
    """A lazily opened asyncpg pool (at most `pool_size` connections, besides SQLAlchemy's own pool)."""

    def __init__(self, settings: DatabaseSettings, *, application_name: str) -> None:
        self._settings = settings
        self._application_name = application_name[:63]
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()

    async def _open(self) -> asyncpg.Pool:
        async with self._opening:
            if self._pool is None:
                s = self._settings
                self._pool = await asyncpg.create_pool(
                    _dsn(s),
                    min_size=0,
                    max_size=s.pool_size,
                    max_inactive_connection_lifetime=s.pool_recycle,
                    init=_init,
                    reset=_no_reset,
                    timeout=s.connect_timeout,
                    command_timeout=s.statement_timeout or None,
                    server_settings={
                        "application_name": self._application_name,
                        "statement_timeout": str(int(s.statement_timeout * 1000)),
                        "idle_in_transaction_session_timeout": str(int(s.idle_in_transaction_timeout * 1000)),
                    },
                )
            return self._pool

    async def fetch(self, statement: Compiled, values: Mapping[str, Any]) -> list[asyncpg.Record]:
        """The rows of a read; asked again once on another connection when its connection failed."""
        pool = self._pool or await self._open()
        arguments = statement.arguments(values)
        for attempt in (1, 2):
            try:
                async with pool.acquire(timeout=self._settings.pool_timeout) as conn:
                    rows: list[asyncpg.Record] = await conn.fetch(statement.sql, *arguments)
                    return rows
            except _GONE:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def execute(self, statement: Compiled, values: Mapping[str, Any]) -> None:
        """A write in one statement (one implicit transaction); never repeated."""
        pool = self._pool or await self._open()
        async with pool.acquire(timeout=self._settings.pool_timeout) as conn:
            await conn.execute(statement.sql, *statement.arguments(values))

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()


def records(rows: Sequence[asyncpg.Record]) -> list[dict[str, Any]]:
    return [dict(row) for row in rows]
