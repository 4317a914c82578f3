"""`python -m opsbus.watcher [run]`: run the watcher until SIGTERM."""

from __future__ import annotations

import sys

from opsbus.common.runtime import run_service
from opsbus.common.settings import load
from opsbus.watcher.service import setup
from opsbus.watcher.settings import WatcherSettings


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] not in {"run"}:
        print(f"usage: python -m opsbus.watcher [run]  (unknown command {args[0]!r})", file=sys.stderr)
        return 2
    settings = load(WatcherSettings)
    return run_service("watcher", settings, setup)


if __name__ == "__main__":
    sys.exit(main())
