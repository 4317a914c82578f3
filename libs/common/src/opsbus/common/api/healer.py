"""`opsbus.svc.healer.{approve,reject,list_pending,get_policies,validate_policy,put_policy,policy_versions,
preview_policy}`.

Mirrors `opsbus.healer.api` (the healer's own copy) on the wire.
"""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from opsbus.common.api.calling import Caller
from opsbus.common.events.payloads import AlertFired, RecoveryAction

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
    version: int | None = Field(default=None, ge=1, description="A past version; default: the one in force.")


class PoliciesAnswer(_Model):
    version: int
    document: str
    policies: list[str]


class PolicyVersionsRequest(_Model):
    limit: int = Field(default=50, ge=1, le=500)


class PolicyVersion(_Model):
    version: int
    author: str
    comment: str | None
    created_at: AwareDatetime
    current: bool = Field(description="True for the version in force.")


class PolicyVersionList(_Model):
    versions: list[PolicyVersion] = Field(description="Newest first.")


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


class PastAlert(_Model):
    """The first alert of a past incident, as the gateway's read model kept it."""

    incident_id: str = Field(min_length=1, max_length=200)
    fired_at: AwareDatetime
    alert: AlertFired


class PreviewPolicyRequest(_Model):
    document: str = Field(min_length=1, max_length=1_000_000)
    alerts: list[PastAlert] = Field(max_length=200, description="Newest first; the preview keeps their order.")


class PreviewOutcome(_Model):
    policy: str | None = Field(description="The policy that matched, None when none did.")
    step: int | None = Field(description="The ladder step decided (1-based), None when none applied.")
    action: str | None
    decision: str = Field(description="no_policy, planned, dry_run, approval, refused (by `guard`) or passed.")
    guard: str | None = None
    reason: str
    passed: list[str] = Field(default_factory=list, description="Steps passed before it, with why.")


class PreviewItem(_Model):
    incident_id: str
    alertname: str
    namespace: str | None
    fired_at: AwareDatetime
    edited: PreviewOutcome = Field(description="What the edited document would have done.")
    current: PreviewOutcome = Field(description="What the version in force would do.")
    changed: bool


class PolicyPreview(_Model):
    valid: bool
    issues: list[Issue] = Field(default_factory=list, description="Why the document is invalid (then no items).")
    current_version: int
    items: list[PreviewItem] = Field(default_factory=list)
    assumptions: list[str] = Field(default_factory=list, description="What the replay takes for granted.")
