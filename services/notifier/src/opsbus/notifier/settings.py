"""The notifier's settings: `OPSBUS_NOTIFIER__*` on top of the shared `ServiceSettings`."""

from __future__ import annotations

from pydantic import BaseModel, Field

from opsbus.common.settings import ServiceSettings


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


class NotifierSettings(ServiceSettings):
    notifier: NotifierOptions = NotifierOptions()
