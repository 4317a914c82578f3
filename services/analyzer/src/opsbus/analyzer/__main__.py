"""`python -m opsbus.analyzer [run|migrate ...]`: run the analyzer, or migrate its schema."""

from __future__ import annotations

import sys

from opsbus.analyzer.settings import AnalyzerSettings
from opsbus.analyzer.store import MIGRATIONS, SCHEMA
from opsbus.common.runtime import Runtime, run_service
from opsbus.common.settings import load
from opsbus.common.store import migrate_main


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    settings = load(AnalyzerSettings)
    if args and args[0] == "migrate":
        return migrate_main(args[1:], settings=settings.database, script_location=MIGRATIONS, schema=SCHEMA)
    if args and args[0] not in ("run",):
        sys.stderr.write("usage: python -m opsbus.analyzer [run|migrate ...]\n")
        return 2
    from opsbus.analyzer.service import setup  # noqa: PLC0415

    async def start(rt: Runtime[AnalyzerSettings]) -> None:
        await setup(rt)

    return run_service("analyzer", settings, start)


if __name__ == "__main__":
    sys.exit(main())
