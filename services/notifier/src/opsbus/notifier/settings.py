"""The notifier's settings: `OPSBUS_NOTIFIER__*` on top of the shared `ServiceSettings`.

Receiver secret keys (`OPSBUS_NOTIFIER__SECRETS__KEYS`, a JSON list of Fernet keys) must be real keys, and outside
the development and test environments not a placeholder: the documented example key or a key of one repeated byte.
"""

from __future__ import annotations

import base64
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from opsbus.common.settings import Environment, ServiceSettings

# The key docs/OPERATIONS.md shows as an example: accepted in development, refused everywhere else.
EXAMPLE_SECRETS_KEY = "b3BzYnVzLWV4YW1wbGUta2V5LW5vdC1hLXNlY3JldCE="


class SecretsOptions(BaseModel):
    model_config = ConfigDict(hide_input_in_errors=True)  # an error must not quote a key

    keys: list[SecretStr] = Field(
        default_factory=list,
        description="Fernet keys for stored receiver secrets: the first encrypts, all decrypt (rotation). "
        "Empty: no secret can be stored.",
    )
    namespace: str = Field(
        default="default",
        min_length=1,
        description="The notifier's own namespace: where a secretKeyRef without namespace reads its Secret.",
    )
    kubeconfig: str | None = Field(
        default=None, description="Kubeconfig for secretKeyRef; unset: the pod's service account, then ~/.kube/config."
    )
    cache_seconds: float = Field(default=30.0, ge=0, description="How long a Kubernetes Secret read is reused.")

    @field_validator("keys")
    @classmethod
    def _fernet_keys(cls, keys: list[SecretStr]) -> list[SecretStr]:
        for index, key in enumerate(keys):
            try:
                raw = base64.urlsafe_b64decode(key.get_secret_value().encode())
            except ValueError:
                raw = b""
            if len(raw) != 32:
                raise ValueError(f"keys[{index}] is not a Fernet key (url-safe base64 of 32 bytes)")
        if len({k.get_secret_value() for k in keys}) != len(keys):
            raise ValueError("keys holds the same key twice")
        return keys

    def placeholder_keys(self) -> list[int]:
        """Indexes of keys no deployment should use: the example key, or one byte repeated."""
        found = []
        for index, key in enumerate(self.keys):
            text = key.get_secret_value()
            if text == EXAMPLE_SECRETS_KEY or len(set(base64.urlsafe_b64decode(text.encode()))) <= 1:
                found.append(index)
        return found


class NotifierOptions(BaseModel):
    config_file: str = Field(default="notifier.yaml", description="The routing/receivers/inhibition YAML.")
    gateway_url: str | None = Field(default=None, description="Public gateway URL, for incident links.")
    jaeger_url: str | None = Field(default=None, description="Jaeger UI URL, for trace links.")
    tick_seconds: float = Field(default=0.5, gt=0, description="How often due groups and deliveries are looked for.")
    max_attempts: int = Field(default=6, ge=1, le=50, description="Delivery attempts before the dead letter.")
    backoff_base_seconds: float = Field(default=1.0, gt=0)
    backoff_max_seconds: float = Field(default=300.0, gt=0)
    max_retry_after_seconds: float = Field(default=3600.0, gt=0)
    request_timeout_seconds: float = Field(default=10.0, gt=0)
    lease_seconds: float = Field(
        default=60.0, gt=0, description="A delivery claimed by a replica that died is retried after this."
    )
    batch: int = Field(default=50, ge=1)
    config_poll_seconds: float = Field(
        default=5.0, gt=0, description="How often each replica looks for a configuration version put through the API."
    )
    retention_days: int = Field(
        default=30,
        ge=1,
        description="Days kept: delivery log, finished notifications, ended silences, abandoned groups.",
    )
    stale_alert_retention_days: int = Field(
        default=90, ge=1, description="A firing alert not seen for this long stops inhibiting others."
    )
    retention_interval_seconds: float = Field(default=3600.0, gt=0, description="How often old rows are deleted.")
    unaccounted_after_seconds: float = Field(
        default=900.0,
        gt=0,
        description="A routed alert still routed or queued this long past its due time (its group's flush, its "
        "next delivery attempt) counts in opsbus_notifier_unaccounted_alerts. Keep it above the longest "
        "Retry-After a channel may ask for.",
    )
    invariant_check_seconds: float = Field(
        default=30.0, gt=0, description="How often the notifier's loop runs the unaccounted-alerts check."
    )
    invariant_check_limit: int = Field(
        default=10_000, ge=1, description="The check counts at most this many rows (its cost is bounded)."
    )
    secrets: SecretsOptions = SecretsOptions()


class NotifierSettings(ServiceSettings):
    model_config = SettingsConfigDict(**ServiceSettings.model_config, hide_input_in_errors=True)

    notifier: NotifierOptions = NotifierOptions()

    @model_validator(mode="after")
    def _no_placeholder_keys(self) -> Self:
        if self.environment in {Environment.DEVELOPMENT, Environment.TEST}:
            return self
        placeholders = self.notifier.secrets.placeholder_keys()
        if placeholders:
            raise ValueError(
                f"notifier.secrets.keys[{placeholders[0]}] is a placeholder key; "
                f"generate a real one for environment {self.environment.value}"
            )
        return self
