"""`python -m opsbus.healer [run|migrate ...]`."""

from __future__ import annotations

import sys

from opsbus.common.runtime import Runtime, run_service
from opsbus.common.settings import load
from opsbus.common.store import migrate_main
from opsbus.healer.settings import HealerSettings
from opsbus.healer.store import MIGRATIONS, SCHEMA


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    settings = load(HealerSettings)
    if args and args[0] == "migrate":
        return migrate_main(args[1:], settings=settings.database, script_location=MIGRATIONS, schema=SCHEMA)
    if args and args[0] not in ("run",):
        sys.stderr.write("usage: python -m opsbus.healer [run|migrate ...]\n")
        return 2
    from opsbus.healer.service import setup  # noqa: PLC0415

    async def start(rt: Runtime[HealerSettings]) -> None:
        await setup(rt)

    return run_service("healer", settings, start)


if __name__ == "__main__":
    sys.exit(main())
