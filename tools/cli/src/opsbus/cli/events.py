"""`opsbus events PATTERN`: past events from the streams, oldest first, page after page."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer

from opsbus.cli.console import Key, Output, Url, call, err, gateway, out
from opsbus.cli.durations import seconds


def since_param(text: str) -> str:
    """`1h` (that long ago) or an ISO 8601 time with its offset."""
    if text[:1].isdigit() and text[-1:] in {"s", "m", "h", "d"}:
        return (datetime.now(UTC) - timedelta(seconds=seconds(text))).isoformat()
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        err.print(f"[red]error[/]: --since {text!r}: give 30m, 2h, 1d or a time with offset (2026-11-22T10:00:00Z)")
        raise typer.Exit(2)
    return when.isoformat()


def describe(event: dict[str, Any] | None) -> str:
    data = (event or {}).get("data") or {}
    return str(data.get("alertname") or data.get("action") or data.get("state") or data.get("reason") or "")


def events(  # noqa: PLR0917 - typer: one parameter per option
    pattern: Annotated[str, typer.Argument(help="Subject pattern, family first: alert.>, deploy.*.*.payments.")],
    since: Annotated[str | None, typer.Option(help="From this long ago (30m, 2h, 1d) or this time.")] = None,
    after: Annotated[int | None, typer.Option(help="After this event id (stream sequence).")] = None,
    limit: Annotated[int, typer.Option(help="At most this many events.")] = 100,
    url: Url = None,
    api_key: Key = None,
    output: Output = "table",
) -> None:
    """Past events in your namespaces, oldest first (default: the last hour). `opsbus tail` follows live."""
    gw = gateway(url, api_key)
    params: dict[str, Any] = {"subject": pattern}
    if after is not None:
        params["after"] = after
    elif since is not None:
        params["since"] = since_param(since)
    shown = 0
    while shown < limit:
        page = call(gw, "GET", "/v1/events", params={**params, "limit": min(1000, limit - shown)})
        for e in page["events"]:
            if output == "json":
                sys.stdout.write(json.dumps(e, default=str) + "\n")
            else:
                body = e["event"] or {}
                out.print(
                    f"[dim]{e['sequence']:>8}[/] {str(e['time'])[:19]} [bold]{body.get('type', '?')}[/] "
                    f"{body.get('subject', e['subject'])} {describe(body)}",
                    highlight=False,
                )
        shown += len(page["events"])
        if not page["more"] or page["next_after"] is None:
            break
        params = {"subject": pattern, "after": page["next_after"]}
    if output != "json" and shown == 0:
        err.print("no events")
