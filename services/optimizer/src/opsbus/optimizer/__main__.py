"""`python -m opsbus.optimizer [run|migrate ...]`."""

from __future__ import annotations

import sys

from opsbus.common.runtime import Runtime, run_service
from opsbus.common.settings import load
from opsbus.common.store import migrate_main
from opsbus.optimizer.settings import OptimizerSettings
from opsbus.optimizer.store import MIGRATIONS, SCHEMA


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    settings = load(OptimizerSettings)
    if args and args[0] == "migrate":
        return migrate_main(args[1:], settings=settings.database, script_location=MIGRATIONS, schema=SCHEMA)
    if args and args[0] not in ("run",):
        sys.stderr.write("usage: python -m opsbus.optimizer [run|migrate ...]\n")
        return 2
    from opsbus.optimizer.service import setup  # noqa: PLC0415

    async def start(rt: Runtime[OptimizerSettings]) -> None:
        await setup(rt)

    return run_service("optimizer", settings, start)


if __name__ == "__main__":
    sys.exit(main())
