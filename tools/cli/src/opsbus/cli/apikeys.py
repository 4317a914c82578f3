"""`opsbus keys create|list|revoke`: API keys for people and systems (admin). A token is shown once."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from opsbus.cli.console import Key, Output, Url, call, emit, err, gateway, out
from opsbus.cli.durations import seconds

app = typer.Typer(help="API keys (admin): create one for a team or a CI system, list them, revoke one.")


@app.command("create")
def create(  # noqa: PLR0917 - typer: one parameter per option
    name: Annotated[str, typer.Argument(help="What the key is for, e.g. ci-payments.")],
    role: Annotated[str, typer.Option(help="viewer, operator or admin.")],
    namespace: Annotated[
        list[str], typer.Option("--namespace", "-n", help="A namespace it may act on; repeat; * for all.")
    ],
    cluster: Annotated[list[str], typer.Option(help="A cluster it may act on; repeat; * for all.")] = ["*"],  # noqa: B006
    ttl: Annotated[str | None, typer.Option(help="Expires after this long: 12h, 30d (default: never).")] = None,
    url: Url = None,
    api_key: Key = None,
    output: Output = "table",
) -> None:
    """Create a key. Its token is printed this once: put it in a secret store straight away."""
    body: dict[str, Any] = {"name": name, "role": role, "namespaces": namespace, "clusters": cluster}
    if ttl is not None:
        body["ttl_seconds"] = int(seconds(ttl))
    answer = call(gateway(url, api_key), "POST", "/v1/keys", json=body)
    if output == "json":
        emit(answer, output, None)
        return
    out.print(f"key [bold]{answer['id']}[/] ({answer['role']} on {', '.join(answer['namespaces'])})")
    out.print(answer["token"], soft_wrap=True, highlight=False)
    err.print("the token above is shown only this once")


@app.command("list")
def list_(url: Url = None, api_key: Key = None, output: Output = "table") -> None:
    """Keys within your scope (never their tokens)."""
    answer = call(gateway(url, api_key), "GET", "/v1/keys")
    table = Table("id", "name", "role", "namespaces", "clusters", "expires", "revoked", "created by")
    for k in answer["items"]:
        table.add_row(
            k["id"],
            k["name"],
            k["role"],
            ", ".join(k["namespaces"]),
            ", ".join(k["clusters"]),
            str(k["expires_at"] or "-")[:19],
            str(k["revoked_at"] or "-")[:19],
            k["created_by"],
        )
    emit(answer, output, table)


@app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (from `opsbus keys list`).")],
    url: Url = None,
    api_key: Key = None,
) -> None:
    """Revoke a key now: every request with it is refused from then on."""
    answer = call(gateway(url, api_key), "DELETE", f"/v1/keys/{key_id}")
    out.print(f"key {answer['id']} ({answer['name']}) revoked at {str(answer['revoked_at'])[:19]}")
