"""`opsbus.svc.optimizer.{list_recommendations,apply_recommendation,usage}`.

The optimizer answers with these models (`opsbus.optimizer.domain.api` re-exports them); the gateway calls
them for `/v1/recommendations`. One definition on the wire.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from opsbus.common.api.calling import Caller
from opsbus.common.events.payloads.common import Actor
from opsbus.common.events.payloads.scale import ScaleRecommended

SERVICE = "optimizer"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ListRecommendationsRequest(_Model):
    namespace: str | None = None
    workload: str | None = None
    status: str | None = Field(default=None, description="open, applied or superseded")
    limit: int = Field(default=100, ge=1, le=1000)


class RecommendationView(_Model):
    id: str
    namespace: str
    workload: str
    created_at: datetime
    action: str
    guard: str | None
    reason: str
    status: str
    recommendation: ScaleRecommended


class RecommendationList(_Model):
    recommendations: list[RecommendationView]


class ApplyRecommendationRequest(_Model):
    recommendation_id: str = Field(min_length=1)
    actor: Actor
    dry_run: bool = False
    comment: str | None = Field(default=None, max_length=1024, description="Why: the audit entry's reason.")
    caller: Caller | None = Field(
        default=None, description="Audited (recommendation.apply) in the transaction that applies it."
    )


class ApplyRecommendationResponse(_Model):
    recommendation_id: str
    applied: bool
    dry_run: bool
    reason: str
    resource_version: str | None = None


class UsageRequest(_Model):
    """The usage the optimizer remembers for one workload's containers (what its recommendations rest on)."""

    namespace: str = Field(min_length=1, max_length=63)
    workload: str = Field(min_length=1, max_length=253)


class UsageBucket(_Model):
    start: float = Field(description="Lower end of the bucket, in the resource's unit.")
    end: float = Field(description="Upper end of the bucket.")
    share: float = Field(ge=0, le=1, description="Share of the (decayed) samples in this bucket.")


class ResourceUsage(_Model):
    unit: str = Field(description="millicores (cpu) or bytes (memory: peaks per aggregation window)")
    p50: float
    p90: float
    p95: float
    p99: float
    max: float
    buckets: list[UsageBucket] = Field(description="The distribution, lowest first; empty buckets left out.")


class ContainerUsageView(_Model):
    container: str
    samples: int
    observed_seconds: float
    cpu: ResourceUsage
    memory: ResourceUsage


class UsageResponse(_Model):
    namespace: str
    workload: str
    containers: list[ContainerUsageView]
