"""Step 1 of the notifier's executor: route one consumed event into its groups.

Per event, one transaction: the inbox claim (a redelivered event stops there), the firing-alert table kept for
inhibition, then for each matched route the group row is locked (`FOR UPDATE`), the pure `grouping.ingest`
decides, and the row is written together with the alert's outcome rows (`accounting.record`; an alert
replaced in its group by a newer event of the same fingerprint is marked superseded). A group created by
another replica meanwhile is a transient error: the event is redelivered and meets that replica's row.

It must never send anything or flush a group (the flush does, at the group's time), and never route an
event it has not claimed in the inbox: exactly-once effects on the groups rest on that claim.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from opsbus.common.bus import Delivery
from opsbus.common.errors import TransientError
from opsbus.common.store import Database, claim
from opsbus.notifier import accounting, store
from opsbus.notifier.accounting import Routed
from opsbus.notifier.domain.config import NotifierConfig
from opsbus.notifier.domain.grouping import group_key, ingest
from opsbus.notifier.domain.notices import Notice, notice_from
from opsbus.notifier.domain.outcomes import Change, Transition, superseded_reason
from opsbus.notifier.domain.routing import match_routes

log = logging.getLogger(__name__)

CONSUMER = "notifier-events"


class Ingester:
    def __init__(
        self,
        db: Database,
        *,
        config: Callable[[], NotifierConfig],
        clock: Callable[[], datetime],
        wake: Callable[[], None],
    ) -> None:
        self.db = db
        self.config = config  # the configuration in force, read at each event
        self.clock = clock
        self.wake = wake

    async def handle(self, delivery: Delivery) -> None:
        """Consumer handler: route the event into its groups (idempotent through the inbox)."""
        notice = notice_from(delivery.event)
        if notice is None:
            return
        now = self.clock()
        config = self.config()
        routes = match_routes(config.root, notice.labels)
        due = False
        async with self.db.sessions.begin() as session:
            if not await claim(session, store.TABLES.inbox, CONSUMER, delivery.event.id):
                return
            await self._track_firing(session, config, notice, now)
            for route in routes:
                key, _ = group_key(route, notice.labels)
                row = (
                    await session.execute(select(store.groups).where(store.groups.c.key == key).with_for_update())
                ).first()
                current = store.group_from(row) if row else None
                plan = ingest(current, route, notice, now, epoch=str(uuid.uuid4()))
                routed = Routed(notice, key, route.receiver, _integrations(config, route.receiver))
                if plan.group is None:
                    log.debug("event %s: %s", delivery.event.id, plan.reason)
                    await accounting.record(session, routed, now, due_at=now, not_sent=plan.reason)
                    continue
                replaced = current.alerts.get(notice.fingerprint) if current is not None else None
                if replaced is not None and replaced.event_id != notice.event_id:
                    change = Change(Transition.SUPERSEDE, (replaced.event_id,), None, superseded_reason(notice))
                    await accounting.apply(session, key, [change], now)
                await accounting.record(session, routed, now, due_at=plan.group.next_flush_at, not_sent=None)
                values = store.group_row(plan.group)
                if plan.created:
                    inserted = (
                        await session.execute(
                            insert(store.groups).values(**values).on_conflict_do_nothing().returning(store.groups.c.key)
                        )
                    ).first()
                    if inserted is None:  # another replica created it meanwhile: redo against its row
                        raise TransientError(f"group {key} created concurrently; retrying", delay=0.05)
                else:
                    await session.execute(update(store.groups).where(store.groups.c.key == key).values(**values))
                due = due or plan.group.next_flush_at <= now
        if due:
            self.wake()

    async def _track_firing(self, session: AsyncSession, config: NotifierConfig, notice: Notice, now: datetime) -> None:
        if notice.ephemeral or not config.inhibit_rules:
            return
        t = store.firing_alerts
        if notice.status == "firing":
            statement = insert(t).values(fingerprint=notice.fingerprint, labels=notice.labels, updated_at=now)
            await session.execute(
                statement.on_conflict_do_update(
                    index_elements=[t.c.fingerprint], set_={"labels": notice.labels, "updated_at": now}
                )
            )
        else:
            await session.execute(delete(t).where(t.c.fingerprint == notice.fingerprint))


def _integrations(config: NotifierConfig, receiver: str) -> list[str]:
    cfg = config.receivers.get(receiver)
    return [f"{kind}/{index}" for kind, index, _ in cfg.integrations()] if cfg is not None else []
