"""`/v1/silences` (create, list, expire) and `/v1/routes` (read, validate, edit with versions) through the notifier.

A silence belongs to the namespace of its `namespace="..."` equality matcher. A caller scoped to some
namespaces must give such a matcher inside its scope (it cannot mute another tenant's alerts) and sees only
those silences; a silence without one is cluster-wide (callers with every namespace only).

Routes are the notifier's whole configuration YAML, versioned by the notifier: anyone in the cluster may read
the tree and the YAML (secrets are `${VARIABLE}` references, never values), operators may validate, and only
an admin of every namespace may put a new version, naming the version it edited (409 when it is stale).

Read-only views for the console: a silence's preview (the firing alerts its matchers select, under the same
namespace rule as creating it), the delivery log (every attempt; not namespaced, so for callers who see every
namespace) and an incident's notification outcomes per receiver (delivered, muted by a silence...).

Creating or expiring a silence and putting routes are audited by the notifier, in the transaction of its
write: the request names the caller (actor and request id) and the notifier records `silence.create`,
`silence.expire` or `routes.put` for them, so a change whose entry cannot be written is not made.
"""

from __future__ import annotations

import re
from typing import Literal

from fastapi import APIRouter, Path, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from opsbus.common.api import notifier as api
from opsbus.gateway.auth import Admin, Ctx, Operator, RequestId, Viewer
from opsbus.gateway.commands import caller_of
from opsbus.gateway.domain.access import Denied, Principal, Role, authorize, can_see
from opsbus.gateway.problems import PROBLEM_RESPONSES, ApiProblem

router = APIRouter(tags=["notifications"], responses=PROBLEM_RESPONSES)
_NAMESPACE_MATCHER = re.compile(r'^\s*namespace\s*=\s*"?([A-Za-z0-9_][A-Za-z0-9_\-]*)"?\s*$')


class SilenceCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "matchers": ['namespace="payments"', 'alertname="KubePodCrashLooping"'],
                    "duration_seconds": 3600,
                    "comment": "checkout migration",
                }
            ]
        },
    )

    matchers: list[str] = Field(min_length=1, max_length=50)
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    duration_seconds: float | None = Field(default=None, gt=0, le=90 * 86400)
    comment: str = Field(min_length=1, max_length=2000)


def namespace_of(matchers: list[str]) -> str | None:
    for m in matchers:
        found = _NAMESPACE_MATCHER.match(m)
        if found:
            return found.group(1)
    return None


def _who(who: Principal) -> str:
    return (who.display_name or who.label)[:253]


@router.post("/v1/silences", status_code=201, summary="Mute matching alerts for a while")
async def create_silence(*, body: SilenceCreate, who: Operator, ctx: Ctx, rid: RequestId) -> api.SilenceView:
    namespace = namespace_of(body.matchers)
    authorize(who, Role.OPERATOR, namespace=namespace, cluster=ctx.settings.cluster)
    if (body.ends_at is None) == (body.duration_seconds is None):
        raise ApiProblem(422, "give exactly one of ends_at and duration_seconds", slug="validation")
    request = api.CreateSilenceRequest(**body.model_dump(), created_by=_who(who), caller=caller_of(who, rid))
    return await ctx.services.call(api.SERVICE, "create_silence", request, api.SilenceView)


@router.get("/v1/silences", summary="Silences visible to you")
async def list_silences(*, who: Viewer, ctx: Ctx, state: api.SilenceState | None = None) -> api.SilenceList:
    answer = await ctx.services.call(
        api.SERVICE, "list_silences", api.ListSilencesRequest(state=state), api.SilenceList
    )
    visible = [
        s for s in answer.silences if can_see(who, namespace=namespace_of(s.matchers), cluster=ctx.settings.cluster)
    ]
    return api.SilenceList(silences=visible)


@router.delete("/v1/silences/{silence_id}", summary="Expire a silence now")
async def expire_silence(
    *, who: Operator, ctx: Ctx, rid: RequestId, silence_id: str = Path(min_length=1, max_length=64)
) -> api.SilenceView:
    answer = await ctx.services.call(api.SERVICE, "list_silences", api.ListSilencesRequest(), api.SilenceList)
    found = next((s for s in answer.silences if s.id == silence_id), None)
    namespace = namespace_of(found.matchers) if found else None
    if found is None or not can_see(who, namespace=namespace, cluster=ctx.settings.cluster):
        raise ApiProblem(404, f"no silence {silence_id}", slug="not-found")
    authorize(who, Role.OPERATOR, namespace=namespace, cluster=ctx.settings.cluster)
    request = api.ExpireSilenceRequest(id=silence_id, expired_by=_who(who), caller=caller_of(who, rid))
    return await ctx.services.call(api.SERVICE, "expire_silence", request, api.SilenceView)


class RoutesYaml(BaseModel):
    yaml: str = Field(min_length=1, max_length=1_000_000, description="A whole notifier configuration YAML.")


class RoutesUpdate(RoutesYaml):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "yaml": "route:\n  receiver: team\nreceivers:\n  - name: team\n    webhook_configs:\n"
                    "      - url: ${TEAM_HOOK_URL}\n",
                    "expected_version": 3,
                    "comment": "page the payments team directly",
                }
            ]
        },
    )

    expected_version: int = Field(ge=0, description="The version you edited; 409 when someone changed it since.")
    comment: str | None = Field(default=None, max_length=2000)


