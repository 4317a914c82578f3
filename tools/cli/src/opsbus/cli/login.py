"""`opsbus login`, `opsbus logout`, `opsbus whoami`: remember which gateway and key to use."""

from __future__ import annotations

from typing import Annotated

import typer

from opsbus.cli.client import Gateway
from opsbus.cli.console import Key, Output, Url, call, emit, err, gateway, out
from opsbus.cli.settings import Login, config_path, forget, save


def login(
    url: Annotated[str, typer.Option("--url", help="The gateway's base URL, e.g. https://opsbus.example.com.")],
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar="OPSBUS_API_KEY",
            help="The key (opsb_...); asked for without echo when not given.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Check an API key against the gateway and remember both, readable by you only (mode 0600).

    Later commands use them when neither --url/--api-key nor OPSBUS_URL/OPSBUS_API_KEY is given.
    """
    key = api_key or typer.prompt("API key", hide_input=True)
    if not key.startswith("opsb_"):
        err.print("[red]error[/]: an opsbus API key starts with `opsb_` (ask an admin for one: `opsbus keys create`)")
        raise typer.Exit(2)
    gw = Gateway(url=url.rstrip("/"), key=key)
    who = call(gw, "GET", "/v1/whoami")
    path = save(Login(url=gw.url, api_key=key))
    out.print(f"logged in to {gw.url} as [bold]{who['kind']}:{who['id']}[/] ({_scope(who)}); saved in {path}")


def logout() -> None:
    """Forget the stored gateway URL and key."""
    path = config_path()
    out.print(f"removed {path}" if forget(path) else f"not logged in ({path} does not exist)")


def whoami(url: Url = None, api_key: Key = None, output: Output = "table") -> None:
    """Show who the gateway takes you for: your role, namespaces and clusters."""
    gw = gateway(url, api_key)
    who = call(gw, "GET", "/v1/whoami")
    if output == "json":
        emit(who, output, None)
    else:
        out.print(f"{who['kind']}:{who['id']} at {gw.url}: {_scope(who)}")


def _scope(who: dict[str, object]) -> str:
    def names(key: str) -> str:
        value = who.get(key)
        items = [str(v) for v in value] if isinstance(value, list) else []
        return "all" if "*" in items else ", ".join(items)

    return f"{who['role']} on namespaces {names('namespaces')} in clusters {names('clusters')}"
