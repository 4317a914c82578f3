"""What every gateway command shares: the `--url`/`--api-key`/`--output` options, calling the gateway with
its problem+json turned into a short explanation and a non-zero exit, and printing a table or JSON."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from opsbus.cli.client import Gateway, GatewayError
from opsbus.cli.settings import ConfigError

out = Console()
err = Console(stderr=True)

Url = Annotated[str | None, typer.Option("--url", envvar="OPSBUS_URL", help="Gateway base URL.", show_default=False)]
Key = Annotated[str | None, typer.Option("--api-key", envvar="OPSBUS_API_KEY", help="API key.", show_default=False)]
Output = Annotated[str, typer.Option("--output", "-o", help="table (for people) or json (for scripts).")]


def gateway(url: str | None, key: str | None) -> Gateway:
    try:
        return Gateway.resolve(url, key)
    except ConfigError as exc:
        err.print(f"[bold red]error[/]: {exc}")
        raise typer.Exit(2) from None


def explain(exc: GatewayError) -> None:
    err.print(f"[bold red]error[/]: {exc.title} ({exc.status or 'no answer'}): {exc.detail}")
    for e in exc.errors:
        where = e.get("pointer") or e.get("parameter") or ""
        err.print(f"  {where}: {e.get('detail')}")
    if exc.status == 401:
        err.print("  check OPSBUS_API_KEY or run `opsbus login` (expired or revoked keys are refused)")
    if exc.retry_after:
        err.print(f"  the gateway asks to retry in {exc.retry_after}s")


def call(gw: Gateway, method: str, path: str, **kwargs: Any) -> Any:
    try:
        return gw.request(method, path, **kwargs)
    except GatewayError as exc:
        explain(exc)
        raise typer.Exit(1) from None


def emit(data: Any, output: str, table: Table | None) -> None:
    if output == "json" or table is None:
        out.print_json(json.dumps(data, default=str))
    else:
        out.print(table)
