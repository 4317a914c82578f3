"""Alembic wiring every service reuses: one schema per service, each with its own history and its own
`alembic_version` table inside that schema.

A service's `alembic/env.py` is two lines:

    from opsbus.common.store.migrations import run_env
    from opsbus.healer.store import Base
    run_env(Base.metadata, schema="healer")

and its `__main__` exposes `python -m opsbus.healer migrate [upgrade|downgrade REV|current|check|history|
revision -m MSG]` through `migrate_main()`. At startup the service calls `check_schema_current()`: it
refuses to run on a schema that is behind its code, or that a newer release migrated to a revision this
code does not know.

Each upgrade runs in one transaction (PostgreSQL DDL is transactional) behind an advisory lock per schema,
so replicas that all run `migrate` at once apply it once. Migrations run without a statement timeout.
Only the service's own schema is compared by autogenerate: other services' schemas are invisible to it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, MetaData, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from opsbus.common.errors import ConfigurationError, SchemaMismatchError
from opsbus.common.settings import DatabaseSettings
from opsbus.common.store.engine import create_engine, safe_url
from opsbus.common.store.schema import validate_schema_name

log = logging.getLogger(__name__)

CONNECTION: Final = "opsbus.connection"
SCHEMA: Final = "opsbus.schema"
DATABASE: Final = "opsbus.database"
VERSION_TABLE: Final = "alembic_version"

T = TypeVar("T")
Target = DatabaseSettings | AsyncEngine


# --- env.py -----------------------------------------------------------------------------------------
def run_env(target_metadata: MetaData | Sequence[MetaData] | None, *, schema: str | None = None) -> None:
    """The whole body of a service's `alembic/env.py`.

    `schema` defaults to the metadata's schema. The connection comes from the programmatic API
    (`upgrade()` and friends pass one in); from the plain `alembic` command line, the engine is built from
    `OPSBUS_DATABASE__URL` and the other `OPSBUS_DATABASE__*` settings.
    """
    from alembic import context  # noqa: PLC0415 - a proxy that only exists while Alembic runs env.py

    if schema is None:
        first = target_metadata[0] if isinstance(target_metadata, Sequence) else target_metadata
        schema = first.schema if first is not None else None
    if schema is None:
        raise ConfigurationError("run_env needs the service's schema (schema=... or a MetaData with one)")
    validate_schema_name(schema)
    config = context.config
    expected = config.attributes.get(SCHEMA)
    if expected is not None and expected != schema:
        raise ConfigurationError(
            f"migrations at {config.get_main_option('script_location')} are for schema {schema!r}, not {expected!r}"
        )
    options: dict[str, Any] = {
        "target_metadata": target_metadata,
        "version_table": VERSION_TABLE,
        "version_table_schema": schema,
        "include_schemas": True,
        "include_name": _only_schema(schema),
        "compare_type": True,
    }

    if context.is_offline_mode():
        settings = config.attributes.get(DATABASE) or _settings_from_env()
        context.configure(url=settings.url.get_secret_value(), literal_binds=True, **options)
        with context.begin_transaction():
            context.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            context.run_migrations()
        return

    def migrate(connection: Connection) -> None:
        prepare_schema(connection, schema)
        context.configure(connection=connection, **options)
        with context.begin_transaction():
            context.run_migrations()

    connection = config.attributes.get(CONNECTION)
    if connection is not None:
        migrate(connection)
        return
    settings = config.attributes.get(DATABASE) or _settings_from_env()
    asyncio.run(_with_connection(settings, migrate))


def prepare_schema(connection: Connection, schema: str) -> None:
    """Serialize migrators of `schema` (transaction-scoped advisory lock) and create the schema if missing."""
    validate_schema_name(schema)
    connection.execute(select(func.pg_advisory_xact_lock(func.hashtext(f"opsbus_migrate:{schema}"))))
    connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))


def _only_schema(schema: str) -> Callable[[str | None, str, dict[str, str | None]], bool]:
    def include_name(name: str | None, type_: str, parent_names: dict[str, str | None]) -> bool:
        if type_ == "schema":
            return name == schema
        return True

    return include_name


def _settings_from_env() -> DatabaseSettings:
    from opsbus.common.settings import ServiceSettings, load  # noqa: PLC0415

    return load(ServiceSettings).database


# --- programmatic API -------------------------------------------------------------------------------
async def _with_connection(target: Target, work: Callable[[Connection], T]) -> T:
    """Run `work` on a sync-facing connection inside one transaction (committed if `work` returns)."""
    if isinstance(target, AsyncEngine):
        async with target.begin() as conn:
            return await conn.run_sync(work)
    engine = create_engine(target, application_name="opsbus-migrate", statement_timeout=0, pooled=False)
    try:
        async with engine.begin() as conn:
            return await conn.run_sync(work)
    finally:
        await engine.dispose()


def alembic_config(script_location: str | Path, schema: str) -> Config:
    """An in-memory Alembic config for a service's migrations (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(script_location))
    config.attributes[SCHEMA] = validate_schema_name(schema)
    return config


async def _run_command(target: Target, script_location: str | Path, schema: str, action: Callable[[Config], T]) -> T:
    def work(connection: Connection) -> T:
        config = alembic_config(script_location, schema)
        config.attributes[CONNECTION] = connection
        return action(config)

    return await _with_connection(target, work)


async def upgrade(target: Target, script_location: str | Path, schema: str, revision: str = "head") -> None:
    """Migrate `schema` up to `revision` (creating the schema first if needed)."""
    await _run_command(target, script_location, schema, lambda config: command.upgrade(config, revision))


