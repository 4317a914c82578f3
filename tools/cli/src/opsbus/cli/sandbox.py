"""`opsbus sandbox ...`: the local Kubernetes sandbox, through the repository's deploy/sandbox/sandbox.sh."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Annotated

import typer

from opsbus.cli.console import err

app = typer.Typer(help="The local Kubernetes sandbox (a real control plane with fake nodes on 127.0.0.1).")


def sandbox_script() -> Path:
    """deploy/sandbox/sandbox.sh of the checkout (OPSBUS_SANDBOX_SCRIPT overrides); exits 2 when not found."""
    explicit = os.environ.get("OPSBUS_SANDBOX_SCRIPT")
    if explicit:
        return Path(explicit)
    for base in (Path.cwd(), *Path.cwd().parents, *Path(__file__).resolve().parents):
        candidate = base / "deploy" / "sandbox" / "sandbox.sh"
        if candidate.exists():
            return candidate
    err.print(
        "[red]error[/]: deploy/sandbox/sandbox.sh not found: run inside the opsbus repository "
        "or set OPSBUS_SANDBOX_SCRIPT"
    )
    raise typer.Exit(2)


def _sandbox(*args: str) -> None:
    script = sandbox_script()
    code = subprocess.call(["bash", str(script), *args])  # noqa: S603, S607 - our own script, fixed arguments
    raise typer.Exit(code)


@app.command("up")
def sandbox_up() -> None:
    """Start the sandbox cluster on 127.0.0.1 (builds the control plane from source the first time)."""
    _sandbox("up")


@app.command("down")
def sandbox_down() -> None:
    """Stop the sandbox cluster."""
    _sandbox("down")


@app.command("status")
def sandbox_status() -> None:
    """Show whether the sandbox runs, its nodes and pods."""
    _sandbox("status")


@app.command("chaos")
def sandbox_chaos(
    fault: Annotated[str, typer.Argument(help="crashloop, oomkilled, imagepull, unschedulable, notready...")],
    target: Annotated[str, typer.Argument(help="pod/NAME, deployment/NAME or node/NAME.")],
    namespace: Annotated[str, typer.Argument(help="Namespace of the target.")] = "default",
) -> None:
    """Inject a fault into the sandbox so the watcher, healer and notifier have something to do."""
    _sandbox("chaos", fault, target, namespace)


@app.command("heal")
def sandbox_heal(
    fault: Annotated[str, typer.Argument(help="The fault injected with `opsbus sandbox chaos`.")],
    target: Annotated[str, typer.Argument(help="The same target.")],
    namespace: Annotated[str, typer.Argument(help="Namespace of the target.")] = "default",
) -> None:
    """Remove a fault injected with `opsbus sandbox chaos`."""
    _sandbox("heal", fault, target, namespace)
