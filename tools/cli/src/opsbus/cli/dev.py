"""`opsbus dev up|down|status`: the whole platform on this machine, the stack `make demo` runs.

The stack itself is `python -m opsbus.demo` (tools/demo in the opsbus checkout): the sandbox cluster, nats-server,
PostgreSQL, Jaeger and the seven services. These commands run it with the same Python as this CLI, so they work from
the checkout after `make setup` (`uv run opsbus dev up`); an installed CLI without the checkout says so.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from opsbus.cli.console import Output, emit, err
from opsbus.cli.sandbox import sandbox_script
from opsbus.cli.stackprobe import DOWN, NOT_RUNNING, NOT_USED, READY, STARTING, UP, Status, all_ready, check, summary

app = typer.Typer(
    help="The whole platform on this machine (what `make demo` runs): sandbox cluster, NATS, PostgreSQL, Jaeger "
    "and the seven services.\n\nRun from the opsbus checkout after `make setup`: `uv run opsbus dev up`.",
    no_args_is_help=True,
)
_NO_DEMO = (
    "the local stack (the opsbus.demo package) is not installed next to this CLI: run `make setup` in the opsbus "
    "checkout, then `uv run opsbus dev ...` from it"
)
_COLOURS = {READY: "green", UP: "yellow", STARTING: "yellow", DOWN: "red", NOT_RUNNING: "dim", NOT_USED: "dim"}


def _demo_command(*args: str) -> list[str]:
    if importlib.util.find_spec("opsbus.demo") is None:
        err.print(f"[bold red]error[/]: {_NO_DEMO}")
        raise typer.Exit(2)
    return [sys.executable, "-m", "opsbus.demo", *args]


@app.command()
def up(
    gateway_port: Annotated[
        int, typer.Option(help="Port of the gateway API on 127.0.0.1 (0: any free port).", min=0, max=65535)
    ] = 8000,
) -> None:
    """Start everything and stay in the foreground; Ctrl-C (or `opsbus dev down` elsewhere) stops it all.

    Shows its progress, then the gateway URL, an admin API key and three commands to try. Starts the sandbox
    cluster if it is not up (and stops it again at the end only then). Every run starts from a fresh bus and
    database; the logs of every part are in the directory it prints.
    """
    proc = subprocess.Popen(_demo_command("up", "--gateway-port", str(gateway_port)))  # noqa: S603 - our module
    while True:
        try:
            code = proc.wait()
            break
        except KeyboardInterrupt:
            # the stack got the same Ctrl-C and is stopping its parts in order: wait for it, never kill it midway
            continue
    raise typer.Exit(code)


@app.command()
def down() -> None:
    """Stop a stack started by `opsbus dev up` (or `make demo`) in another terminal, in order, and wait for it."""
    raise typer.Exit(subprocess.call(_demo_command("down")))  # noqa: S603 - our own interpreter and module


def _state() -> dict[str, Any]:
    answer = subprocess.run(_demo_command("state"), capture_output=True, text=True, timeout=120, check=False)  # noqa: S603
    if answer.returncode != 0:
        err.print(f"[bold red]error[/]: could not read the stack's state:\n{answer.stderr.strip()[-2000:]}")
        raise typer.Exit(2)
    state: dict[str, Any] = json.loads(answer.stdout)
    return state


def _sandbox() -> Status:
    script = sandbox_script()
    try:
        answer = subprocess.run(  # noqa: S603 - our own script, fixed arguments
            ["bash", str(script), "status"],  # noqa: S607 - bash from PATH, as make uses it
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Status("sandbox", UP, "", "`sandbox.sh status` did not answer within 60 s")
    said = next((line for line in answer.stdout.splitlines() if line.startswith("cluster:")), "")
    said = said.removeprefix("cluster:").strip() or (answer.stderr.strip().splitlines() or ["no answer"])[-1]
    if answer.returncode == 0:
        up_part, _, server = said.partition(", server ")
        return Status("sandbox", READY, server, up_part)
    return Status("sandbox", DOWN, "", f"{said} (start it: opsbus sandbox up)")


@app.command()
def status(output: Output = "table") -> None:
    """Show each part of the local stack and whether it is up and ready.

    ready: doing its job (a service's /readyz answers 200, NATS and PostgreSQL accept connections, Jaeger's
    query API answers). up: its process answers but is not ready yet. down: nothing answers where the stack said
    it listens. starting: the stack is still starting. not running: no stack runs. not used: this stack runs
    without it. Exit code 0 when every part
    in use is ready, 1 otherwise (scripts can wait on it); the sandbox is checked through
    deploy/sandbox/sandbox.sh (OPSBUS_SANDBOX_SCRIPT, OPSBUS_SANDBOX_HOME).
    """
    state = _state()
    statuses = check(state.get("stack"), state.get("phase", "stopped"), _sandbox())
    stack = state.get("stack") or {}
    if output == "json":
        emit(
            {
                "phase": state.get("phase"),
                "pid": state.get("pid"),
                "gateway_url": stack.get("gateway_url"),
                "logs": stack.get("logs"),
                "ready": all_ready(statuses),
                "components": [s.as_json() for s in statuses],
            },
            output,
            None,
        )
    else:
        phase = state.get("phase", "stopped")
        title = f"local stack: {phase}" + (f" (pid {state['pid']}, logs in {stack['logs']})" if stack else "")
        table = Table("component", "state", "address", "detail", title=title, title_justify="left")
        for s in statuses:
            colour = _COLOURS.get(s.state, "white")
            table.add_row(s.name, f"[{colour}]{s.state}[/]", s.address, s.detail)
        emit(None, output, table)
        err.print(summary(statuses))
    raise typer.Exit(0 if all_ready(statuses) else 1)
