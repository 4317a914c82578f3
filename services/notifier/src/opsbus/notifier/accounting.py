"""What was queued, and what became of every routed alert: the notifier's defence against silent loss.

Issue 29: a notification whose id was already taken was dropped by `ON CONFLICT DO NOTHING` and still counted
as created. This module holds the effects that make such a loss impossible to miss:

* `queue` inserts one notification row per integration. A conflict that is an exact replay (same id, same
  body: the same flush run again) is fine and not counted again; any other conflict is logged, counted in
  `opsbus_notifier_notification_conflicts_total` and raised as `NotificationConflictError`.
* `alert_outcomes` rows follow `domain/outcomes.py`'s state machine, written in the same transactions as the
  group and notification rows they describe (ingest, flush, delivery outcome).
* `check` counts the rows still open (routed or queued) past their due time plus a bound, with a bounded
  query, into the gauge `opsbus_notifier_unaccounted_alerts`; the executor's loop runs it periodically.

It must never swallow a conflict, and never write a state change outside `outcomes.TRANSITIONS`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from opsbus.common.errors import ConflictError
from opsbus.notifier import store
from opsbus.notifier.domain.grouping import Notification
from opsbus.notifier.domain.notices import Notice
from opsbus.notifier.domain.outcomes import NO_INTEGRATION, OPEN, Change, State, Transition, sources, target

log = logging.getLogger(__name__)


class NotificationConflictError(ConflictError):
    """A notification row with this identity exists and is not the same notification: never dropped silently."""


class AccountingMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.conflicts = Counter(
            "opsbus_notifier_notification_conflicts_total",
            "Notification inserts refused because a different notification holds the same identity (a bug).",
            ["receiver"],
            registry=registry,
        )
        self.replays = Counter(
            "opsbus_notifier_flush_replays_total",
            "Notification inserts that found the identical row already queued (a flush run again): not re-queued.",
            registry=registry,
        )
        self.unaccounted = Gauge(
            "opsbus_notifier_unaccounted_alerts",
            "Routed alerts (per integration) neither delivered, dead, muted nor deliberately not sent, "
            "past their due time plus the bound (OPSBUS_NOTIFIER__UNACCOUNTED_AFTER_SECONDS). Should be 0.",
            registry=registry,
        )


# --- notifications -----------------------------------------------------------------------------------
async def queue(
    session: AsyncSession, metrics: AccountingMetrics, n: Notification, *, kind: str, index: int, now: datetime
) -> bool:
    """Insert `n` for integration `<kind>/<index>`: True when inserted, False for an exact replay.
    Raises NotificationConflictError for any other conflict."""
    t = store.notifications
    integration = f"{kind}/{index}"
    body = store.notification_json(n)
    inserted = (
        await session.execute(
            insert(t)
            .values(
                notification_id=n.id,
                integration=integration,
                group_key=n.group_key,
                epoch=n.epoch,
                seq=n.seq,
                receiver=n.receiver,
                channel=kind,
                status="pending",
                attempts=0,
                next_attempt_at=now,
                body=body,
                created_at=now,
            )
            .on_conflict_do_nothing()
            .returning(t.c.notification_id)
        )
    ).first()
    if inserted is not None:
        return True
    same_identity = (t.c.notification_id == n.id) | (
        (t.c.group_key == n.group_key) & (t.c.epoch == n.epoch) & (t.c.seq == n.seq)
    )
    mine = select(t.c.notification_id, t.c.body).where(same_identity, t.c.integration == integration)
    held = (await session.execute(mine)).all()
    if len(held) == 1 and held[0].notification_id == n.id and held[0].body == body:
        metrics.replays.inc()
        log.info("notification %s/%s already queued by the same flush: replay, not queued again", n.id, integration)
        return False
    metrics.conflicts.labels(n.receiver).inc()
    log.error(
        "notification %s/%s (group %s, epoch %s, seq %d) conflicts with a different notification already stored "
        "(%s): not queued",
        n.id,
        integration,
        n.group_key,
        n.epoch,
        n.seq,
        ", ".join(r.notification_id for r in held) or "row not visible",
    )
    raise NotificationConflictError(
        f"notification {n.id}/{integration} of group {n.group_key} conflicts with a different stored notification"
    )


# --- alert outcomes ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Routed:
    """One event routed into one group, and the receiver's integrations at that time."""

    notice: Notice
    group_key: str
    receiver: str
    integrations: Sequence[str]


