"""`opsbus.svc.healer.{approve,reject,list_pending,get_policies,validate_policy,put_policy}`.

Mirrors `opsbus.healer.api` (the healer's own copy) on the wire.
"""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from opsbus.common.api.calling import Caller
from opsbus.common.events.payloads import RecoveryAction

SERVICE = "healer"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ApproveRequest(_Model):
    recovery_id: str = Field(min_length=1)
    step: int = Field(ge=1)
    approver: str = Field(min_length=1, max_length=253)
    comment: str | None = Field(default=None, max_length=1024)
    caller: Caller | None = Field(default=None, description="Audited as the decision's actor, with its request id.")


class RejectRequest(_Model):
    recovery_id: str = Field(min_length=1)
    step: int = Field(ge=1)
    approver: str = Field(min_length=1, max_length=253)
    reason: str = Field(min_length=1, max_length=1024)
    caller: Caller | None = Field(default=None, description="Audited as the decision's actor, with its request id.")


class ApprovalAnswer(_Model):
    recovery_id: str
    step: int
    status: str


class ListPendingRequest(_Model):
    pass


class PendingApproval(_Model):
    recovery_id: str
    step: int
    action: RecoveryAction
    reason: str
    requested_at: AwareDatetime
    expires_at: AwareDatetime


class PendingList(_Model):
    items: list[PendingApproval]


class GetPoliciesRequest(_Model):
    pass


class PoliciesAnswer(_Model):
    version: int
    document: str
    policies: list[str]


class ValidatePolicyRequest(_Model):
    document: str


class Issue(_Model):
    line: int | None
    column: int | None
    path: str
    message: str


class ValidationAnswer(_Model):
    valid: bool
    issues: list[Issue]
    policies: list[str] = Field(default_factory=list)


class PutPolicyRequest(_Model):
    document: str
    expected_version: int = Field(ge=0, description="The version being replaced; 409 when it is not the latest.")
    author: str = Field(min_length=1, max_length=253)
    comment: str | None = None
    caller: Caller | None = Field(default=None, description="Audited as the actor of the put, with its request id.")
