"""`/v1/deployments`: request a rollout (published as `deploy.requested` through the outbox), follow it (with its
new and old ReplicaSets), list the latest rollouts or a workload's history, abort, promote. Status, history,
ReplicaSets and commands are answered by the deployer; an abort or a promote is audited by the deployer in the
transaction that records it (the request names the caller). Every read is limited to the caller's namespaces."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Path, Query, Response, status
from pydantic import BaseModel, Field, ValidationError

from opsbus.common.api import deployer as api
from opsbus.common.events.payloads import DeployRequested
from opsbus.common.events.payloads.common import WorkloadRef
from opsbus.common.events.payloads.deploy import AnalysisSpec, BlueGreenSpec, CanarySpec, Strategy
from opsbus.common.rpc import RpcError
from opsbus.gateway.auth import Ctx, Operator, RequestId, Viewer
from opsbus.gateway.commands import actor_of, caller_of
from opsbus.gateway.domain.access import Denied, Principal, Role, authorize, visible_namespaces
from opsbus.gateway.problems import PROBLEM_RESPONSES, ApiProblem, ProblemError, pointer

router = APIRouter(prefix="/v1/deployments", tags=["deployments"], responses=PROBLEM_RESPONSES)
_ID = Path(min_length=1, max_length=200, description="The request id returned by POST /v1/deployments.")


class DeploymentRequest(BaseModel):
    """What to roll out; the deployer's rules (strategy specs, images xor manifest) are checked here: 422."""

    model_config = {
        "extra": "forbid",
        "json_schema_extra": {
            "examples": [
                {
                    "cluster": "prod",
                    "workload": {"kind": "Deployment", "namespace": "payments", "name": "checkout"},
                    "strategy": "rolling",
                    "images": {"app": "registry.example.com/payments/checkout:1.43.0"},
                    "reason": "CHG-1234",
                }
            ]
        },
    }

    cluster: str | None = Field(default=None, description="Target cluster; default: the gateway's cluster.")
    workload: WorkloadRef
    strategy: Strategy
    images: dict[str, str] = Field(default_factory=dict)
    manifest: dict[str, Any] | None = None
    to_revision: int | None = Field(default=None, ge=1)
    canary: CanarySpec | None = None
    blue_green: BlueGreenSpec | None = None
    analysis: AnalysisSpec | None = None
    progress_deadline_seconds: int = Field(default=600, ge=30, le=86_400)
    timeout_seconds: int | None = Field(default=None, ge=60)
    reason: str | None = Field(default=None, max_length=1024)


class DeploymentAccepted(BaseModel):
    request_id: str = Field(description="Id of the deploy.requested event; follow it at status_url.")
    correlation_id: str = Field(description="Every event of this rollout carries it (and the trace).")
    status_url: str


class DeploymentStatus(BaseModel):
    request_id: str
    cluster: str | None = None
    workload: str
    state: str = Field(description="requested (not yet picked up), or the deployer's state")
    rollout: api.RolloutView | None = None


class Command(BaseModel):
    reason: str = Field(default="", max_length=1024)


def _namespace_of(workload: str) -> str | None:
    parts = workload.split("/")
    return parts[1] if len(parts) == 3 else None


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Request a rollout (202: published as deploy.requested; follow Location)",
)
async def request_deployment(
    *, body: DeploymentRequest, who: Operator, ctx: Ctx, rid: RequestId, response: Response
) -> DeploymentAccepted:
    cluster = body.cluster or ctx.settings.cluster
    authorize(who, Role.OPERATOR, namespace=body.workload.namespace, cluster=cluster)
    fields = body.model_dump(exclude={"cluster"}, exclude_none=True)
    try:
        payload = DeployRequested(**fields, cluster=cluster, requester=actor_of(who))
    except ValidationError as exc:
        errors = [ProblemError(detail=e["msg"], pointer=pointer(list(e["loc"]))) for e in exc.errors()]
        raise ApiProblem(422, "the deployment request is not valid", slug="validation", errors=errors) from None
    event = await ctx.commands.request_deploy(payload, who, rid)
    location = f"/v1/deployments/{event.id}"
    response.headers["Location"] = location
    return DeploymentAccepted(request_id=event.id, correlation_id=event.correlationid or event.id, status_url=location)


_NAMESPACE = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
_CLUSTER_READ_SECONDS = 5.0  # the deployer lists ReplicaSets from the apiserver for this one
_STATES = "^(queued|running|succeeded|failed|rolledback|superseded|aborted|skipped)$"


