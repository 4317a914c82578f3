"""`python -m opsbus.notifier [run|migrate ...]`: run the notifier, or migrate its schema."""

from __future__ import annotations

import sys

from opsbus.common.runtime import Runtime, run_service
from opsbus.common.settings import load
from opsbus.common.store import migrate_main
from opsbus.notifier import store
from opsbus.notifier.service import SERVICE, setup
from opsbus.notifier.settings import NotifierSettings


async def _setup(rt: Runtime[NotifierSettings]) -> None:
    await setup(rt)


def main(argv: list[str]) -> int:
    settings = load(NotifierSettings)
    command, rest = (argv[0], argv[1:]) if argv else ("run", [])
    if command == "migrate":
        return migrate_main(
            rest, settings=settings.database, script_location=store.MIGRATIONS, schema=store.SCHEMA, service=SERVICE
        )
    if command == "run":
        return run_service(SERVICE, settings, _setup)
    sys.stderr.write("usage: python -m opsbus.notifier [run|migrate ...]\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
