"""`opsbus tail PATTERN`: follow the gateway's event stream, one line per event, without trusting what the bus
holds. Anyone with publish rights on a subject chooses its bytes: a frame that is not a CloudEvent (the
gateway's `event: undecodable`, or anything an older gateway copied through) becomes a one-line notice with
its sequence on stderr, and the tail goes on. Nothing from an event is read as terminal markup.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.markup import escape

from opsbus.cli.client import GatewayError
from opsbus.cli.console import Key, Output, Url, err, explain, gateway, out
from opsbus.cli.events import describe

UNDECODABLE = "undecodable"


def cloud_event(frame: dict[str, str]) -> tuple[dict[str, Any] | None, str]:
    """The CloudEvent a frame carries, or None and why not (for the notice)."""
    try:
        body = json.loads(frame.get("data", ""))
    except ValueError:
        return None, "not JSON"
    if frame.get("event") == UNDECODABLE:
        reason = body.get("reason") if isinstance(body, dict) else None
        return None, str(reason or "undecodable")
    if not isinstance(body, dict) or not all(isinstance(body.get(k), str) for k in ("type", "id", "specversion")):
        return None, "not a CloudEvent"
    return body, ""


def notice(frame: dict[str, str], reason: str) -> str:
    sequence = frame.get("id", "?")
    return f"event {sequence if sequence.isdigit() else '?'}: skipped, {reason}"


def line(frame: dict[str, str], event: dict[str, Any]) -> str:
    """One line for people: sequence, time, type, subject and what happened."""

    def text(key: str) -> str:
        return escape(str(event.get(key) or ""))

    what = escape(describe(event)) if isinstance(event.get("data"), dict) else ""
    sequence = escape(frame.get("id", ""))
    return f"[dim]{sequence:>8}[/] {text('time')[:19]} [bold]{text('type')}[/] {text('subject')} {what}"


def tail(
    pattern: Annotated[str, typer.Argument(help="Subject pattern, family first: alert.>, deploy.*.*.payments.")],
    since: Annotated[str | None, typer.Option(help="Resume after this event id (stream sequence).")] = None,
    url: Url = None,
    api_key: Key = None,
    output: Output = "table",
) -> None:
    """Follow events live (Ctrl-C to stop). Reconnects after a drop without losing events."""
    gw = gateway(url, api_key)
    try:
        for frame in gw.stream("/v1/events/stream", {"pattern": pattern}, since):
            event, reason = cloud_event(frame)
            if event is None:
                err.print(escape(notice(frame, reason)), highlight=False)
            elif output == "json":
                sys.stdout.write(json.dumps(event) + "\n")
                sys.stdout.flush()
            else:
                out.print(line(frame, event), highlight=False)
    except GatewayError as exc:
        explain(exc)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
