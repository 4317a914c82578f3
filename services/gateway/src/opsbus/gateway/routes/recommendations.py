"""`/v1/recommendations` (list, apply, the usage behind them) through the optimizer's request-reply endpoints.

A caller sees only the recommendations of its namespaces: for a namespace-scoped caller the optimizer is asked
once per namespace (never for everything, then filtered, which would page wrongly). Applying needs operator on
the recommendation's namespace; a recommendation outside the caller's scope answers 404, as if it did not
exist. The optimizer decides whether it may be applied (409 when it is no longer open, 422 during a rollout)
and audits it: the call (`recommendation.apply`, naming the caller) in the transaction that applies it.
"""

from __future__ import annotations

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from opsbus.common.api import optimizer as api
from opsbus.gateway.auth import Ctx, Operator, RequestId, Viewer
from opsbus.gateway.commands import actor_of, caller_of
from opsbus.gateway.domain.access import Principal, Role, authorize, visible_namespaces
from opsbus.gateway.problems import PROBLEM_RESPONSES, ApiProblem

router = APIRouter(tags=["recommendations"], responses=PROBLEM_RESPONSES)
_NAMESPACE = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_LOOKUP_LIMIT = 1000


class ApplyRecommendation(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"dry_run": True, "comment": "checked the dashboard"}]}
    )

    dry_run: bool = Field(default=False, description="Check and simulate only: nothing changes in the cluster.")
    comment: str | None = Field(default=None, max_length=1024, description="Why, for the audit trail.")


async def _list(ctx: Ctx, request: api.ListRecommendationsRequest) -> list[api.RecommendationView]:
    answer = await ctx.services.call(api.SERVICE, "list_recommendations", request, api.RecommendationList)
    return answer.recommendations


async def visible_recommendations(
    ctx: Ctx, who: Principal, *, namespace: str | None, workload: str | None, status: str | None, limit: int
) -> list[api.RecommendationView]:
    """Newest first, at most `limit`, only in the caller's namespaces (and cluster); asking for a namespace
    outside them is 403."""
    if namespace is not None:
        authorize(who, Role.VIEWER, namespace=namespace, cluster=ctx.settings.cluster)
    if not who.scope.covers_cluster(ctx.settings.cluster):
        return []
    scoped = visible_namespaces(who)
    asked = [namespace] if namespace else (sorted(scoped) if scoped is not None else [None])
    found: list[api.RecommendationView] = []
    for ns in asked:
        request = api.ListRecommendationsRequest(namespace=ns, workload=workload, status=status, limit=limit)
        found.extend(await _list(ctx, request))
    found.sort(key=lambda r: r.created_at, reverse=True)
    return [r for r in found if who.scope.covers_namespace(r.namespace)][:limit]


@router.get("/v1/recommendations", summary="Right-sizing and scaling recommendations in your namespaces")
async def list_recommendations(
    *,
    who: Viewer,
    ctx: Ctx,
    namespace: str | None = Query(default=None, max_length=63, pattern=_NAMESPACE),
    workload: str | None = Query(default=None, min_length=1, max_length=253, description="The workload's name."),
    status: str | None = Query(default=None, pattern="^(open|applied|superseded)$"),
    limit: int = Query(default=100, ge=1, le=1000),
) -> api.RecommendationList:
    items = await visible_recommendations(ctx, who, namespace=namespace, workload=workload, status=status, limit=limit)
    return api.RecommendationList(recommendations=items)


@router.get(
    "/v1/recommendations/usage",
    summary="A workload's usage distribution per container (what its recommendations rest on)",
)
async def workload_usage(
    *,
    who: Viewer,
    ctx: Ctx,
    namespace: str = Query(max_length=63, pattern=_NAMESPACE),
    workload: str = Query(min_length=1, max_length=253, description="The workload's name."),
) -> api.UsageResponse:
    authorize(who, Role.VIEWER, namespace=namespace, cluster=ctx.settings.cluster)
    request = api.UsageRequest(namespace=namespace, workload=workload)
    return await ctx.services.call(api.SERVICE, "usage", request, api.UsageResponse)


async def _find(ctx: Ctx, who: Principal, recommendation_id: str) -> api.RecommendationView:
    items = await visible_recommendations(ctx, who, namespace=None, workload=None, status=None, limit=_LOOKUP_LIMIT)
    for item in items:
        if item.id == recommendation_id:
            return item
    raise ApiProblem(404, f"no recommendation {recommendation_id} (or not visible to you)", slug="not-found")


@router.post(
    "/v1/recommendations/{recommendation_id}/apply",
    summary="Apply an open recommendation as recommended (or check it with dry_run)",
)
async def apply_recommendation(
    *,
    body: ApplyRecommendation,
    who: Operator,
    ctx: Ctx,
    rid: RequestId,
    recommendation_id: str = Path(min_length=1, max_length=200),
) -> api.ApplyRecommendationResponse:
    found = await _find(ctx, who, recommendation_id)
    authorize(who, Role.OPERATOR, namespace=found.namespace, cluster=ctx.settings.cluster)
    request = api.ApplyRecommendationRequest(
        recommendation_id=found.id,
        actor=actor_of(who),
        dry_run=body.dry_run,
        comment=body.comment,
        caller=caller_of(who, rid),
    )
    return await ctx.services.call(api.SERVICE, "apply_recommendation", request, api.ApplyRecommendationResponse)
