"""`/v1/audit` (who did what, from every service's `audit.recorded`) and `/v1/incidents` (alerts with their
diagnosis, recoveries and notifications): filtered, newest first, paginated by an opaque cursor, and limited in SQL to
the caller's namespaces and clusters.

Pages are built with `model_construct`: the rows come from typed columns of the gateway's own tables, so
validating every field of every row again was about a tenth of an audit page's CPU. The response is still
serialised by the declared models, and documented by them in the OpenAPI.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from opsbus.gateway.auth import Ctx, Viewer
from opsbus.gateway.domain.access import Denied, Principal, visible_clusters, visible_namespaces
from opsbus.gateway.problems import PROBLEM_RESPONSES, ApiProblem
from opsbus.gateway.readmodel import AuditFilter, IncidentFilter, Visibility

router = APIRouter(responses=PROBLEM_RESPONSES)
_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_\-]{0,252}$"


class AuditEntry(BaseModel):
    id: str
    time: datetime
    service: str
    cluster: str
    namespace: str | None
    actor: dict[str, str]
    action: str
    target: dict[str, str | None]
    outcome: str
    reason: str
    details: dict[str, Any]
    request_id: str | None
    correlation_id: str | None
    dry_run: bool


class AuditPage(BaseModel):
    items: list[AuditEntry]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next (older) page; null at the end. A search of several conditions "
        "looks through a bounded stretch of the trail per page: its page may hold fewer entries than `limit`, "
        "even none, and still have a `next_cursor`."
    )


class ChainEvent(BaseModel):
    id: str
    type: str
    time: datetime
    subject: str
    data: dict[str, Any]


class Incident(BaseModel):
    id: str = Field(description="Id of the alert.fired event; the correlation id of everything that followed.")
    cluster: str
    namespace: str | None
    fingerprint: str
    alertname: str
    severity: str
    status: Literal["firing", "resolved"]
    source: str
    summary: str
    subject: str
    labels: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None
    recoveries: list[ChainEvent]
    notifications: list[ChainEvent]
    trace_id: str | None = Field(
        default=None,
        description="W3C trace id of the alert.fired event (the trace of detection, recovery and notification): "
        "Jaeger shows it at <jaeger>/trace/<trace id>; null when the alert carried no trace context.",
    )
    alert: dict[str, Any] | None = Field(default=None, description="The full alert with evidence (single GET).")
    diagnosis: ChainEvent | None = Field(
        default=None,
        description="The analyzer's latest diagnosis (diagnosis.made or the last diagnosis.revised): ranked probable "
        "causes with evidence and a suggested action, or outcome `unknown`; null until the analyzer has answered.",
    )


class IncidentPage(BaseModel):
    items: list[Incident]
    next_cursor: str | None


def visibility_of(who: Principal) -> Visibility:
    return Visibility(visible_namespaces(who), visible_clusters(who))


def page_cursor(value: str | None) -> int | None:
    if value is None:
        return None
    if not value.isdigit() or len(value) > 18:
        raise ApiProblem(422, "cursor is not one this API returned", slug="validation")
    return int(value)


async def audit_search(
    *,
    who: Viewer,
    namespace: str | None = Query(default=None, pattern=_NAME),
    cluster: str | None = Query(default=None, pattern=_NAME),
    action: str | None = Query(default=None, max_length=200),
    actor: str | None = Query(default=None, max_length=253, description="The actor's id (key, user, service)."),
    outcome: Literal["executed", "skipped", "dry_run", "denied", "failed"] | None = None,
    correlation_id: str | None = Query(default=None, max_length=200),
    target: str | None = Query(default=None, max_length=253, description="The target's name (workload, key...)."),
    since: datetime | None = None,
    until: datetime | None = None,
) -> AuditFilter:
    """The audit search of the page and of the CSV export: 403 out of scope, 422 for a time without a zone."""
    _check_filter(who, namespace, cluster)
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise ApiProblem(422, f"{name} needs a time zone (e.g. 2025-03-14T09:00:00Z)", slug="validation")
    return AuditFilter(namespace, cluster, action, actor, outcome, correlation_id, since, until, target=target)


AuditSearch = Annotated[AuditFilter, Depends(audit_search)]


def _check_filter(who: Principal, namespace: str | None, cluster: str | None) -> None:
    """Asking for a namespace or cluster outside your scope is 403, not an empty page."""
    if namespace is not None and not who.scope.covers_namespace(namespace):
        raise Denied(f"not allowed on namespace {namespace}")
    if cluster is not None and not who.scope.covers_cluster(cluster):
        raise Denied(f"not allowed in cluster {cluster}")


@router.get("/v1/audit", tags=["audit"], summary="The audit trail: decisions and mutating calls, newest first")
async def audit(
    *,
    who: Viewer,
    ctx: Ctx,
    search: AuditSearch,
    cursor: str | None = Query(default=None, max_length=20),
    limit: int = Query(default=50, ge=1, le=500),
) -> AuditPage:
    f = dataclasses.replace(search, after=page_cursor(cursor), limit=limit)
    rows, after = await ctx.reads.audit(f, visibility_of(who))
    items = [
        AuditEntry.model_construct(
            id=r["event_id"],
            time=r["time"],
            service=r["service"],
            cluster=r["cluster"],
            namespace=r["namespace"],
            actor={"kind": r["actor_kind"], "id": r["actor_id"]},
            action=r["action"],
            target={"kind": r["target_kind"], "namespace": r["namespace"], "name": r["target_name"]},
            outcome=r["outcome"],
            reason=r["reason"],
            details=r["details"],
            request_id=r["request_id"],
            correlation_id=r["correlation_id"],
            dry_run=r["dry_run"],
        )
        for r in rows
    ]
    return AuditPage.model_construct(items=items, next_cursor=str(after) if after is not None else None)


def _incident(row: dict[str, Any], chain: list[dict[str, Any]], *, full: bool) -> Incident:
    events = [
        ChainEvent.model_construct(
            id=e["event_id"], type=e["type"], time=e["time"], subject=e["subject"], data=e["data"]
        )
        for e in chain
    ]
    return Incident.model_construct(
        id=row["id"],
        cluster=row["cluster"],
        namespace=row["namespace"],
        fingerprint=row["fingerprint"],
        alertname=row["alertname"],
        severity=row["severity"],
        status=row["status"],
        source=row["source"],
        summary=row["summary"],
        subject=row["subject"],
        labels=row["labels"],
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        trace_id=row["trace_id"],
        recoveries=[e for e in events if ".recovery." in e.type],
        notifications=[e for e in events if ".notify." in e.type],
        alert=row["alert"] if full else None,
        diagnosis=_latest_diagnosis(events),
    )


def _latest_diagnosis(events: list[ChainEvent]) -> ChainEvent | None:
    """The diagnosis with the highest revision (revisions may arrive out of order across streams)."""
    diagnoses = [e for e in events if ".diagnosis." in e.type]
    return max(diagnoses, key=lambda e: (int(e.data.get("revision", 0)), e.time), default=None)


@router.get("/v1/incidents", tags=["incidents"], summary="Alerts with their recoveries and notifications")
async def incidents(
    *,
    who: Viewer,
    ctx: Ctx,
    namespace: str | None = Query(default=None, pattern=_NAME),
    cluster: str | None = Query(default=None, pattern=_NAME),
    status: Literal["firing", "resolved"] | None = None,
    severity: Literal["critical", "warning", "info"] | None = None,
    alertname: str | None = Query(default=None, max_length=200),
    since: datetime | None = None,
    cursor: str | None = Query(default=None, max_length=20),
    limit: int = Query(default=50, ge=1, le=200),
) -> IncidentPage:
    _check_filter(who, namespace, cluster)
    f = IncidentFilter(namespace, cluster, status, severity, alertname, since, page_cursor(cursor), limit)
    rows = await ctx.reads.incidents(f, visibility_of(who))
    chains = await ctx.reads.chain([r["id"] for r in rows])
    items = [_incident(r, chains.get(r["id"], []), full=False) for r in rows]
    return IncidentPage.model_construct(items=items, next_cursor=str(rows[-1]["seq"]) if len(rows) == limit else None)


@router.get("/v1/incidents/{incident_id}", tags=["incidents"], summary="One incident with its evidence")
async def incident(*, who: Viewer, ctx: Ctx, incident_id: str = Path(min_length=1, max_length=200)) -> Incident:
    row = await ctx.reads.incident(incident_id)
    if row is None or not (who.scope.covers_namespace(row["namespace"]) and who.scope.covers_cluster(row["cluster"])):
        raise ApiProblem(404, f"no incident {incident_id}", slug="not-found")
    chains = await ctx.reads.chain([incident_id])
    return _incident(row, chains[incident_id], full=True)
