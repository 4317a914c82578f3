"""The async SQLAlchemy engine and session factory of one service, built from `DatabaseSettings`.

Connections are checked before use (`pool_pre_ping`), every wait is bounded (connect, pool checkout,
statement, idle-in-transaction), and each connection names its service in `pg_stat_activity`.
The URL's password must never reach a log line: log `safe_url()`, never the settings value.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from opsbus.common.errors import ConfigurationError
from opsbus.common.settings import DatabaseSettings

log = logging.getLogger(__name__)

DRIVER = "postgresql+asyncpg"


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
    options: dict[str, Any] = {"pool_pre_ping": True, "echo": settings.echo, "hide_parameters": not settings.echo}
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
    return create_async_engine(url, connect_args=connect_args, **options)


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
