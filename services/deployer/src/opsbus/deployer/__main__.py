"""`python -m opsbus.deployer [run|migrate ...]`: run the service, or migrate its schema."""

from __future__ import annotations

import sys

from opsbus.common.runtime import run_service
from opsbus.common.settings import load
from opsbus.common.store import migrate_main
from opsbus.deployer.settings import DeployerSettings


def main(argv: list[str]) -> int:
    settings = load(DeployerSettings)
    command = argv[0] if argv else "run"
    if command == "migrate":
        from opsbus.deployer.store import MIGRATIONS, SCHEMA  # noqa: PLC0415

        return migrate_main(
            argv[1:], settings=settings.database, script_location=MIGRATIONS, schema=SCHEMA, service="deployer"
        )
    if command == "run":
        from opsbus.deployer.service import setup  # noqa: PLC0415

        return run_service("deployer", settings, setup)
    sys.stderr.write(f"usage: python -m opsbus.deployer [run|migrate ...]; unknown command {command!r}\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
