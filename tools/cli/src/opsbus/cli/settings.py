"""Where the CLI finds the gateway and its API key, and `opsbus login`'s config file.

Precedence: `--url`/`--api-key` options, then `OPSBUS_URL`/`OPSBUS_API_KEY`, then the config file written by
`opsbus login`, then http://127.0.0.1:8000 without a key. The file is `$OPSBUS_CONFIG`, else
`$XDG_CONFIG_HOME/opsbus/config.json`, else `~/.config/opsbus/config.json`. It holds a secret, so it is
created with mode 0600 (its folder 0700) and replaced atomically; a file that others can read is refused
with the command that fixes it. This module never prints or logs the key.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

DEFAULT_URL = "http://127.0.0.1:8000"


class ConfigError(Exception):
    pass


@dataclass(frozen=True)
class Login:
    url: str
    api_key: str | None


def config_path() -> Path:
    explicit = os.environ.get("OPSBUS_CONFIG")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "opsbus" / "config.json"


def load(path: Path | None = None) -> Login | None:
    """The stored login, or None when there is none."""
    path = path or config_path()
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{path} holds an API key but others may read it: run `chmod 600 {path}`")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Login(url=str(data["url"]), api_key=data.get("api_key") or None)
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path} is not an opsbus login file ({exc}): run `opsbus login` again") from None


def save(login: Login, path: Path | None = None) -> Path:
    """Write `login` readable by its owner only; an existing file is replaced in one step."""
    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"url": login.url, "api_key": login.api_key}, f)
            f.write("\n")
        os.chmod(tmp, 0o600)  # the umask may have taken bits away, never added: make it exact
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def forget(path: Path | None = None) -> bool:
    path = path or config_path()
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def resolve(url: str | None, key: str | None) -> Login:
    """The gateway to talk to: options and environment first (typer merges the two), then the login file.

    The stored key is only sent to the stored URL: `--url` to another gateway never leaks it there."""
    stored = load() if url is None or key is None else None
    target = (url or (stored.url if stored else None) or DEFAULT_URL).rstrip("/")
    if key is None and stored is not None and stored.url.rstrip("/") == target:
        key = stored.api_key
    return Login(url=target, api_key=key)