async def record(
    session: AsyncSession, routed: Routed, now: datetime, *, due_at: datetime, not_sent: str | None
) -> None:
    """A row per integration: `routed` until due_at, or at once `not_sent` with the reason (ingest decided so)."""
    state = State.NOT_SENT if not_sent is not None else State.ROUTED
    rows = [
        {
            "event_id": routed.notice.event_id,
            "group_key": routed.group_key,
            "integration": integration,
            "receiver": routed.receiver,
            "fingerprint": routed.notice.fingerprint,
            "status": routed.notice.status,
            "state": state.value,
            "reason": not_sent,
            "routed_at": now,
            "due_at": due_at,
            "updated_at": now,
        }
        for integration in (routed.integrations or (NO_INTEGRATION,))
    ]
    await session.execute(insert(store.alert_outcomes).values(rows).on_conflict_do_nothing())


async def apply(session: AsyncSession, group_key: str, changes: Iterable[Change], now: datetime) -> None:
    """Apply flush or ingest changes, in order, each from its source states only."""
    t = store.alert_outcomes
    for change in changes:
        where = [t.c.group_key == group_key, t.c.event_id.in_(change.event_ids), _from(change.transition)]
        if change.integrations is not None:
            where.append(t.c.integration.in_(change.integrations))
        values: dict[str, Any] = {"state": target(change.transition).value, "reason": change.reason, "updated_at": now}
        if change.notification_id is not None:
            values |= {"notification_id": change.notification_id, "due_at": now}
        await session.execute(update(t).where(*where).values(**values))


async def delivery_outcome(
    session: AsyncSession, notification_id: str, integration: str, *, status: str, reason: str, now: datetime
) -> None:
    """The notification row for this integration reached `status`: delivered or dead end its alerts' rows; a
    retry (pending) moves their due time to the next attempt."""
    t = store.alert_outcomes
    mine = [t.c.notification_id == notification_id, t.c.integration == integration]
    if status == "pending":
        await session.execute(update(t).where(*mine, t.c.state == State.QUEUED.value).values(due_at=now))
        return
    transition = Transition.DELIVER if status == "delivered" else Transition.DEAD_LETTER
    await session.execute(
        update(t).where(*mine, _from(transition)).values(state=target(transition).value, reason=reason, updated_at=now)
    )


def _from(transition: Transition) -> Any:
    return store.alert_outcomes.c.state.in_(sorted(s.value for s in sources(transition)))


# --- the invariant -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Unaccounted:
    count: int  # capped at the check's limit
    sample: tuple[tuple[str, str, str, str], ...]  # (event id, group key, integration, state), oldest first


async def check(session: AsyncSession, now: datetime, *, bound: timedelta, limit: int) -> Unaccounted:
    """Rows still open past due_at + bound: an index range scan on the open rows, capped at `limit`."""
    t = store.alert_outcomes
    overdue = (t.c.state.in_(sorted(s.value for s in OPEN)), t.c.due_at < now - bound)
    capped = select(t.c.event_id).where(*overdue).limit(limit).subquery()
    count = (await session.execute(select(func.count()).select_from(capped))).scalar_one()
    oldest = select(t.c.event_id, t.c.group_key, t.c.integration, t.c.state).where(*overdue)
    sample = (await session.execute(oldest.order_by(t.c.due_at).limit(5))).all()
    return Unaccounted(int(count), tuple((r.event_id, r.group_key, r.integration, r.state) for r in sample))
