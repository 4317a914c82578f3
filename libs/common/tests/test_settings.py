"""Settings come from OPSBUS_* variables, nest with `__`, and refuse placeholder secrets outside development."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from opsbus.common.settings import Environment, ServiceSettings, load


def test_nested_groups_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSBUS_NATS__URL", "nats://a:4222, nats://b:4222")
    monkeypatch.setenv("OPSBUS_CLUSTER", "prod-eu")
    monkeypatch.setenv("OPSBUS_HTTP__PORT", "9090")
    settings = load(ServiceSettings)
    assert settings.nats.servers == ["nats://a:4222", "nats://b:4222"]
    assert settings.cluster == "prod-eu"
    assert settings.http.port == 9090


def test_cluster_name_must_be_a_subject_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSBUS_CLUSTER", "prod.eu")
    with pytest.raises(ValidationError, match="not a valid NATS subject token"):
        load(ServiceSettings)


@pytest.mark.parametrize(
    ("variable", "value", "field"),
    [
        ("OPSBUS_DATABASE__URL", "postgresql+asyncpg://opsbus:changeme@db/opsbus", "database.url"),
        ("OPSBUS_NATS__PASSWORD", "secret", "nats.password"),
    ],
)
def test_placeholder_secrets_are_refused_in_production(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, field: str
) -> None:
    monkeypatch.setenv("OPSBUS_ENVIRONMENT", "production")
    monkeypatch.setenv("OPSBUS_DATABASE__URL", "postgresql+asyncpg://opsbus:s3cr3t-Zq9@db/opsbus")
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError, match=f"{field} holds a placeholder value"):
        load(ServiceSettings)


def test_real_secrets_pass_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSBUS_ENVIRONMENT", "production")
    monkeypatch.setenv("OPSBUS_DATABASE__URL", "postgresql+asyncpg://opsbus:s3cr3t-Zq9@db/opsbus")
    monkeypatch.setenv("OPSBUS_NATS__PASSWORD", "n4ts-Pw-71")
    settings = load(ServiceSettings)
    assert settings.environment is Environment.PRODUCTION
    assert "s3cr3t" not in repr(settings)  # secrets never reach logs through repr


def test_development_defaults_are_allowed() -> None:
    assert load(ServiceSettings).environment is Environment.DEVELOPMENT
