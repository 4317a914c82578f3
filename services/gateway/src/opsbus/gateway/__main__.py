"""`python -m opsbus.gateway [run|migrate ...|create-admin-key ...]`.

`create-admin-key` is the only way to get the first key: there is no default key and no default password.
It prints the token once; store it in a secret manager, then create scoped keys through `POST /v1/keys`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime, timedelta

import uvloop

from opsbus.common.runtime import run_service
from opsbus.common.settings import load
from opsbus.common.store import Database, check_schema_current, migrate_main
from opsbus.gateway import store
from opsbus.gateway.domain.access import ALL, Role
from opsbus.gateway.keystore import KeyStore
from opsbus.gateway.service import SERVICE, setup
from opsbus.gateway.settings import GatewaySettings


async def create_admin_key(settings: GatewaySettings, name: str, ttl_days: int | None) -> str:
    db = Database.from_settings(settings.database, application_name="opsbus-gateway-admin")
    try:
        await check_schema_current(db.engine, store.MIGRATIONS, store.SCHEMA, service=SERVICE)
        keys = KeyStore(db)
        expires = datetime.now(UTC) + timedelta(days=ttl_days) if ttl_days else None
        record, token = await keys.create(
            name=name,
            role=Role.ADMIN,
            namespaces=[ALL],
            clusters=[ALL],
            created_by="cli:create-admin-key",
            expires_at=expires,
        )
        sys.stderr.write(f"created admin key {record.id} ({name}); the token below is shown once:\n")
        return token
    finally:
        await db.close()


def main(argv: list[str]) -> int:
    settings = load(GatewaySettings)
    command, rest = (argv[0], argv[1:]) if argv else ("run", [])
    if command == "migrate":
        return migrate_main(
            rest, settings=settings.database, script_location=store.MIGRATIONS, schema=store.SCHEMA, service=SERVICE
        )
    if command == "run":
        # uvloop: the HTTP API's socket reads/writes and task switches cost a fraction of the default loop's
        # (asyncpg and nats-py support it)
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        return run_service(SERVICE, settings, setup)
    if command == "create-admin-key":
        parser = argparse.ArgumentParser(prog="python -m opsbus.gateway create-admin-key")
        parser.add_argument("--name", default="bootstrap-admin", help="what the key is for")
        parser.add_argument("--ttl-days", type=int, default=90, help="expiry in days (0: never)")
        args = parser.parse_args(rest)
        token = asyncio.run(create_admin_key(settings, args.name, args.ttl_days or None))
        sys.stdout.write(token + "\n")
        return 0
    sys.stderr.write("usage: python -m opsbus.gateway [run|migrate ...|create-admin-key [--name N] [--ttl-days D]]\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
