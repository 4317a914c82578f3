"""`/v1/recoveries` (approve or reject a planned step, list those waiting) and `/v1/policies` (the healer's
remediation policies: read, validate, replace with a version check). The healer answers; the gateway checks
the caller may act on the step's target namespace. A policy put and an approval or rejection are audited by
the healer in the transaction that stores them (the request names the caller): the gateway writes no entry
of its own, so a decision whose entry cannot be written is not recorded and the caller gets a 5xx."""

from __future__ import annotations

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from opsbus.common.api import healer as api
from opsbus.gateway.auth import Admin, Ctx, Operator, RequestId, Viewer
from opsbus.gateway.commands import caller_of
from opsbus.gateway.domain.access import Denied, Principal, Role, authorize, can_see
from opsbus.gateway.problems import PROBLEM_RESPONSES, ApiProblem

router = APIRouter(tags=["recoveries"], responses=PROBLEM_RESPONSES)
_RID = Path(min_length=1, max_length=200)
_STEP = Path(ge=1, le=100)


class Approval(BaseModel):
    comment: str | None = Field(default=None, max_length=1024)


class Rejection(BaseModel):
    reason: str = Field(min_length=1, max_length=1024)


class PolicyDocument(BaseModel):
    document: str = Field(min_length=1, max_length=1_000_000, description="The whole policy YAML.")


class PolicyUpdate(PolicyDocument):
    expected_version: int = Field(ge=0, description="The version you edited; 409 when someone changed it since.")
    comment: str | None = Field(default=None, max_length=1024)


def _author(who: Principal) -> str:
    return (who.display_name or who.label)[:253]


async def _pending(ctx: Ctx) -> api.PendingList:
    return await ctx.services.call(api.SERVICE, "list_pending", api.ListPendingRequest(), api.PendingList)


@router.get("/v1/recoveries/pending", summary="Recovery steps waiting for approval, in your namespaces")
async def pending(*, who: Viewer, ctx: Ctx) -> api.PendingList:
    items = [
        p
        for p in (await _pending(ctx)).items
        if can_see(who, namespace=p.action.target.namespace, cluster=ctx.settings.cluster)
    ]
    return api.PendingList(items=items)


async def _may_decide(ctx: Ctx, who: Principal, recovery_id: str, step: int) -> None:
    """Check the caller may decide the step (operator of its target's namespace). A step that is not pending
    is 404 for a caller scoped to namespaces; one who sees every namespace is told why by the healer."""
    for item in (await _pending(ctx)).items:
        if item.recovery_id == recovery_id and item.step == step:
            target = item.action.target
            try:
                authorize(who, Role.VIEWER, namespace=target.namespace, cluster=ctx.settings.cluster)
            except Denied as exc:
                raise Denied(exc.reason, hidden=True) from None
            authorize(who, Role.OPERATOR, namespace=target.namespace, cluster=ctx.settings.cluster)
            return
    if not who.scope.all_namespaces:
        raise ApiProblem(404, f"no pending approval for recovery {recovery_id} step {step}", slug="not-found")


@router.post("/v1/recoveries/{recovery_id}/steps/{step}/approve", summary="Approve a planned recovery step")
async def approve(
    *, body: Approval, who: Operator, ctx: Ctx, rid: RequestId, recovery_id: str = _RID, step: int = _STEP
) -> api.ApprovalAnswer:
    await _may_decide(ctx, who, recovery_id, step)
    request = api.ApproveRequest(
        recovery_id=recovery_id,
        step=step,
        approver=_author(who),
        comment=body.comment,
        caller=caller_of(who, rid),
    )
    return await ctx.services.call(api.SERVICE, "approve", request, api.ApprovalAnswer)


@router.post("/v1/recoveries/{recovery_id}/steps/{step}/reject", summary="Reject a planned recovery step")
async def reject(
    *, body: Rejection, who: Operator, ctx: Ctx, rid: RequestId, recovery_id: str = _RID, step: int = _STEP
) -> api.ApprovalAnswer:
    await _may_decide(ctx, who, recovery_id, step)
    request = api.RejectRequest(
        recovery_id=recovery_id, step=step, approver=_author(who), reason=body.reason, caller=caller_of(who, rid)
    )
    return await ctx.services.call(api.SERVICE, "reject", request, api.ApprovalAnswer)


@router.get("/v1/policies", tags=["policies"], summary="The remediation policies in force, with their version")
async def get_policies(*, who: Viewer, ctx: Ctx) -> api.PoliciesAnswer:
    if not who.scope.covers_cluster(ctx.settings.cluster):
        raise Denied(f"not allowed in cluster {ctx.settings.cluster}")
    return await ctx.services.call(api.SERVICE, "get_policies", api.GetPoliciesRequest(), api.PoliciesAnswer)


@router.post("/v1/policies/validate", tags=["policies"], summary="Validate a policy YAML without applying it")
async def validate_policy(*, body: PolicyDocument, who: Operator, ctx: Ctx) -> api.ValidationAnswer:
    request = api.ValidatePolicyRequest(document=body.document)
    return await ctx.services.call(api.SERVICE, "validate_policy", request, api.ValidationAnswer)


@router.put("/v1/policies", tags=["policies"], summary="Replace the policies (admin of every namespace)")
async def put_policies(*, body: PolicyUpdate, who: Admin, ctx: Ctx, rid: RequestId) -> api.PoliciesAnswer:
    authorize(who, Role.ADMIN, namespace=None, cluster=ctx.settings.cluster)
    request = api.PutPolicyRequest(
        document=body.document,
        expected_version=body.expected_version,
        author=_author(who),
        comment=body.comment,
        caller=caller_of(who, rid),
    )
    return await ctx.services.call(api.SERVICE, "put_policy", request, api.PoliciesAnswer)
