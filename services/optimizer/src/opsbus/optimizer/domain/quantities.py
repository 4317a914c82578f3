"""Kubernetes quantity strings <-> millicores and bytes (pure)."""

from __future__ import annotations

import math

_BIN = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DEC = {"n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}


def parse_quantity(q: str | int | float) -> float:
    """A quantity in base units (cores, bytes)."""
    if isinstance(q, int | float):
        return float(q)
    s = q.strip()
    for suffix, factor in _BIN.items():
        if s.endswith(suffix):
            return float(s[: -len(suffix)]) * factor
    if s and s[-1] in _DEC:
        return float(s[:-1]) * _DEC[s[-1]]
    return float(s)


def cpu_millicores(q: str | int | float | None) -> int | None:
    return None if q is None else math.ceil(parse_quantity(q) * 1000 - 1e-6)


def memory_bytes(q: str | int | float | None) -> int | None:
    return None if q is None else math.ceil(parse_quantity(q) - 1e-6)


def format_cpu(millicores: int) -> str:
    return f"{millicores}m"


def format_memory(n: int) -> str:
    """Whole Mi when it is one (readable in `kubectl get -o yaml`), else bytes."""
    return f"{n // 2**20}Mi" if n % 2**20 == 0 else str(n)
