"""The gateway's OpenAPI document without a running gateway, for the console's generated client.

`make console-client` writes it to console/openapi.json and regenerates console/src/api/schema.d.ts with
openapi-typescript; `make console-check` fails when either is stale (like the event schemas). The document is
the one the gateway serves at `/v1/openapi.json` (same routes, same security schemes).

    python -m opsbus.gateway.openapi            # print it
    python -m opsbus.gateway.openapi --check F  # exit 1 when F differs
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from opsbus.gateway.app import DESCRIPTION, flat_routes
from opsbus.gateway.auth import document_api_key_scheme


def document() -> dict[str, Any]:
    app = FastAPI(title="opsbus gateway", version="0.1.0", description=DESCRIPTION, routes=flat_routes())
    document_api_key_scheme(app)
    return app.openapi()


def text() -> str:
    return json.dumps(document(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", type=Path, help="exit 1 when this file is not the current document")
    args = parser.parse_args(argv)
    if args.check is None:
        sys.stdout.write(text())
        return 0
    if not args.check.is_file() or args.check.read_text() != text():
        print(f"{args.check} is stale: run `make console-client`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