@router.get("/recent", summary="The latest rollouts in your namespaces, newest first")
async def recent_deployments(
    *,
    who: Viewer,
    ctx: Ctx,
    namespace: str | None = Query(default=None, pattern=_NAMESPACE),
    state: str | None = Query(default=None, pattern=_STATES),
    limit: int = Query(default=50, ge=1, le=500),
) -> api.RolloutList:
    cluster = ctx.settings.cluster
    if namespace is not None:
        authorize(who, Role.VIEWER, namespace=namespace, cluster=cluster)
    if not who.scope.covers_cluster(cluster):
        return api.RolloutList(rollouts=())
    scoped = visible_namespaces(who)
    asked = (namespace,) if namespace else (tuple(sorted(scoped)) if scoped is not None else None)
    if asked == ():
        return api.RolloutList(rollouts=())
    request = api.RecentRequest(namespaces=asked, state=state, limit=limit)
    found = await ctx.services.call(api.SERVICE, "recent", request, api.RolloutList)
    visible = tuple(r for r in found.rollouts if who.scope.covers_namespace(_namespace_of(r.workload)))
    return api.RolloutList(rollouts=visible)


async def _authorize_request(
    ctx: Ctx, who: Principal, request_id: str, needs: Role
) -> tuple[dict[str, Any] | None, str]:
    row = await ctx.reads.deploy_request(request_id)
    if row is not None:
        namespace, cluster = row["namespace"], row["cluster"]
        workload = f"{row['kind']}/{namespace}/{row['name']}"
    else:
        view = await _status(ctx, request_id)
        if view is None:
            raise ApiProblem(404, f"no deployment request {request_id}", slug="not-found")
        workload, namespace, cluster = view.workload, _namespace_of(view.workload), None
    try:
        authorize(who, Role.VIEWER, namespace=namespace, cluster=cluster)
    except Denied as exc:
        raise Denied(exc.reason, hidden=True) from None
    authorize(who, needs, namespace=namespace, cluster=cluster)
    return row, workload


async def _status(ctx: Ctx, request_id: str) -> api.RolloutView | None:
    try:
        return await ctx.services.call(
            api.SERVICE, "status", api.RolloutSelector(request_id=request_id), api.RolloutView
        )
    except RpcError as exc:
        if exc.code == 404:
            return None
        raise


@router.get("/{request_id}", summary="Status of a rollout request, with progress and analysis")
async def deployment_status(*, who: Viewer, ctx: Ctx, request_id: str = _ID) -> DeploymentStatus:
    row, workload = await _authorize_request(ctx, who, request_id, Role.VIEWER)
    view = await _status(ctx, request_id)
    return DeploymentStatus(
        request_id=request_id,
        cluster=row["cluster"] if row else None,
        workload=workload,
        state=view.state if view else "requested",
        rollout=view,
    )


@router.get("/{request_id}/replicasets", summary="A rollout's new and old ReplicaSets, as they are now")
async def deployment_replica_sets(*, who: Viewer, ctx: Ctx, request_id: str = _ID) -> api.ReplicaSetsResponse:
    await _authorize_request(ctx, who, request_id, Role.VIEWER)
    selector = api.RolloutSelector(request_id=request_id)
    try:
        return await ctx.services.call(
            api.SERVICE, "replicasets", selector, api.ReplicaSetsResponse, timeout=_CLUSTER_READ_SECONDS
        )
    except RpcError as exc:
        if exc.code == 404:
            raise ApiProblem(404, f"rollout {request_id} has not started yet", slug="not-found") from None
        raise


@router.get("", summary="A workload's rollouts and revisions, newest first")
async def deployment_history(
    *,
    who: Viewer,
    ctx: Ctx,
    namespace: str = Query(pattern=_NAMESPACE),
    name: str = Query(pattern=r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"),
    kind: Literal["Deployment", "StatefulSet", "DaemonSet"] = "Deployment",
    cluster: str | None = Query(default=None, max_length=253),
    limit: int = Query(default=20, ge=1, le=500),
) -> api.HistoryResponse:
    authorize(who, Role.VIEWER, namespace=namespace, cluster=cluster or ctx.settings.cluster)
    request = api.HistoryRequest(workload=WorkloadRef(kind=kind, namespace=namespace, name=name), limit=limit)
    return await ctx.services.call(api.SERVICE, "history", request, api.HistoryResponse)


async def _command(op: str, request_id: str, body: Command, *, who: Principal, ctx: Ctx, rid: str) -> api.RolloutView:
    await _authorize_request(ctx, who, request_id, Role.OPERATOR)
    request = api.CommandRequest(
        rollout=api.RolloutSelector(request_id=request_id),
        actor=actor_of(who),
        reason=body.reason,
        caller=caller_of(who, rid),
    )
    return await ctx.services.call(api.SERVICE, op, request, api.RolloutView)


@router.post("/{request_id}/abort", summary="Abort a queued or running rollout (traffic back on the old stack)")
async def abort(*, body: Command, who: Operator, ctx: Ctx, rid: RequestId, request_id: str = _ID) -> api.RolloutView:
    return await _command("abort", request_id, body, who=who, ctx=ctx, rid=rid)


@router.post("/{request_id}/promote", summary="Promote a rollout paused for a human or by analysis")
async def promote(*, body: Command, who: Operator, ctx: Ctx, rid: RequestId, request_id: str = _ID) -> api.RolloutView:
    return await _command("promote", request_id, body, who=who, ctx=ctx, rid=rid)
