"""The async SQLAlchemy engine and session factory of one service, built from `DatabaseSettings`.

A connection idle in the pool for longer than `PING_IDLE_AFTER` is checked before use (a round trip), one
reused sooner is not: under load a connection goes back and forth many times a second, and SQLAlchemy's
`pool_pre_ping` paid a `SELECT 1` for each (2-3 % of the healer's CPU under a storm, issue 18). A connection
that died in between fails its first statement instead; SQLAlchemy then invalidates the whole pool (every
older connection is replaced on its next checkout) and the caller's own retry covers the failed unit of work
(a nak'ed message, the relay's next pass, the notifier's durable record). Every wait is bounded (connect,
pool checkout, statement, idle-in-transaction), and each connection names its service in `pg_stat_activity`.
The URL's password must never reach a log line: log `safe_url()`, never the settings value.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, exc, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from opsbus.common.errors import ConfigurationError
from opsbus.common.settings import DatabaseSettings

log = logging.getLogger(__name__)

DRIVER = "postgresql+asyncpg"
PING_IDLE_AFTER = 1.0  # seconds a pooled connection may sit unused before its next checkout pings it
_RETURNED = "opsbus_returned_at"


def _url(settings: DatabaseSettings) -> URL:
    try:
        url = make_url(settings.url.get_secret_value())
    except Exception:
        # `from None`: the parser's message may quote the URL, password included.
        raise ConfigurationError("database URL is not a valid SQLAlchemy URL") from None
    if url.drivername != DRIVER:
        raise ConfigurationError(f"database URL must use the {DRIVER} driver, not {url.drivername}")
    return url


def safe_url(settings: DatabaseSettings) -> str:
    """The database URL with its password masked: the only form that may be logged."""
    return _url(settings).render_as_string(hide_password=True)


def _millis(seconds: float) -> str:
    return str(int(seconds * 1000))


def create_engine(
    settings: DatabaseSettings,
    *,
    application_name: str = "opsbus",
    statement_timeout: float | None = None,
    pooled: bool = True,
) -> AsyncEngine:
    """An asyncpg engine with bounded waits.

    `statement_timeout` overrides the settings' bound (0 disables it: migrations may build indexes for
    longer than a request should ever take). `pooled=False` opens a connection per use (one-shot tools).
    """
    url = _url(settings)
    statement = settings.statement_timeout if statement_timeout is None else statement_timeout
    server_settings = {
        "application_name": application_name[:63],
        "statement_timeout": _millis(statement),
        "idle_in_transaction_session_timeout": _millis(settings.idle_in_transaction_timeout),
    }
    connect_args: dict[str, Any] = {"timeout": settings.connect_timeout, "server_settings": server_settings}
    options: dict[str, Any] = {"echo": settings.echo, "hide_parameters": not settings.echo}
    if pooled:
        options.update(
            pool_size=settings.pool_size,
            max_overflow=settings.max_overflow,
            pool_timeout=settings.pool_timeout,
            pool_recycle=settings.pool_recycle,
        )
    else:
        options["poolclass"] = NullPool
    log.debug("database engine for %s (%s)", safe_url(settings), application_name)
    engine = create_async_engine(url, connect_args=connect_args, **options)
    if pooled:
        _ping_when_idle(engine, PING_IDLE_AFTER)
    return engine


def _ping_when_idle(engine: AsyncEngine, idle_after: float) -> None:
    """Ping a pooled connection at checkout only when it sat unused for more than `idle_after` seconds; a
    failed ping makes the pool replace it (SQLAlchemy retries the checkout with a new connection)."""
    dialect = engine.sync_engine.dialect

    def on_checkin(_dbapi: Any, record: Any) -> None:
        record.info[_RETURNED] = time.monotonic()

    def on_checkout(dbapi: Any, record: Any, _proxy: Any) -> None:
        returned = record.info.get(_RETURNED)
        if returned is None or time.monotonic() - returned <= idle_after:
            return  # new (just connected), or back in use at once
        try:
            alive = dialect.do_ping(dbapi)
        except Exception:  # a connection that cannot answer SELECT 1 is of no use, whatever the error
            alive = False
        if not alive:
            raise exc.DisconnectionError("pooled connection did not answer its ping")

    event.listen(engine.sync_engine.pool, "checkin", on_checkin)
    event.listen(engine.sync_engine.pool, "checkout", on_checkout)


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded attributes after commit (async code cannot lazy-load them afterwards)."""
    return async_sessionmaker(engine, expire_on_commit=False)


@dataclass(slots=True)
class Database:
    """One service's engine and session factory; `ping()` backs `/readyz`, `close()` the shutdown."""

    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]

    @classmethod
    def from_settings(cls, settings: DatabaseSettings, *, application_name: str = "opsbus") -> Database:
        engine = create_engine(settings, application_name=application_name)
        return cls(engine, create_sessionmaker(engine))

    async def ping(self, timeout: float = 2.0) -> bool:
        """True when a connection can be checked out and answers `SELECT 1` within `timeout`."""
        try:
            async with asyncio.timeout(timeout), self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception as exc:
            log.warning("database ping failed: %s", type(exc).__name__)
            return False
        return True

    async def close(self) -> None:
        await self.engine.dispose()
