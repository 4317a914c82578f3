"""`opsbus secrets put|list|delete|rotate`: receiver secrets the notifier stores encrypted (admin), referenced from
the routes as `secretRef: <name>`.

A value is read from stdin or a file, never from the command line, so it stays out of shell history and `ps`; it is
never printed, and the gateway never returns it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from opsbus.cli.console import Key, Output, Url, call, emit, err, gateway, out

app = typer.Typer(help="Receiver secrets (admin): webhook URLs, routing keys, passwords the routes refer to by name.")
Name = Annotated[str, typer.Argument(help="The secret's name, as in `secretRef: <name>` (a-z, 0-9, - . _).")]


def read_value(from_file: Path | None) -> str:
    """The value from the file, else stdin; one trailing newline dropped (`echo ... |` and editors add it)."""
    if from_file is not None:
        try:
            text = from_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            err.print(f"[bold red]error[/]: cannot read {from_file}: {exc}")
            raise typer.Exit(2) from None
    else:
        if sys.stdin.isatty():
            err.print("type the value, then Ctrl-D (it is not echoed back anywhere else)")
        text = sys.stdin.read()
    value = text.removesuffix("\n").removesuffix("\r")
    if not value:
        err.print("[bold red]error[/]: the value is empty: give it on stdin or with --from-file")
        raise typer.Exit(2)
    return value


@app.command("put")
def put(  # noqa: PLR0917 - typer: one parameter per option
    name: Name,
    from_file: Annotated[
        Path | None, typer.Option("--from-file", "-f", help="Read the value from this file (default: stdin).")
    ] = None,
    comment: Annotated[str | None, typer.Option(help="Why (kept in the audit trail).")] = None,
    url: Url = None,
    api_key: Key = None,
    output: Output = "table",
) -> None:
    """Store or replace a secret; the value comes from stdin or --from-file, never from an argument."""
    body: dict[str, str] = {"value": read_value(from_file)}
    if comment is not None:
        body["comment"] = comment
    answer = call(gateway(url, api_key), "PUT", f"/v1/receiver-secrets/{name}", json=body)
    if output == "json":
        emit(answer, output, None)
        return
    out.print(f"secret [bold]{answer['name']}[/] stored (key {answer['key_id']}); refer to it as secretRef: {name}")


@app.command("list")
def list_(url: Url = None, api_key: Key = None, output: Output = "table") -> None:
    """Stored secrets: names, the key each is encrypted under, who changed it when. Never values."""
    answer = call(gateway(url, api_key), "GET", "/v1/receiver-secrets")
    table = Table("name", "key id", "updated", "by", "created")
    for s in answer["secrets"]:
        table.add_row(s["name"], s["key_id"], str(s["updated_at"])[:19], s["updated_by"], str(s["created_at"])[:19])
    emit(answer, output, table)


@app.command("delete")
def delete(name: Name, url: Url = None, api_key: Key = None) -> None:
    """Delete a secret (refused while the routes in force refer to it)."""
    call(gateway(url, api_key), "DELETE", f"/v1/receiver-secrets/{name}")
    out.print(f"secret {name} deleted")


@app.command("rotate")
def rotate(url: Url = None, api_key: Key = None, output: Output = "table") -> None:
    """Re-encrypt every secret under the notifier's first key (after adding a new key; then drop the old one)."""
    answer = call(gateway(url, api_key), "POST", "/v1/receiver-secrets/rotate")
    if output == "json":
        emit(answer, output, None)
        return
    out.print(f"{answer['total']} secret(s) now under key {answer['key_id']} ({answer['rotated']} moved from another)")
