"""Deployer settings: the shared service settings plus `OPSBUS_DEPLOYER__*`. Built in `main()`, passed down."""

from __future__ import annotations

from pydantic import BaseModel, Field

from opsbus.common.settings import ServiceSettings


class DeployerOptions(BaseModel):
    kubeconfig: str | None = Field(
        default=None, description="Path to a kubeconfig; unset: in-cluster config, then the default kubeconfig."
    )
    prometheus_url: str | None = Field(
        default=None, description="Default Prometheus base URL for analysis metrics that name no address."
    )
    tick_seconds: float = Field(
        default=1.0, gt=0, le=30, description="How often an active rollout re-reads the cluster."
    )
    deadline_grace_seconds: int = Field(
        default=15, ge=0, description="Own deadline = request deadline + this, so the controller's condition wins."
    )
    default_timeout_seconds: int = Field(
        default=3600, ge=60, description="Whole-request timeout (queueing included) when a request sets none."
    )
    request_freshness_seconds: int = Field(
        default=3600, ge=60, description="deploy.requested older than this is acknowledged and skipped."
    )
    inbox_outbox_retention_days: int = Field(
        default=7, ge=1, description="Processed-event records and published outbox rows older than this are purged."
    )
    history_retention_days: int = Field(
        default=400, ge=1, description="Finished rollouts and revision records older than this are purged."
    )
    lease_seconds: float = Field(
        default=15.0, gt=0, description="A running rollout whose owner stopped renewing for this long is resumed."
    )


class DeployerSettings(ServiceSettings):
    deployer: DeployerOptions = DeployerOptions()
