"""Settings shared by every service: built once in `main()` from `OPSBUS_*` environment variables and passed down.

Nested groups use `__`: `OPSBUS_NATS__URL`, `OPSBUS_DATABASE__URL`, `OPSBUS_TELEMETRY__OTLP_ENDPOINT`.
There are no import-time singletons: call `load(SettingsClass)` in `main()`.

Secrets refuse placeholder values (`changeme`, `secret`, ...) outside the development environment, so a
copy-pasted example configuration cannot reach production.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Self, TypeVar

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from opsbus.common.events.subjects import validate_token

#: the cluster of a single-cluster install that names none (a fleet names each: docs/ARCHITECTURE.md, "Fleet")
DEFAULT_CLUSTER = "sandbox"

PLACEHOLDER_SECRETS = frozenset(
    {
        "",
        "changeme",
        "change-me",
        "change_me",
        "changethis",
        "secret",
        "password",
        "placeholder",
        "todo",
        "xxx",
    }
)


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    STAGING = "staging"
    PRODUCTION = "production"


class NatsSettings(BaseModel):
    url: str = Field(default="nats://127.0.0.1:4222", description="Comma-separated NATS server URLs.")
    user: str | None = None
    password: SecretStr | None = None
    nkey_seed_file: str | None = Field(default=None, description="Path to an nkey seed file (instead of a password).")
    connect_timeout: float = 5.0
    reconnect_wait: float = 1.0
    max_reconnect_attempts: int = Field(default=-1, description="-1 reconnects forever.")
    stream_replicas: int = Field(default=1, ge=1, le=5)
    duplicate_window_seconds: float = Field(default=120.0, gt=0, description="JetStream Nats-Msg-Id dedupe window.")
    publish_timeout: float = Field(default=5.0, gt=0)
    publish_max_in_flight: int = Field(default=1024, ge=1, description="Bound on unacknowledged async publishes.")
    publish_retries: int = Field(default=5, ge=0)

    @property
    def servers(self) -> list[str]:
        return [part.strip() for part in self.url.split(",") if part.strip()]


class DatabaseSettings(BaseModel):
    url: SecretStr = Field(
        default=SecretStr("postgresql+asyncpg://opsbus:opsbus@127.0.0.1:5432/opsbus"),
        description="SQLAlchemy URL with the asyncpg driver.",
    )
    pool_size: int = Field(default=10, ge=1)
    max_overflow: int = Field(default=5, ge=0)
    pool_timeout: float = Field(default=10.0, gt=0, description="Seconds to wait for a pooled connection.")
    pool_recycle: float = Field(default=1800.0, gt=0, description="Seconds before a pooled connection is renewed.")
    connect_timeout: float = Field(default=10.0, gt=0, description="Seconds to establish a connection.")
    statement_timeout: float = Field(
        default=30.0, ge=0, description="Server-side bound on one statement, seconds (0: none; migrations use none)."
    )
    idle_in_transaction_timeout: float = Field(
        default=60.0, ge=0, description="The server ends sessions idle inside a transaction this long (0: never)."
    )
    echo: bool = False


class TelemetrySettings(BaseModel):
    otlp_endpoint: str | None = Field(
        default=None,
        description="OTLP/HTTP traces endpoint, e.g. http://127.0.0.1:4318/v1/traces. Unset: no export.",
    )
    sample_ratio: float = Field(
        default=1.0,
        ge=0.0,
        le=1.0,
        description="Share of new traces sampled (parent-based); alerts, the roots of incidents, always are.",
    )
    log_level: str = "INFO"
    log_json: bool = True


class HttpSettings(BaseModel):
    host: str = Field(default="127.0.0.1", description="Address of the health/metrics endpoint.")
    port: int = Field(default=8080, ge=0, le=65535, description="0 picks a free port.")


class ServiceSettings(BaseSettings):
    """Base of every service's settings. Subclass and add a nested group for the service's own options."""

    model_config = SettingsConfigDict(
        env_prefix="OPSBUS_", env_nested_delimiter="__", extra="ignore", validate_default=True
    )

    environment: Environment = Environment.DEVELOPMENT
    cluster: str = Field(
        default=DEFAULT_CLUSTER, description="Name of the cluster this instance serves (a NATS token)."
    )
    instance: str | None = Field(default=None, description="Replica name; defaults to the hostname.")
    nats: NatsSettings = NatsSettings()
    database: DatabaseSettings = DatabaseSettings()
    telemetry: TelemetrySettings = TelemetrySettings()
    http: HttpSettings = HttpSettings()
    shutdown_grace_seconds: float = Field(default=20.0, gt=0, description="Bound on finishing in-flight work.")

    @field_validator("cluster")
    @classmethod
    def _cluster_is_token(cls, value: str) -> str:
        return validate_token(value, what="cluster name")

    @model_validator(mode="after")
    def _no_placeholder_secrets(self) -> Self:
        if self.environment in {Environment.DEVELOPMENT, Environment.TEST}:
            return self
        for path, secret in _secrets(self):
            if secret.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS or _url_has_placeholder(secret):
                raise ValueError(
                    f"{path} holds a placeholder value; set a real secret for environment {self.environment.value}"
                )
        return self


def _url_has_placeholder(secret: SecretStr) -> bool:
    value = secret.get_secret_value()
    if "://" not in value or "@" not in value:
        return False
    credentials = value.split("://", 1)[1].split("@", 1)[0]
    password = credentials.split(":", 1)[1] if ":" in credentials else ""
    return password.lower() in PLACEHOLDER_SECRETS | {"opsbus"}


def _secrets(model: BaseModel, prefix: str = "") -> list[tuple[str, SecretStr]]:
    found: list[tuple[str, SecretStr]] = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        path = f"{prefix}{name}"
        if isinstance(value, SecretStr):
            found.append((path, value))
        elif isinstance(value, BaseModel):
            found.extend(_secrets(value, f"{path}."))
    return found


S = TypeVar("S", bound=ServiceSettings)


def load(settings_type: type[S], **overrides: object) -> S:
    """Build settings from the environment (and explicit overrides); call this in `main()` only."""
    return settings_type(**overrides)  # type: ignore[arg-type]
