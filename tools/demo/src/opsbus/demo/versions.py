"""Where the pinned tool versions (`tools/versions.env`) and the build cache (`~/.cache/opsbus`) are."""

from __future__ import annotations

from pathlib import Path

from opsbus.common.testing.servers import cache_dir

__all__ = ["cache_dir", "pinned", "repo_root"]

_MARKER = Path("tools") / "versions.env"


def repo_root() -> Path:
    """The checkout this package runs from (the workspace installs it editable)."""
    for parent in Path(__file__).resolve().parents:
        if (parent / _MARKER).exists():
            return parent
    raise FileNotFoundError("tools/versions.env not found above the opsbus.demo package: run from the opsbus checkout")


def pinned(name: str) -> str:
    """The value of NAME in tools/versions.env."""
    for line in (repo_root() / _MARKER).read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#") and key.strip() == name:
            return value.strip()
    raise KeyError(f"{name} is not pinned in tools/versions.env")
