"""The optimizer's read-only request-reply answers (`opsbus.svc.optimizer.usage`, `.list_recommendations`):
plain reads of its store, apart from the executor that writes it."""

from __future__ import annotations

from sqlalchemy import select

from opsbus.common.events.payloads.scale import ScaleRecommended
from opsbus.common.store import Database
from opsbus.optimizer import store
from opsbus.optimizer.domain.api import (
    ListRecommendationsRequest,
    RecommendationList,
    RecommendationView,
    UsageRequest,
    UsageResponse,
)
from opsbus.optimizer.domain.distribution import container_view
from opsbus.optimizer.domain.vertical import ContainerUsage


async def usage_of(db: Database, req: UsageRequest) -> UsageResponse:
    """The usage remembered per container of one workload (read only: no lock, nothing saved)."""
    t = store.usage_checkpoints
    query = select(t.c.container, t.c.state).where(t.c.namespace == req.namespace, t.c.workload == req.workload)
    async with db.sessions() as s:
        rows = (await s.execute(query.order_by(t.c.container))).all()
    containers = [container_view(r.container, ContainerUsage.from_json(r.state)) for r in rows]
    return UsageResponse(namespace=req.namespace, workload=req.workload, containers=containers)


async def list_recommendations(db: Database, req: ListRecommendationsRequest) -> RecommendationList:
    r = store.recommendations
    q = select(r).order_by(r.c.created_at.desc()).limit(req.limit)
    if req.namespace:
        q = q.where(r.c.namespace == req.namespace)
    if req.workload:
        q = q.where(r.c.workload == req.workload)
    if req.status:
        q = q.where(r.c.status == req.status)
    async with db.sessions() as s:
        rows = (await s.execute(q)).all()
    return RecommendationList(
        recommendations=[
            RecommendationView(
                id=row.id,
                namespace=row.namespace,
                workload=row.workload,
                created_at=row.created_at,
                action=row.action,
                guard=row.guard,
                reason=row.reason,
                status=row.status,
                recommendation=ScaleRecommended.model_validate(row.payload),
            )
            for row in rows
        ]
    )
