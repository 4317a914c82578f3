"""Durations as people type them: `90s`, `30m`, `2h`, `7d` (or plain seconds)."""

from __future__ import annotations

import typer

from opsbus.cli.console import err

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def seconds(text: str) -> float:
    try:
        value = float(text[:-1]) * _UNITS[text[-1]] if text and text[-1] in _UNITS else float(text)
    except (ValueError, IndexError):
        value = -1.0
    if value <= 0:
        err.print(f"[red]error[/]: duration {text!r}: use e.g. 30m, 2h, 1d")
        raise typer.Exit(2)
    return value
