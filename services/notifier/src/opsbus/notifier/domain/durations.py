"""Prometheus-style durations (`30s`, `5m`, `4h`, `1h30m`, `1d`, `250ms`) as used in Alertmanager config."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+)(ms|s|m|h|d|w)")
_WHOLE = re.compile(r"^(?:\d+(?:ms|s|m|h|d|w))+$")


def parse_duration(text: str) -> timedelta:
    """`5m` -> 5 minutes; raises ValueError naming the text when it is not a duration (`0` alone is allowed)."""
    value = text.strip()
    if value == "0":
        return timedelta(0)
    if not _WHOLE.match(value):
        raise ValueError(f"invalid duration {text!r}: use e.g. 30s, 5m, 4h, 1h30m")
    return timedelta(seconds=sum(int(n) * _UNITS[u] for n, u in _PART.findall(value)))


def format_duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds == 0:
        millis = round(delta.total_seconds() * 1000)
        return f"{millis}ms" if millis else "0s"
    out = ""
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            out += f"{seconds // size}{unit}"
            seconds %= size
    return out
