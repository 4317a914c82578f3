"""`opsbus.svc.deployer.{status,history,abort,promote}`.

Mirrors `opsbus.deployer.api` (the deployer's own copy) on the wire.
"""

from __future__ import annotations

from datetime import datetime
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from opsbus.common.api.calling import Caller
from opsbus.common.events.payloads.common import Actor, WorkloadRef
from opsbus.common.events.payloads.deploy import AnalysisResult

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


class RevisionView(_Model):
    revision: int | None
    deployment_id: str
    images: dict[str, str]
    outcome: str
    recorded_at: datetime


class HistoryRequest(_Model):
    workload: WorkloadRef
    limit: int = Field(default=20, ge=1, le=500)


class HistoryResponse(_Model):
    rollouts: tuple[RolloutView, ...]
    revisions: tuple[RevisionView, ...]


class CommandRequest(_Model):
    """abort or promote one rollout."""

    rollout: RolloutSelector
    actor: Actor
    reason: str = Field(default="", max_length=1024)
    caller: Caller | None = Field(
        default=None, description="Audited (deploy.abort / deploy.promote) in the transaction of the command."
    )
