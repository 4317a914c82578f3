"""`/v1/recoveries` (approve or reject a planned step, list those waiting) and `/v1/policies` (the healer's
remediation policies: read any version, list versions, validate, preview, replace with a version check). The
healer answers; the gateway checks the caller may act on the step's target namespace. A preview replays the
last incidents the caller may see (the gateway's read model) through the healer's pure planner: the healer
never sees another tenant's alerts, and nothing is changed. A policy put and an approval or rejection are
audited by the healer in the transaction that stores them (the request names the caller): the gateway writes
no entry of its own, so a decision whose entry cannot be written is not recorded and the caller gets a 5xx."""

from __future__ import annotations

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field, ValidationError

from opsbus.common.api import healer as api
from opsbus.common.api.calling import Caller
from opsbus.common.events.payloads import AlertFired
from opsbus.gateway.auth import Admin, Ctx, Operator, RequestId, Viewer
from opsbus.gateway.commands import caller_of
from opsbus.gateway.domain.access import (
    Denied,
    Principal,
    Role,
    authorize,
    can_see,
    visible_clusters,
    visible_namespaces,
)
from opsbus.gateway.problems import PROBLEM_RESPONSES, ApiProblem
from opsbus.gateway.readmodel import IncidentFilter, Visibility

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


async def decide(
    ctx: Ctx, who: Principal, caller: Caller, *, recovery_id: str, step: int, approve: bool, text: str | None
) -> api.ApprovalAnswer:
    """Approve (`text` the comment) or reject (`text` the reason) a step for `who`: the one path of every
    decision, from the API and from a chat button (`routes/slack.py`, its `caller` naming the chat)."""
    await _may_decide(ctx, who, recovery_id, step)
    if approve:
        request: api.ApproveRequest | api.RejectRequest = api.ApproveRequest(
            recovery_id=recovery_id, step=step, approver=_author(who), comment=text, caller=caller
        )
    else:
        request = api.RejectRequest(
            recovery_id=recovery_id, step=step, approver=_author(who), reason=text or "rejected", caller=caller
        )
    operation = "approve" if approve else "reject"
    return await ctx.services.call(api.SERVICE, operation, request, api.ApprovalAnswer)


@router.post("/v1/recoveries/{recovery_id}/steps/{step}/approve", summary="Approve a planned recovery step")
async def approve(
    *, body: Approval, who: Operator, ctx: Ctx, rid: RequestId, recovery_id: str = _RID, step: int = _STEP
) -> api.ApprovalAnswer:
    caller = caller_of(who, rid)
    return await decide(ctx, who, caller, recovery_id=recovery_id, step=step, approve=True, text=body.comment)


@router.post("/v1/recoveries/{recovery_id}/steps/{step}/reject", summary="Reject a planned recovery step")
async def reject(
    *, body: Rejection, who: Operator, ctx: Ctx, rid: RequestId, recovery_id: str = _RID, step: int = _STEP
) -> api.ApprovalAnswer:
    caller = caller_of(who, rid)
    return await decide(ctx, who, caller, recovery_id=recovery_id, step=step, approve=False, text=body.reason)


class PolicyPreviewRequest(PolicyDocument):
    limit: int = Field(default=20, ge=1, le=200, description="How many of the latest incidents to replay.")
    namespace: str | None = Field(
        default=None, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", description="Only this one's."
    )


def _in_cluster(who: Principal, cluster: str) -> None:
    if not who.scope.covers_cluster(cluster):
        raise Denied(f"not allowed in cluster {cluster}")


@router.get("/v1/policies", tags=["policies"], summary="The remediation policies in force (or a past version)")
async def get_policies(
    *, who: Viewer, ctx: Ctx, version: int | None = Query(default=None, ge=1, le=2**31 - 1)
) -> api.PoliciesAnswer:
    _in_cluster(who, ctx.settings.cluster)
    request = api.GetPoliciesRequest(version=version)
    return await ctx.services.call(api.SERVICE, "get_policies", request, api.PoliciesAnswer)


@router.get("/v1/policies/versions", tags=["policies"], summary="The policy versions, newest first")
async def policy_versions(
    *, who: Viewer, ctx: Ctx, limit: int = Query(default=50, ge=1, le=500)
) -> api.PolicyVersionList:
    _in_cluster(who, ctx.settings.cluster)
    request = api.PolicyVersionsRequest(limit=limit)
    return await ctx.services.call(api.SERVICE, "policy_versions", request, api.PolicyVersionList)


@router.post(
    "/v1/policies/preview",
    tags=["policies"],
    summary="What an edited policy document would have done for the latest incidents you may see",
)
async def preview_policy(*, body: PolicyPreviewRequest, who: Operator, ctx: Ctx) -> api.PolicyPreview:
    _in_cluster(who, ctx.settings.cluster)
    if body.namespace is not None and not who.scope.covers_namespace(body.namespace):
        raise Denied(f"not allowed in namespace {body.namespace}")
    visibility = Visibility(visible_namespaces(who), visible_clusters(who))
    f = IncidentFilter(namespace=body.namespace, cluster=ctx.settings.cluster, limit=body.limit)
    alerts = []
    for row in await ctx.reads.incidents(f, visibility):
        try:
            alert = AlertFired.model_validate({**row["alert"], "evidence": {}})  # the planner reads no evidence
        except ValidationError:  # a row of an older payload version: not replayable, left out
            continue
        alerts.append(api.PastAlert(incident_id=row["id"], fired_at=row["starts_at"], alert=alert))
    request = api.PreviewPolicyRequest(document=body.document, alerts=alerts)
    return await ctx.services.call(api.SERVICE, "preview_policy", request, api.PolicyPreview)


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
