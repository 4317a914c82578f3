"""`opsbus.svc.deployer.{status,history,recent,replicasets,abort,promote}`.

Mirrors `opsbus.deployer.api` (the deployer's own copy) on the wire.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from opsbus.common.api.calling import Caller
from opsbus.common.events.payloads.common import Actor, WorkloadRef
from opsbus.common.events.payloads.deploy import AnalysisResult, AnalysisSpec, BlueGreenSpec, CanarySpec

SERVICE = "deployer"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RolloutSelector(_Model):
    """Exactly one of: the deployer's id, the request's event id, or the workload (its latest rollout)."""

    deployment_id: str | None = None
    request_id: str | None = None
    workload: WorkloadRef | None = None

    @model_validator(mode="after")
    def _one(self) -> Self:
        given = [x for x in (self.deployment_id, self.request_id, self.workload) if x is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of deployment_id, request_id or workload")
        return self


class RolloutView(_Model):
    deployment_id: str
    request_id: str
    workload: str
    strategy: str
    state: str = Field(description="queued running succeeded failed rolledback superseded aborted")
    phase: str | None = None
    revision: int | None = None
    previous_revision: int | None = None
    requested_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    reason: str | None = None
    message: str | None = None
    analysis: tuple[AnalysisResult, ...] = ()
    images: dict[str, str] = Field(default_factory=dict, description="The images requested, per container.")
    canary: CanarySpec | None = Field(default=None, description="The requested canary steps (weights, pauses).")
    blue_green: BlueGreenSpec | None = None
    analysis_spec: AnalysisSpec | None = Field(
        default=None, description="The background analysis requested (metrics and their thresholds)."
    )
    step: int | None = Field(default=None, ge=1, description="Canary: the step being run now (1-based).")
    stage: str | None = Field(default=None, description="Canary or blue-green: the stage of the current step.")
    canary_weight: int | None = Field(
        default=None,
        ge=0,
        le=100,
        description="Canary with a router: the weight (percent of traffic) on the route now, as the deployer last "
        "wrote it.",
    )
    request_reason: str | None = Field(default=None, description="Why it was requested (the request's reason).")


class RevisionView(_Model):
    revision: int | None
    deployment_id: str
    images: dict[str, str]
    outcome: str
    recorded_at: datetime
    strategy: str | None = Field(default=None, description="The strategy of the rollout that recorded it.")
    template: dict[str, Any] = Field(
        default_factory=dict,
        description="The pod template it ran, as the deployer recorded it: each container's image, env, resources, "
        "command and args (what the console compares between revisions).",
    )


class HistoryRequest(_Model):
    workload: WorkloadRef
    limit: int = Field(default=20, ge=1, le=500)


class HistoryResponse(_Model):
    rollouts: tuple[RolloutView, ...]
    revisions: tuple[RevisionView, ...]


class RecentRequest(_Model):
    """The latest rollouts of the cluster, newest first, in `namespaces` (None: every namespace)."""

    namespaces: tuple[str, ...] | None = None
    state: str | None = Field(default=None, description="Only rollouts in this state (e.g. running).")
    limit: int = Field(default=50, ge=1, le=500)


class RolloutList(_Model):
    rollouts: tuple[RolloutView, ...]


class ReplicaSetView(_Model):
    name: str
    deployment: str = Field(description="The Deployment owning it: the workload, or its `<name>-canary`.")
    role: str = Field(description="new (the rollout's version), old (what runs before it) or older.")
    revision: int | None = None
    images: dict[str, str] = Field(default_factory=dict)
    replicas: int = 0
    ready: int = 0
    created_at: datetime | None = None


class ReplicaSetsResponse(_Model):
    workload: str
    replica_sets: tuple[ReplicaSetView, ...]


class CommandRequest(_Model):
    """abort or promote one rollout."""

    rollout: RolloutSelector
    actor: Actor
    reason: str = Field(default="", max_length=1024)
    caller: Caller | None = Field(
        default=None, description="Audited (deploy.abort / deploy.promote) in the transaction of the command."
    )
