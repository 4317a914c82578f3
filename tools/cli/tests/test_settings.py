"""The login file: owner-only permissions, refused when others may read it, precedence of options over it,
and the stored key never sent to another gateway."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from opsbus.cli.settings import DEFAULT_URL, ConfigError, Login, load, resolve, save


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cfg" / "opsbus" / "config.json"
    monkeypatch.setenv("OPSBUS_CONFIG", str(path))
    return path


def test_saved_login_is_readable_by_its_owner_only(config: Path) -> None:
    save(Login("https://gw.example", "opsb_x"))
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert stat.S_IMODE(config.parent.stat().st_mode) == 0o700
    assert load() == Login("https://gw.example", "opsb_x")
    save(Login("https://gw2.example", "opsb_y"))  # replaced in place, still 0600
    assert load() == Login("https://gw2.example", "opsb_y")
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert [p.name for p in config.parent.iterdir()] == ["config.json"]


def test_a_file_others_can_read_is_refused_with_the_fix(config: Path) -> None:
    save(Login("https://gw.example", "opsb_x"))
    config.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load()


def test_a_broken_file_says_to_log_in_again(config: Path) -> None:
    config.parent.mkdir(parents=True)
    config.write_text("{not json")
    config.chmod(0o600)
    with pytest.raises(ConfigError, match="opsbus login"):
        load()


def test_options_win_and_the_stored_key_goes_only_to_its_gateway(config: Path) -> None:
    assert resolve(None, None) == Login(DEFAULT_URL, None)
    save(Login("https://gw.example/", "opsb_stored"))
    assert resolve(None, None) == Login("https://gw.example", "opsb_stored")
    assert resolve(None, "opsb_given") == Login("https://gw.example", "opsb_given")
    assert resolve("https://other.example", None) == Login("https://other.example", None)
    assert resolve("https://gw.example", None) == Login("https://gw.example", "opsb_stored")