def _in_cluster(who: Principal, cluster: str) -> None:
    if not who.scope.covers_cluster(cluster):
        raise Denied(f"not allowed in cluster {cluster}")


@router.get("/v1/routes", summary="The notification routing tree in force (no secrets)")
async def get_routes(*, who: Viewer, ctx: Ctx) -> api.RoutesView:
    _in_cluster(who, ctx.settings.cluster)
    return await ctx.services.call(api.SERVICE, "get_routes", api.Empty(), api.RoutesView)


@router.post("/v1/routes/validate", summary="Validate a notifier configuration without applying it")
async def validate_routes(*, body: RoutesYaml, who: Operator, ctx: Ctx) -> api.ValidateRoutesResponse:
    request = api.ValidateRoutesRequest(yaml=body.yaml)
    return await ctx.services.call(api.SERVICE, "validate_routes", request, api.ValidateRoutesResponse)


@router.get("/v1/routes/config", summary="The notifier configuration YAML in force (or a past version)")
async def get_routes_config(
    *, who: Viewer, ctx: Ctx, version: int | None = Query(default=None, ge=1, le=2**31 - 1)
) -> api.ConfigVersion:
    _in_cluster(who, ctx.settings.cluster)
    request = api.GetConfigRequest(version=version)
    return await ctx.services.call(api.SERVICE, "get_config", request, api.ConfigVersion)


@router.get("/v1/routes/versions", summary="The notifier configuration's versions, newest first")
async def list_routes_versions(
    *, who: Viewer, ctx: Ctx, limit: int = Query(default=20, ge=1, le=200)
) -> api.ConfigVersionList:
    _in_cluster(who, ctx.settings.cluster)
    request = api.ListConfigVersionsRequest(limit=limit)
    return await ctx.services.call(api.SERVICE, "list_config_versions", request, api.ConfigVersionList)


@router.put("/v1/routes", summary="Replace the notifier configuration (admin of every namespace)")
async def put_routes(*, body: RoutesUpdate, who: Admin, ctx: Ctx, rid: RequestId) -> api.ConfigVersion:
    authorize(who, Role.ADMIN, namespace=None, cluster=ctx.settings.cluster)
    request = api.PutConfigRequest(
        yaml=body.yaml,
        expected_version=body.expected_version,
        author=_who(who),
        comment=body.comment,
        caller=caller_of(who, rid),
    )
    return await ctx.services.call(api.SERVICE, "put_config", request, api.ConfigVersion)


class SilenceMatchers(BaseModel):
    model_config = ConfigDict(extra="forbid")

    matchers: list[str] = Field(min_length=1, max_length=50)


@router.post("/v1/silences/preview", summary="The firing alerts a silence with these matchers would mute")
async def preview_silence(*, body: SilenceMatchers, who: Viewer, ctx: Ctx) -> api.SilencePreview:
    namespace = namespace_of(body.matchers)
    authorize(who, Role.VIEWER, namespace=namespace, cluster=ctx.settings.cluster)
    answer = await ctx.services.call(
        api.SERVICE, "preview_silence", api.PreviewSilenceRequest(matchers=body.matchers), api.SilencePreview
    )
    if namespace is not None and not who.scope.all_namespaces:  # the count of firing alerts in that namespace only
        mine = api.PreviewSilenceRequest(matchers=[f'namespace="{namespace}"'])
        in_namespace = await ctx.services.call(api.SERVICE, "preview_silence", mine, api.SilencePreview)
        return api.SilencePreview(alerts=answer.alerts, firing=len(in_namespace.alerts))
    return answer


@router.get("/v1/notifications/deliveries", summary="The delivery log: every attempt, newest first")
async def deliveries(
    *,
    who: Viewer,
    ctx: Ctx,
    limit: int = Query(default=100, ge=1, le=500),
    before: int | None = Query(default=None, ge=1, le=2**62),
    outcome: Literal["delivered", "retry", "dead"] | None = None,
    receiver: str | None = Query(default=None, max_length=200),
) -> api.DeliveryList:
    authorize(who, Role.VIEWER, namespace=None, cluster=ctx.settings.cluster)
    request = api.ListDeliveriesRequest(limit=limit, before=before, outcome=outcome, receiver=receiver)
    return await ctx.services.call(api.SERVICE, "list_deliveries", request, api.DeliveryList)


@router.get("/v1/incidents/{incident_id}/notifications", summary="What became of an incident's notifications")
async def incident_notifications(
    *, who: Viewer, ctx: Ctx, incident_id: str = Path(min_length=1, max_length=200)
) -> api.AlertOutcomeList:
    row = await ctx.reads.incident(incident_id)
    if row is None or not can_see(who, namespace=row["namespace"], cluster=row["cluster"]):
        raise ApiProblem(404, f"no incident {incident_id}", slug="not-found")
    request = api.AlertOutcomesRequest(fingerprint=row["fingerprint"], since=row["starts_at"])
    return await ctx.services.call(api.SERVICE, "alert_outcomes", request, api.AlertOutcomeList)
