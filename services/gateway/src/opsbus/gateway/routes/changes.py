"""`/v1/changes`: the change timeline (what changed on workloads, config objects, autoscalers and nodes, observed
by the watcher or written by opsbus), newest first, paginated by an opaque cursor, limited in SQL to the
caller's namespaces and clusters like every read. ConfigMap and Secret entries carry content digests only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from opsbus.common.events.payloads import ChangeKind, ChangeOrigin
from opsbus.gateway.auth import Ctx, Viewer
from opsbus.gateway.problems import PROBLEM_RESPONSES, ApiProblem
from opsbus.gateway.routes.trail import _check_filter, page_cursor, visibility_of
from opsbus.gateway.timeline import ChangeFilter

router = APIRouter(responses=PROBLEM_RESPONSES)
_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_\-]{0,252}$"
_OBJECT_NAME = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"


class Change(BaseModel):
    id: str = Field(description="Id of the change.recorded event.")
    time: datetime = Field(description="When the change was observed or made.")
    service: str = Field(description="The opsbus service that recorded it (watcher, deployer, healer, optimizer).")
    cluster: str
    namespace: str | None = Field(description="Null for cluster-scoped objects (nodes).")
    kinds: list[ChangeKind]
    origin: ChangeOrigin
    summary: str
    change: dict[str, Any] = Field(description="The change.recorded payload: object, workload, diff, actor...")
    correlation_id: str | None = Field(description="The request or alert that started the chain, for opsbus writes.")
    causation_id: str | None = Field(description="The direct cause of an opsbus write.")


class ChangePage(BaseModel):
    items: list[Change]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page; null at the end.")


@router.get("/v1/changes", tags=["changes"], summary="The change timeline, newest first")
async def changes(
    *,
    who: Viewer,
    ctx: Ctx,
    namespace: str | None = Query(default=None, pattern=_NAME),
    cluster: str | None = Query(default=None, pattern=_NAME),
    workload: str | None = Query(
        default=None, pattern=_OBJECT_NAME, description="A workload's name, or the changed object's own name."
    ),
    kind: ChangeKind | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: str | None = Query(default=None, max_length=20),
    limit: int = Query(default=50, ge=1, le=500),
) -> ChangePage:
    _check_filter(who, namespace, cluster)
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise ApiProblem(422, f"{name} needs a time zone (e.g. 2025-03-14T09:00:00Z)", slug="validation")
    if since is not None and until is not None and until <= since:
        raise ApiProblem(422, "until must be after since", slug="validation")
    f = ChangeFilter(
        namespace, cluster, workload, kind.value if kind else None, since, until, page_cursor(cursor), limit
    )
    rows = await ctx.timeline.changes(f, visibility_of(who))
    items = [
        Change.model_construct(
            id=r["event_id"],
            time=r["time"],
            service=r["service"],
            cluster=r["cluster"],
            namespace=r["namespace"],
            kinds=[ChangeKind(k) for k in r["kinds"]],
            origin=ChangeOrigin(r["origin"]),
            summary=r["summary"],
            change=r["change"],
            correlation_id=r["correlation_id"],
            causation_id=r["causation_id"],
        )
        for r in rows
    ]
    return ChangePage.model_construct(items=items, next_cursor=str(rows[-1]["seq"]) if len(rows) == limit else None)
