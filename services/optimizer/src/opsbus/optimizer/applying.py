"""`apply_recommendation`: a person applies an open recommendation, as recommended, through the gateway.

The call and its audit entry are one transaction (issue 28): the entry of the caller the gateway names
(`recommendation.apply`) is written into the outbox first, in the transaction that then locks the
recommendation, patches the cluster and records the change. An entry that cannot be stored fails the call before
anything is patched; a patch that fails rolls the entry back (the refused patch is audited on its own, as
`scale.apply` failed, like the cycle's). What it must never do: decide how much; the recommendation did.

A crash between the patch and the commit leaves the change made and unrecorded, as in the cycle: the
recommendation stays open, and applying it again is refused (409) because the workload changed since.
"""

from __future__ import annotations

from sqlalchemy import select

from opsbus.common.errors import ConflictError, NotFoundError, PermanentError
from opsbus.common.events.payloads.audit import AuditOutcome
from opsbus.common.events.payloads.scale import ScaleRecommended
from opsbus.common.store import add
from opsbus.optimizer import store
from opsbus.optimizer.domain.api import ApplyRecommendationRequest, ApplyRecommendationResponse
from opsbus.optimizer.domain.planning import Action, ContainerSpec, Plan, Snapshot
from opsbus.optimizer.executing import PATCH_ERRORS, Optimizer, _ts

ACTION = "recommendation.apply"


def _changed_since(rec: ScaleRecommended, snap: Snapshot) -> str:
    """What differs between the resources a recommendation was made for and what runs now ('' when nothing):
    applying it over someone else's change, or over itself after a restart, would be a second change."""
    now = {c.name: c.requirements() for c in snap.containers}
    diffs = [
        f"container {c.container}" + (" is gone" if c.container not in now else " has other resources")
        for c in rec.containers
        if now.get(c.container) != c.current
    ]
    if rec.replicas is not None and rec.replicas.current != snap.replicas:
        diffs.append(f"replicas {rec.replicas.current} -> {snap.replicas}")
    return "; ".join(diffs)


def _plan(rec: ScaleRecommended, snap: Snapshot, req: ApplyRecommendationRequest) -> Plan:
    """The recommendation as a plan over what runs now (no step clamp: a person chose it)."""
    by_name = {c.container: c for c in rec.containers}
    steps = []
    for c in snap.containers:
        cr = by_name.get(c.name)
        if cr is None:
            steps.append(c)
            continue
        rq, lm = cr.recommended.requests, cr.recommended.limits
        steps.append(ContainerSpec(c.name, rq.cpu_millicores, lm.cpu_millicores, rq.memory_bytes, lm.memory_bytes))
    replicas = rec.replicas.recommended if rec.replicas is not None else None
    return Plan(
        workload=rec.workload,
        action=Action.DRY_RUN if req.dry_run else Action.APPLY,
        reason=f"applied by {req.actor.id}",
        mode=rec.mode,
        targets=tuple(steps),
        step=tuple(steps),
        replicas_current=snap.replicas,
        replicas_target=replicas,
        replicas_step=replicas,
    )


async def apply_recommendation(o: Optimizer, req: ApplyRecommendationRequest) -> ApplyRecommendationResponse:
    """Refused while a rollout is under way (422) or when the workload changed since (409: its containers are
    no longer the ones recommended for), and when the recommendation is no longer open (409)."""
    r = store.recommendations
    async with o.db.sessions() as s:
        row = (await s.execute(select(r).where(r.c.id == req.recommendation_id))).first()
    if row is None:
        raise NotFoundError(f"recommendation {req.recommendation_id} not found")
    if row.status != "open":
        raise ConflictError(f"recommendation {row.id} is {row.status}")
    rec = ScaleRecommended.model_validate(row.payload)
    w = await o.cluster.workload(rec.workload)
    snap = o.held(w)
    rollout = snap.rollout.active()
    now = o.clock()
    changed = _changed_since(rec, snap)
    refusal: Exception | None = None
    if rollout is not None:
        refusal = PermanentError(f"rollout in progress: {rollout}")
    elif changed:
        refusal = ConflictError(
            f"recommendation {row.id} no longer applies, the workload changed since: {changed}; "
            "the next cycle recommends from what runs now"
        )
    if refusal is not None:
        async with o.db.sessions.begin() as s:
            await o.audit(
                s,
                rec.workload,
                action="scale.apply",
                outcome=AuditOutcome.DENIED,
                reason=str(refusal),
                details={"recommendation_id": row.id},
                now=now,
                actor=req.actor,
            )
        o._wake()
        raise refusal
    p = _plan(rec, snap, req)
    failed: Exception | None = None
    rv: str | None = None
    try:
        async with o.db.sessions.begin() as s:
            status = (await s.execute(select(r.c.status).where(r.c.id == row.id).with_for_update())).scalar_one()
            if status != "open":
                raise ConflictError(f"recommendation {row.id} is {status}")
            if req.caller is not None:
                entry = o.auditor.entry(
                    action=ACTION,
                    target=rec.workload.as_resource_ref(),
                    outcome=AuditOutcome.DRY_RUN if req.dry_run else AuditOutcome.EXECUTED,
                    reason=req.comment or p.reason,
                    details={"recommendation_id": row.id, "dry_run": req.dry_run, "applied": not req.dry_run},
                    actor=req.caller.actor,
                    request_id=req.caller.request_id,
                    dry_run=req.dry_run,
                    time=_ts(now),
                )
                await add(s, store.TABLES.outbox, entry)
            if not req.dry_run:
                try:
                    rv = await o.patch(snap, p, row.id, now, pods=w.pods)
                except PATCH_ERRORS as exc:
                    failed = exc
                    raise
            await o.record_applied(s, snap, p, row.id, now=now, cause=None, actor=req.actor, new_rv=rv)
            await o.audit(
                s,
                rec.workload,
                action="scale.apply",
                outcome=AuditOutcome.DRY_RUN if req.dry_run else AuditOutcome.EXECUTED,
                reason=f"recommendation {row.id} applied on request",
                details={"recommendation_id": row.id},
                now=now,
                actor=req.actor,
                dry_run=req.dry_run,
            )
    finally:
        if failed is not None:
            await o.patch_failed(snap, row.id, failed, now, None, actor=req.actor)
    o._wake()
    return ApplyRecommendationResponse(
        recommendation_id=row.id, applied=not req.dry_run, dry_run=req.dry_run, reason=p.reason, resource_version=rv
    )
