"""Step 2 of the notifier's executor: flush the groups whose time has come into notification rows.

One transaction per pass: due groups are claimed with `FOR UPDATE SKIP LOCKED`, so each is flushed by one
replica; the pure `grouping.flush` decides with silences (`silencing.active`) and inhibition applied
(`domain/muting.py`); the notification rows (unique on group key, epoch, sequence, integration; inserted by
`accounting.queue`, which refuses a non-replay conflict loudly), the group's new state, the alerts' outcome
rows (`domain/outcomes.py`) and the audit entries of muted alerts commit together. A group whose notification
conflicts is rolled back alone (a savepoint) and retried after its group_interval.

It must never send to a channel (delivering does, from the rows queued here), never drop a conflict silently,
and never leave an alert of a flushed group without its outcome row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from opsbus.common.audit import Auditor
from opsbus.common.events.payloads.audit import AuditOutcome
from opsbus.common.store import Database
from opsbus.notifier import accounting, silencing, store
from opsbus.notifier.accounting import AccountingMetrics, NotificationConflictError
from opsbus.notifier.domain.config import NotifierConfig
from opsbus.notifier.domain.grouping import Group, flush
from opsbus.notifier.domain.muting import Silence, mute_reasons
from opsbus.notifier.domain.outcomes import flush_changes
from opsbus.notifier.emitting import Emitter, target

log = logging.getLogger(__name__)


class FlushMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.notifications = Counter(
            "opsbus_notifier_notifications_total",
            "Notification rows queued by flushes (one per integration), by receiver; exact replays not counted.",
            ["receiver"],
            registry=registry,
        )
        self.muted = Counter(
            "opsbus_notifier_muted_total",
            "Alerts left out of a notification (silence or inhibition).",
            registry=registry,
        )


class Flusher:
    def __init__(
        self,
        db: Database,
        *,
        config: Callable[[], NotifierConfig],
        auditor: Auditor,
        emitter: Emitter,
        metrics: FlushMetrics,
        accounting_metrics: AccountingMetrics,
        clock: Callable[[], datetime],
        wake: Callable[[], None],
        batch: int,
    ) -> None:
        self.db = db
        self.config = config  # the configuration in force, read at each pass
        self.auditor = auditor
        self.emitter = emitter
        self.metrics = metrics
        self.accounting = accounting_metrics
        self.clock = clock
        self.wake = wake
        self.batch = batch

    async def flush_due(self) -> int:
        """Flush the groups whose time has come; the number of notifications queued.

        A group whose notification conflicts with a different stored one is rolled back alone (savepoint) and
        retried after its group_interval; the other groups commit, then the first conflict is raised."""
        now = self.clock()
        config = self.config()
        queued = 0
        conflicts: list[NotificationConflictError] = []
        async with self.db.sessions.begin() as session:
            rows = (
                await session.execute(
                    select(store.groups)
                    .where(store.groups.c.next_flush_at <= now)
                    .order_by(store.groups.c.next_flush_at)
                    .limit(self.batch)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return 0
            silences = await silencing.active(session, now)
            sources: list[tuple[str, Mapping[str, str]]] = []
            if config.inhibit_rules:
                sources = [
                    (r.fingerprint, r.labels) for r in (await session.execute(select(store.firing_alerts))).all()
                ]
            for row in rows:
                group = store.group_from(row)
                try:
                    async with session.begin_nested():
                        queued += await self._flush_group(
                            session, config, group, now, silences=silences, sources=sources
                        )
                except NotificationConflictError as exc:
                    conflicts.append(exc)  # logged and counted by accounting.queue
                    g = store.groups
                    later = now + group.options.group_interval
                    await session.execute(update(g).where(g.c.key == group.key).values(next_flush_at=later))
        if queued:
            self.wake()
        if conflicts:
            raise conflicts[0]
        return queued

    async def _flush_group(
        self,
        session: AsyncSession,
        config: NotifierConfig,
        group: Group,
        now: datetime,
        *,
        silences: list[Silence],
        sources: list[tuple[str, Mapping[str, str]]],
    ) -> int:
        firing = [(fp, a.labels) for fp, a in group.alerts.items() if a.status == "firing"]
        muted = mute_reasons(firing, silences=silences, rules=config.inhibit_rules, sources=sources, now=now)
        receiver = config.receivers.get(group.receiver)
        integrations = receiver.integrations() if receiver else []
        send_resolved = any(cfg.send_resolved for _, _, cfg in integrations)
        plan = flush(group, now, muted=muted, send_resolved=send_resolved)
        for fp, why in plan.muted.items():
            self.metrics.muted.inc()
            notice = group.alerts[fp]
            audit = self.auditor.entry(
                action="notify.suppress",
                target=target(notice),
                outcome=AuditOutcome.SKIPPED,
                reason=why,
                details={
                    "group_key": group.key,
                    "receiver": group.receiver,
                    "fingerprint": fp,
                    "event_id": notice.event_id,
                },
                idempotency_key=f"suppress:{group.key}:{fp}:{why}",
                time=now,
            )
            await self.emitter.emit(session, audit, notice)
        queued = 0
        told: list[str] = []  # integrations holding a row of the notification (inserted or an exact replay)
        n = plan.notification
        if n is not None:
            if not integrations:
                log.warning("receiver %s has no integrations: notification %s not sent", group.receiver, n.id)
            for kind, index, cfg in integrations:
                if n.status == "resolved" and not cfg.send_resolved:
                    continue
                queued += await accounting.queue(session, self.accounting, n, kind=kind, index=index, now=now)
                told.append(f"{kind}/{index}")
            if queued:
                self.metrics.notifications.labels(group.receiver).inc(queued)
        await accounting.apply(session, group.key, flush_changes(group.alerts, plan, told), now)
        log.debug("flush %s: %s", group.key, plan.reason)
        g = store.groups
        if plan.group is None:
            await session.execute(delete(g).where(g.c.key == group.key))
        else:
            await session.execute(update(g).where(g.c.key == group.key).values(**store.group_row(plan.group)))
        return queued
