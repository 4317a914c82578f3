"""Read-only views of the notifier for the console: what a silence would mute, the delivery log, and what
became of one alert per receiver.

These answer "will this silence catch the alert I mean?" before it is created, "did the page go out, and how
many tries did it take?" and "was this incident's notification muted?". They read the notifier's own tables
(`groups`, `firing_alerts`, `delivery_log`, `alert_outcomes`) and never write; whether an alert is muted is
decided by the same matchers as the flush (`domain.matchers`), so the preview cannot disagree with the notifier.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from opsbus.common.api.notifier import (
    AlertOutcomeList,
    AlertOutcomesRequest,
    AlertOutcomeView,
    DeliveryAttempt,
    DeliveryList,
    FiringAlert,
    ListDeliveriesRequest,
    PreviewSilenceRequest,
    SilencePreview,
)
from opsbus.common.errors import PermanentError
from opsbus.common.store import Database
from opsbus.notifier import store
from opsbus.notifier.domain.matchers import MatcherError, matches_all, parse_all


async def preview_silence(db: Database, req: PreviewSilenceRequest) -> SilencePreview:
    """The firing alerts the notifier holds (in its aggregation groups, where the flush looks for them, and in
    `firing_alerts`, kept for inhibition), each once, and those the matchers select."""
    try:
        matchers = parse_all(req.matchers)
    except MatcherError as exc:
        raise PermanentError(str(exc)) from exc
    firing: dict[str, FiringAlert] = {}
    async with db.sessions() as session:
        for alerts in (await session.execute(select(store.groups.c.alerts))).scalars():
            for fingerprint, notice in alerts.items():
                if notice.get("status") == "firing" and not notice.get("ephemeral"):
                    since = datetime.fromisoformat(notice["starts_at"])
                    firing.setdefault(
                        fingerprint, FiringAlert(fingerprint=fingerprint, labels=notice["labels"], since=since)
                    )
        t = store.firing_alerts
        for r in (await session.execute(select(t))).all():
            firing.setdefault(
                r.fingerprint, FiringAlert(fingerprint=r.fingerprint, labels=r.labels, since=r.updated_at)
            )
    ordered = sorted(firing.values(), key=lambda a: a.since, reverse=True)
    hits = [a for a in ordered if matches_all(matchers, a.labels)]
    return SilencePreview(alerts=hits, firing=len(ordered))


async def list_deliveries(db: Database, req: ListDeliveriesRequest) -> DeliveryList:
    t = store.delivery_log
    q = select(t).order_by(t.c.id.desc()).limit(req.limit)
    if req.before is not None:
        q = q.where(t.c.id < req.before)
    if req.outcome is not None:
        q = q.where(t.c.outcome == req.outcome)
    if req.receiver is not None:
        q = q.where(t.c.receiver == req.receiver)
    async with db.sessions() as session:
        rows = (await session.execute(q)).all()
    items = [
        DeliveryAttempt(
            id=r.id,
            notification_id=r.notification_id,
            integration=r.integration,
            receiver=r.receiver,
            channel=r.channel,
            attempt=r.attempt,
            outcome=r.outcome,
            status_code=r.status_code,
            error=r.error,
            retry_after_seconds=r.retry_after_seconds,
            latency_ms=r.latency_ms,
            at=r.at,
        )
        for r in rows
    ]
    return DeliveryList(items=items, next_before=items[-1].id if len(items) == req.limit else None)


async def alert_outcomes(db: Database, req: AlertOutcomesRequest) -> AlertOutcomeList:
    t = store.alert_outcomes
    q = select(t).where(t.c.fingerprint == req.fingerprint).order_by(t.c.updated_at.desc()).limit(req.limit)
    if req.since is not None:
        q = q.where(t.c.routed_at >= req.since)
    async with db.sessions() as session:
        rows = (await session.execute(q)).all()
    return AlertOutcomeList(
        items=[
            AlertOutcomeView(
                event_id=r.event_id,
                receiver=r.receiver,
                integration=r.integration,
                status=r.status,
                state=r.state,
                reason=r.reason,
                notification_id=r.notification_id,
                routed_at=r.routed_at,
                updated_at=r.updated_at,
            )
            for r in rows
        ]
    )
