"""Request and response models of `opsbus.svc.healer.<operation>`.

They live in `opsbus.common.api.healer` (DESIGN.md section 2: the gateway calls these endpoints); this module
names them for the healer's own code so there is one definition on the wire.
"""

from __future__ import annotations

from opsbus.common.api.healer import (
    ApprovalAnswer,
    ApproveRequest,
    GetPoliciesRequest,
    Issue,
    ListPendingRequest,
    PastAlert,
    PendingApproval,
    PendingList,
    PoliciesAnswer,
    PolicyPreview,
    PolicyVersion,
    PolicyVersionList,
    PolicyVersionsRequest,
    PreviewItem,
    PreviewOutcome,
    PreviewPolicyRequest,
    PutPolicyRequest,
    RejectRequest,
    ValidatePolicyRequest,
    ValidationAnswer,
)

__all__ = [
    "ApprovalAnswer",
    "ApproveRequest",
    "GetPoliciesRequest",
    "Issue",
    "ListPendingRequest",
    "PastAlert",
    "PendingApproval",
    "PendingList",
    "PoliciesAnswer",
    "PolicyPreview",
    "PolicyVersion",
    "PolicyVersionList",
    "PolicyVersionsRequest",
    "PreviewItem",
    "PreviewOutcome",
    "PreviewPolicyRequest",
    "PutPolicyRequest",
    "RejectRequest",
    "ValidatePolicyRequest",
    "ValidationAnswer",
]