async def downgrade(target: Target, script_location: str | Path, schema: str, revision: str = "base") -> None:
    """Migrate `schema` down to `revision` (`base`: undo every migration; the schema itself stays)."""
    await _run_command(target, script_location, schema, lambda config: command.downgrade(config, revision))


async def current_revisions(target: Target, schema: str) -> tuple[str, ...]:
    """The revisions recorded in `schema`'s version table (empty when nothing was ever applied)."""
    validate_schema_name(schema)

    def read(connection: Connection) -> tuple[str, ...]:
        context = MigrationContext.configure(
            connection, opts={"version_table": VERSION_TABLE, "version_table_schema": schema}
        )
        return tuple(context.get_current_heads())

    return await _with_connection(target, read)


async def current_revision(target: Target, schema: str) -> str | None:
    """The single revision `schema` is at, or None before the first migration."""
    revisions = await current_revisions(target, schema)
    if len(revisions) > 1:
        raise SchemaMismatchError(f"schema {schema!r} has several current revisions: {', '.join(revisions)}")
    return revisions[0] if revisions else None


def head_revisions(script_location: str | Path) -> tuple[str, ...]:
    """The head revision(s) of the migrations this code ships."""
    return tuple(ScriptDirectory(str(script_location)).get_heads())


def _known(script: ScriptDirectory, revision: str) -> bool:
    try:
        return script.get_revision(revision) is not None
    except Exception:
        return False


async def check_schema_current(
    target: Target, script_location: str | Path, schema: str, *, service: str | None = None
) -> str:
    """Refuse to run on a schema this code does not know: `SchemaMismatchError` unless `schema` is at head.

    Returns the (single) head revision when the database matches.
    """
    script = ScriptDirectory(str(script_location))
    heads = tuple(script.get_heads())
    current = await current_revisions(target, schema)
    migrate = f"python -m opsbus.{service or schema} migrate"
    want = ", ".join(heads)
    if not current:
        raise SchemaMismatchError(
            f"database schema {schema!r} has no migrations applied; this code needs revision {want}. "
            f"Run `{migrate}` before starting the service."
        )
    unknown = [revision for revision in current if not _known(script, revision)]
    if unknown:
        raise SchemaMismatchError(
            f"database schema {schema!r} is at revision {', '.join(unknown)}, which this version of the code "
            f"does not know (a newer release migrated it?); this code needs {want}. Deploy the release that "
            f"matches the database, or downgrade it with that release's `{migrate} downgrade {want}`."
        )
    if set(current) != set(heads):
        raise SchemaMismatchError(
            f"database schema {schema!r} is at revision {', '.join(current)}; this code needs {want}. "
            f"Run `{migrate}` before starting the service."
        )
    return heads[0] if len(heads) == 1 else want


# --- the `migrate` entrypoint -----------------------------------------------------------------------
def migrate_main(
    argv: Sequence[str],
    *,
    settings: DatabaseSettings,
    script_location: str | Path,
    schema: str,
    service: str | None = None,
) -> int:
    """`python -m opsbus.<service> migrate ...`: call from the service's `__main__` with its settings.

    Subcommands: `upgrade [REV]` (the default, to head), `downgrade REV` (`base` undoes all),
    `current`, `check` (exit 1 unless at head), `history`, `revision -m MSG [--autogenerate]`.
    """
    name = service or schema
    parser = argparse.ArgumentParser(prog=f"python -m opsbus.{name} migrate", description=f"{name} schema migrations")
    sub = parser.add_subparsers(dest="action")
    up = sub.add_parser("upgrade", help="migrate up (default: to head)")
    up.add_argument("revision", nargs="?", default="head")
    down = sub.add_parser("downgrade", help="migrate down to REV (base: undo every migration)")
    down.add_argument("revision")
    sub.add_parser("current", help="print the revision the database is at")
    sub.add_parser("check", help="exit 1 unless the database is at this code's head")
    sub.add_parser("history", help="list the migrations this code ships")
    rev = sub.add_parser("revision", help="create a new migration file")
    rev.add_argument("-m", "--message", required=True)
    rev.add_argument("--autogenerate", action="store_true", help="diff the models against the database")
    args = parser.parse_args(list(argv))
    action = args.action or "upgrade"
    out = sys.stdout

    async def run() -> int:
        if action == "upgrade":
            revision = getattr(args, "revision", "head")
            log.info("migrating schema %s of %s up to %s", schema, safe_url(settings), revision)
            await upgrade(settings, script_location, schema, revision)
            out.write(f"{schema}: at {await current_revision(settings, schema)}\n")
        elif action == "downgrade":
            log.info("migrating schema %s of %s down to %s", schema, safe_url(settings), args.revision)
            await downgrade(settings, script_location, schema, args.revision)
            out.write(f"{schema}: at {await current_revision(settings, schema) or 'base'}\n")
        elif action == "current":
            out.write(f"{await current_revision(settings, schema) or 'base'}\n")
        elif action == "check":
            try:
                head = await check_schema_current(settings, script_location, schema, service=name)
            except SchemaMismatchError as exc:
                sys.stderr.write(f"{exc}\n")
                return 1
            out.write(f"{schema}: at head {head}\n")
        elif action == "history":
            for script in ScriptDirectory(str(script_location)).walk_revisions():
                out.write(f"{script.revision} <- {script.down_revision or 'base'}: {script.doc}\n")
        elif action == "revision":
            autogenerate = bool(args.autogenerate)
            if autogenerate:
                await _run_command(
                    settings,
                    script_location,
                    schema,
                    lambda config: command.revision(config, message=args.message, autogenerate=True),
                )
            else:
                command.revision(alembic_config(script_location, schema), message=args.message)
        return 0

    return asyncio.run(run())
