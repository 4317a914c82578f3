"""`scale.*`: right-sizing and replica recommendations from the optimizer, and the changes it applied.

Every recommendation carries its cost consequence (monthly, from the configured price per vCPU-hour and
GiB-hour) and its risk, so a team can decide from the event alone whether to apply it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar, Self

from pydantic import Field, model_validator

from opsbus.common.events.envelope import EventPayload
from opsbus.common.events.payloads.common import Actor, Frozen, ResourceRequirements, WorkloadRef


class ScaleMode(StrEnum):
    """The namespace's optimizer mode."""

    OFF = "off"
    RECOMMEND = "recommend"
    AUTO = "auto"


class Risk(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class ContainerRecommendation(Frozen):
    """Current and recommended requests/limits of one container."""

    container: str = Field(description="Container name.")
    current: ResourceRequirements = Field(description="Requests and limits now.")
    recommended: ResourceRequirements = Field(description="Recommended requests and limits.")
    basis: str | None = Field(
        default=None, description="How it was derived, e.g. `p95 memory over 8d + 15% margin; OOM bump x1.2`."
    )


class ReplicaRecommendation(Frozen):
    """Horizontal recommendation, for workloads without an HPA."""

    current: int = Field(ge=0, description="Replicas now.")
    recommended: int = Field(ge=0, description="Recommended replicas.")
    utilization: float | None = Field(default=None, ge=0, description="Observed utilisation of requests (0..n).")
    target_utilization: float | None = Field(default=None, gt=0, le=1, description="Target utilisation (0..1).")


class CostEstimate(Frozen):
    """Monthly cost of the workload's requests before and after, in `currency`."""

    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$", description="ISO 4217 code.")
    monthly_now: float = Field(ge=0, description="Monthly cost with the current requests and replicas.")
    monthly_after: float = Field(ge=0, description="Monthly cost after the change.")
    monthly_delta: float = Field(description="monthly_after - monthly_now: negative saves money.")

    @model_validator(mode="after")
    def _delta(self) -> Self:
        expected = self.monthly_after - self.monthly_now
        if abs(self.monthly_delta - expected) > 0.01:
            raise ValueError(
                f"monthly_delta {self.monthly_delta} must equal monthly_after - monthly_now ({expected:.2f})"
            )
        return self


class _ScaleChange(EventPayload):
    """Fields of recommendations and applied changes (abstract: no event type)."""

    recommendation_id: str = Field(min_length=1, description="Id of the recommendation.")
    workload: WorkloadRef = Field(description="The workload concerned.")
    containers: tuple[ContainerRecommendation, ...] = Field(default=(), description="Per-container resources.")
    replicas: ReplicaRecommendation | None = Field(default=None, description="Replica change, if any.")
    cost: CostEstimate = Field(description="Monthly cost before and after.")
    mode: ScaleMode = Field(description="The namespace's optimizer mode when this was produced.")

    @model_validator(mode="after")
    def _something(self) -> Self:
        if not self.containers and self.replicas is None:
            raise ValueError("a scale change needs container resources or replicas (or both)")
        return self


class ScaleRecommended(_ScaleChange):
    """The optimizer recommends new requests/limits and/or replicas."""

    event_type: ClassVar[str] = "io.opsbus.scale.recommended.v1"

    confidence: float = Field(ge=0, le=1, description="0..1, from the amount and stability of usage data.")
    risk: Risk = Field(description="Risk of OOM kills or throttling after the change.")
    reason: str = Field(max_length=1024, description="Why, in words.")
    observation_seconds: int = Field(ge=0, description="Length of the usage history behind it.")


class ScaleApplied(_ScaleChange):
    """The change was applied (auto mode or a human applying a recommendation through the gateway)."""

    event_type: ClassVar[str] = "io.opsbus.scale.applied.v1"

    applied_by: Actor = Field(description="The optimizer (auto mode) or the human who applied it.")
    dry_run: bool = Field(default=False, description="True when only simulated.")
    previous_revision: int | None = Field(default=None, ge=1, description="Workload revision before, for rollback.")
