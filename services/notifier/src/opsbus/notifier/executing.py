"""The notifier's executor: applies the planners' decisions to PostgreSQL, the channels and the outbox.

Three steps, each its own transaction, so a crash anywhere loses nothing and doubles nothing:

1. **ingest** (per consumed event): inbox claim, then each matched route's group row is locked
   (`FOR UPDATE`), `grouping.ingest` decides, the row is written. A redelivered event hits the inbox.
2. **flush** (ticker): due groups are claimed with `FOR UPDATE SKIP LOCKED`, so each is flushed by one
   replica; `grouping.flush` decides with silences and inhibition applied; the notification rows (unique on
   group key, epoch, sequence, integration; inserted by `accounting.queue`, which refuses a non-replay
   conflict loudly), the group's new state, the alerts' outcome rows (`domain/outcomes.py`) and audit entries
   for muted alerts commit together. The loop also runs the invariant check (`accounting.check`).
3. **deliver** (ticker): due notification rows are leased (`sending`, `lease_until`) with SKIP LOCKED and
   sent; the outcome (delivered, retry at a time honouring Retry-After, or dead letter), the delivery log row,
   the `notify.*` event and the audit entry commit together. A replica that dies mid-send leaves a lease
   that expires, and the send is retried: at-least-once towards the channel (receivers deduplicate on
   `X-Opsbus-Notification-Id`, PagerDuty on dedup_key).

Never log or publish a webhook URL, routing key or secret: channels report errors without them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.ext.asyncio import AsyncSession

from opsbus.common.api.calling import Caller
from opsbus.common.audit import Auditor
from opsbus.common.bus import Delivery
from opsbus.common.errors import NotFoundError, TransientError
from opsbus.common.events import Envelope, ObjectRef
from opsbus.common.events.payloads import ChannelKind, NotifyDelivered, NotifyFailed
from opsbus.common.events.payloads.audit import AuditOutcome
from opsbus.common.events.payloads.common import Actor, ActorKind, ResourceRef
from opsbus.common.store import Database, add, claim
from opsbus.notifier import accounting, store
from opsbus.notifier.accounting import AccountingMetrics, NotificationConflictError, Routed
from opsbus.notifier.channels import Channel, Outcome
from opsbus.notifier.domain.config import NotifierConfig
from opsbus.notifier.domain.delivery import RetryPolicy, next_delay
from opsbus.notifier.domain.grouping import Group, Notification, flush, group_key, ingest
from opsbus.notifier.domain.matchers import parse_all
from opsbus.notifier.domain.muting import Silence, mute_reasons
from opsbus.notifier.domain.notices import Notice, notice_from
from opsbus.notifier.domain.outcomes import Change, Transition, flush_changes, superseded_reason
from opsbus.notifier.domain.routing import match_routes
from opsbus.notifier.ratelimits import SharedRateLimiter

log = logging.getLogger(__name__)

CONSUMER = "notifier-events"
_EVENT_NAMESPACE = uuid.UUID("9b1f3c2e-7a44-4d0e-8f61-2c5d9e0a7b13")


@dataclass(frozen=True, slots=True)
class ExecutorOptions:
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    lease: timedelta = timedelta(seconds=60)
    batch: int = 50
    tick: float = 0.5
    unaccounted_after: timedelta = timedelta(minutes=15)  # the invariant's bound past a row's due time
    check_every: float = 30.0  # seconds between two invariant checks
    check_limit: int = 10_000  # the check counts at most this many rows (bounded cost)


class NotifierMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.notifications = Counter(
            "opsbus_notifier_notifications_total",
            "Notification rows queued by flushes (one per integration), by receiver; exact replays not counted.",
            ["receiver"],
            registry=registry,
        )
        self.attempts = Counter(
            "opsbus_notifier_delivery_attempts_total",
            "Delivery attempts by channel and outcome.",
            ["channel", "outcome"],
            registry=registry,
        )
        self.latency = Histogram(
            "opsbus_notifier_event_to_delivery_seconds",
            "From the triggering event's time to the channel accepting the notification.",
            ["channel"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
            registry=registry,
        )
        self.muted = Counter(
            "opsbus_notifier_muted_total",
            "Alerts left out of a notification (silence or inhibition).",
            registry=registry,
        )


def _now() -> datetime:
    return datetime.now(UTC)


def _target(notice: Notice) -> ResourceRef:
    obj = ObjectRef.from_subject(notice.subject)
    return ResourceRef(kind=obj.kind, name=obj.name, namespace=obj.namespace)


class Notifier:
    def __init__(
        self,
        db: Database,
        config: NotifierConfig,
        channels: Mapping[str, Mapping[str, Channel]],
        *,
        auditor: Auditor,
        cluster: str,
        registry: CollectorRegistry,
        options: ExecutorOptions | None = None,
        clock: Callable[[], datetime] = _now,
        rand: Callable[[], float] = random.random,
        on_outbox: Callable[[], None] | None = None,
    ) -> None:
        self.db = db
        self.config = config
        self.channels = channels
        self.auditor = auditor
        self.cluster = cluster
        self.options = options or ExecutorOptions()
        self.clock = clock
        self.rand = rand
        self.metrics = NotifierMetrics(registry)
        self.accounting = AccountingMetrics(registry)
        self._next_check = 0.0
        self._on_outbox = on_outbox or (lambda: None)
        self._outbox = store.TABLES.outbox
        self.limiter = SharedRateLimiter(db, clock)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def apply_config(self, config: NotifierConfig, channels: Mapping[str, Mapping[str, Channel]]) -> None:
        """Put a new routing configuration in force (groups already open keep their options until flushed)."""
        self.config, self.channels = config, channels
        self.wake()

    # --- 1. ingest ---------------------------------------------------------------------------------
    async def handle(self, delivery: Delivery) -> None:
        """Consumer handler: route the event into its groups (idempotent through the inbox)."""
        notice = notice_from(delivery.event)
        if notice is None:
            return
        now = self.clock()
        routes = match_routes(self.config.root, notice.labels)
        due = False
        async with self.db.sessions.begin() as session:
            if not await claim(session, store.TABLES.inbox, CONSUMER, delivery.event.id):
                return
            await self._track_firing(session, notice, now)
            for route in routes:
                key, _ = group_key(route, notice.labels)
                row = (
                    await session.execute(select(store.groups).where(store.groups.c.key == key).with_for_update())
                ).first()
                current = store.group_from(row) if row else None
                plan = ingest(current, route, notice, now, epoch=str(uuid.uuid4()))
                routed = Routed(notice, key, route.receiver, self._integrations(route.receiver))
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

    def _integrations(self, receiver: str) -> list[str]:
        cfg = self.config.receivers.get(receiver)
        return [f"{kind}/{index}" for kind, index, _ in cfg.integrations()] if cfg is not None else []

    async def _track_firing(self, session: AsyncSession, notice: Notice, now: datetime) -> None:
        if notice.ephemeral or not self.config.inhibit_rules:
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

    # --- 2. flush ----------------------------------------------------------------------------------
    async def flush_due(self) -> int:
        """Flush the groups whose time has come; the number of notifications queued.

        A group whose notification conflicts with a different stored one is rolled back alone (savepoint) and
        retried after its group_interval; the other groups commit, then the first conflict is raised."""
        now = self.clock()
        queued = 0
        conflicts: list[NotificationConflictError] = []
        async with self.db.sessions.begin() as session:
            rows = (
                await session.execute(
                    select(store.groups)
                    .where(store.groups.c.next_flush_at <= now)
                    .order_by(store.groups.c.next_flush_at)
                    .limit(self.options.batch)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return 0
            silences = await self._silences(session, now)
            sources: list[tuple[str, Mapping[str, str]]] = []
            if self.config.inhibit_rules:
                sources = [
                    (r.fingerprint, r.labels) for r in (await session.execute(select(store.firing_alerts))).all()
                ]
            for row in rows:
                group = store.group_from(row)
                try:
                    async with session.begin_nested():
                        queued += await self._flush_group(session, group, now, silences, sources)
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
        group: Group,
        now: datetime,
        silences: list[Silence],
        sources: list[tuple[str, Mapping[str, str]]],
    ) -> int:
        firing = [(fp, a.labels) for fp, a in group.alerts.items() if a.status == "firing"]
        muted = mute_reasons(firing, silences=silences, rules=self.config.inhibit_rules, sources=sources, now=now)
        receiver = self.config.receivers.get(group.receiver)
        integrations = receiver.integrations() if receiver else []
        send_resolved = any(cfg.send_resolved for _, _, cfg in integrations)
        plan = flush(group, now, muted=muted, send_resolved=send_resolved)
        for fp, why in plan.muted.items():
            self.metrics.muted.inc()
            notice = group.alerts[fp]
            audit = self.auditor.entry(
                action="notify.suppress",
                target=_target(notice),
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
            await self._emit(session, audit, notice)
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

    async def _silences(self, session: AsyncSession, now: datetime) -> list[Silence]:
        t = store.silences
        rows = (await session.execute(select(t).where(t.c.starts_at <= now, t.c.ends_at > now))).all()
        return [silence_from(r) for r in rows]

    # --- 3. deliver --------------------------------------------------------------------------------
    async def deliver_due(self) -> int:
        """Send the notifications whose attempt is due; the number of attempts made."""
        now = self.clock()
        t = store.notifications
        async with self.db.sessions.begin() as session:
            rows = (
                await session.execute(
                    select(t)
                    .where(
                        or_(
                            and_(t.c.status == "pending", t.c.next_attempt_at <= now),
                            and_(t.c.status == "sending", t.c.lease_until < now),
                        )
                    )
                    .order_by(t.c.next_attempt_at)
                    .limit(self.options.batch)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            for row in rows:
                await session.execute(
                    update(t)
                    .where(t.c.notification_id == row.notification_id, t.c.integration == row.integration)
                    .values(status="sending", lease_until=now + self.options.lease, attempts=row.attempts + 1)
                )
        if not rows:
            return 0
        await asyncio.gather(*(self._attempt(row) for row in rows))
        return len(rows)

    def _retry_policy(self, receiver: str, integration: str) -> RetryPolicy:
        cfg = self.config.receivers.get(receiver)
        if cfg is not None:
            for kind, index, integ in cfg.integrations():
                if f"{kind}/{index}" == integration and integ.max_attempts:
                    p = self.options.retry
                    return RetryPolicy(integ.max_attempts, p.base_seconds, p.max_seconds, p.max_retry_after)
        return self.options.retry

    async def _rate_wait(self, receiver: str, integration: str) -> float:
        """Seconds to wait before sending to this integration (its bucket is shared by every replica)."""
        cfg = self.config.receivers.get(receiver)
        if cfg is None:
            return 0.0
        for kind, index, integ in cfg.integrations():
            if f"{kind}/{index}" == integration and integ.rate_limit is not None:
                return await self.limiter.take(f"{receiver}/{integration}", integ.rate_limit)
        return 0.0

    async def _attempt(self, row: Any) -> None:
        attempt = row.attempts + 1
        notification = store.notification_from(row.body)
        channel = self.channels.get(row.receiver, {}).get(row.integration)
        wait = await self._rate_wait(row.receiver, row.integration)
        now = self.clock()
        if wait > 0:  # not an attempt: put it back for when the bucket has a token
            await self._reschedule(row, attempt, now + timedelta(seconds=wait))
            self._schedule_wake(wait)
            return
        started = time.perf_counter()
        if channel is None:
            outcome = Outcome(
                False,
                None,
                False,
                None,
                f"integration {row.integration} of receiver {row.receiver} is no longer configured",
            )
        else:
            try:
                outcome = await channel.send(notification)
            except Exception as exc:  # a channel bug must not lose the notification
                log.exception("channel %s raised", row.channel)
                outcome = Outcome(False, None, True, None, f"channel error ({type(exc).__name__})")
        latency_ms = (time.perf_counter() - started) * 1000
        await self._record_durably(row, notification, attempt, outcome, latency_ms)

    async def _record_durably(
        self, row: Any, n: Notification, attempt: int, outcome: Outcome, latency_ms: float
    ) -> None:
        """Record a send's outcome, retrying while PostgreSQL cannot be reached (a restart, a failover).

        Giving up at once would leave the row `sending` until its lease expires and the notification would be
        sent a second time; retrying until shortly before the lease runs out turns a database restart into a
        delay instead of a duplicate. A commit whose answer was lost is safe to retry: the row's status and attempt
        no longer match, so the retry is dropped as a lost lease.
        """
        give_up_at = time.monotonic() + self.options.lease.total_seconds() * 0.8
        delay = 0.2
        while True:
            try:
                await self._record(row, n, attempt, outcome, latency_ms)
                return
            except (DBAPIError, DisconnectionError, OSError) as exc:
                if time.monotonic() + delay > give_up_at:
                    raise
                log.warning(
                    "notification %s/%s: recording the outcome failed (%s); retrying in %.1fs",
                    n.id,
                    row.integration,
                    type(exc).__name__,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _reschedule(self, row: Any, attempt: int, at: datetime) -> None:
        t = store.notifications
        async with self.db.sessions.begin() as session:
            await session.execute(
                update(t)
                .where(
                    t.c.notification_id == row.notification_id,
                    t.c.integration == row.integration,
                    t.c.status == "sending",
                    t.c.attempts == attempt,
                )
                .values(status="pending", attempts=attempt - 1, next_attempt_at=at, lease_until=None)
            )
            await accounting.delivery_outcome(
                session, row.notification_id, row.integration, status="pending", reason="", now=at
            )

    async def _record(self, row: Any, n: Notification, attempt: int, outcome: Outcome, latency_ms: float) -> None:
        now = self.clock()
        policy = self._retry_policy(row.receiver, row.integration)
        delay = None
        if not outcome.delivered and outcome.retryable:
            delay = next_delay(policy, attempt, retry_after=outcome.retry_after, rand=self.rand)
        if outcome.delivered:
            status, log_outcome = "delivered", "delivered"
        elif delay is not None:
            status, log_outcome = "pending", "retry"
        else:
            status, log_outcome = "dead", "dead"
        next_at = now + timedelta(seconds=delay) if delay is not None else None
        t = store.notifications
        first = n.alerts[0]
        common: dict[str, Any] = {
            "notification_id": n.id,
            "channel": ChannelKind(row.channel),
            "receiver": row.receiver,
            "group_key": n.group_key,
            "notification_key": n.group_key[:255],
            "attempt": attempt,
            "event_ids": tuple(a.event_id for a in n.alerts),
            "alert_fingerprints": tuple(a.fingerprint for a in n.alerts if not a.ephemeral),
            "status_code": outcome.status_code,
            "latency_ms": latency_ms,
        }
        payload: NotifyDelivered | NotifyFailed
        if outcome.delivered:
            payload = NotifyDelivered(**common)
        else:
            payload = NotifyFailed(
                **common,
                error=(outcome.error or "failed")[:2048],
                retryable=outcome.retryable,
                final=status == "dead",
                retry_after_seconds=outcome.retry_after,
                next_attempt_at=next_at,
            )
        event_id = str(uuid.uuid5(_EVENT_NAMESPACE, f"{n.id}/{row.integration}/{attempt}"))
        event = Envelope.build(
            payload,
            service="notifier",
            cluster=self.cluster,
            obj=_target(first).as_object_ref(),
            event_id=event_id,
            time=now,
        )
        async with self.db.sessions.begin() as session:
            updated = await session.execute(
                update(t)
                .where(
                    t.c.notification_id == row.notification_id,
                    t.c.integration == row.integration,
                    t.c.status == "sending",
                    t.c.attempts == attempt,
                )
                .values(
                    status=status,
                    lease_until=None,
                    last_error=outcome.error,
                    next_attempt_at=next_at or now,
                    finished_at=None if status == "pending" else now,
                )
                .returning(t.c.notification_id)
            )
            if updated.first() is None:  # our lease expired and another replica took over: its outcome wins
                log.warning("notification %s/%s: lease lost, outcome dropped", n.id, row.integration)
                return
            await session.execute(
                insert(store.delivery_log).values(
                    notification_id=n.id,
                    integration=row.integration,
                    receiver=row.receiver,
                    channel=row.channel,
                    attempt=attempt,
                    outcome=log_outcome,
                    status_code=outcome.status_code,
                    error=outcome.error,
                    retry_after_seconds=outcome.retry_after,
                    latency_ms=latency_ms,
                    at=now,
                )
            )
            await self._emit(session, event, first)
            reason = f"{log_outcome} on attempt {attempt}" + (f": {outcome.error}" if status == "dead" else "")
            await accounting.delivery_outcome(
                session, n.id, row.integration, status=status, reason=reason, now=next_at or now
            )
            if status != "pending":
                audit = self.auditor.entry(
                    action="notify.deliver",
                    target=_target(first),
                    outcome=AuditOutcome.EXECUTED if status == "delivered" else AuditOutcome.FAILED,
                    reason=(
                        f"delivered to {row.receiver} ({row.integration}) on attempt {attempt}"
                        if status == "delivered"
                        else f"dead letter after attempt {attempt}: {outcome.error}"
                    ),
                    details={"notification_id": n.id, "group_key": n.group_key, "integration": row.integration},
                    idempotency_key=f"deliver:{n.id}:{row.integration}",
                    time=now,
                )
                await self._emit(session, audit, first)
        self.metrics.attempts.labels(row.channel, log_outcome).inc()
        if outcome.delivered:
            for a in n.alerts:
                self.metrics.latency.labels(row.channel).observe(max(0.0, (now - a.starts_at).total_seconds()))
        if status == "dead":
            log.error(
                "notification %s to %s (%s) dead-lettered after %d attempts: %s",
                n.id,
                row.receiver,
                row.integration,
                attempt,
                outcome.error,
            )
        if delay is not None:
            self._schedule_wake(delay)

    async def _emit(self, session: AsyncSession, event: Envelope, cause: Notice) -> None:
        linked = event.model_copy(
            update={
                "correlationid": cause.correlationid or cause.event_id,
                "causationid": cause.event_id,
                "traceparent": cause.traceparent,
            }
        )
        if await add(session, self._outbox, linked):
            self._on_outbox()

    # --- silences ----------------------------------------------------------------------------------
    async def create_silence(  # noqa: PLR0917 - the silence's fields, then who asked
        self,
        matchers: list[str],
        starts_at: datetime,
        ends_at: datetime,
        created_by: str,
        comment: str,
        caller: Caller | None = None,
    ) -> Silence:
        silence = Silence(
            id=str(uuid.uuid4()),
            matchers=parse_all(matchers),
            starts_at=starts_at,
            ends_at=ends_at,
            created_by=created_by,
            comment=comment,
        )
        now = self.clock()
        async with self.db.sessions.begin() as session:
            await session.execute(
                insert(store.silences).values(
                    id=silence.id,
                    matchers=[str(m) for m in silence.matchers],
                    starts_at=starts_at,
                    ends_at=ends_at,
                    created_by=created_by,
                    comment=comment,
                    created_at=now,
                    updated_at=now,
                )
            )
            await self._audit_silence(session, silence, "notify.silence.create", created_by, comment)
            await self._audit_call(session, silence, "silence.create", caller, comment)
        return silence

    async def list_silences(self) -> list[Silence]:
        async with self.db.sessions() as session:
            rows = (await session.execute(select(store.silences).order_by(store.silences.c.created_at))).all()
        return [silence_from(r) for r in rows]

    async def expire_silence(self, silence_id: str, expired_by: str, caller: Caller | None = None) -> Silence:
        now = self.clock()
        t = store.silences
        async with self.db.sessions.begin() as session:
            row = (await session.execute(select(t).where(t.c.id == silence_id).with_for_update())).first()
            if row is None:
                raise NotFoundError(f"silence {silence_id} does not exist")
            ends = min(row.ends_at, now)
            await session.execute(update(t).where(t.c.id == silence_id).values(ends_at=ends, updated_at=now))
            silence = silence_from(row)
            silence = Silence(
                silence.id, silence.matchers, min(silence.starts_at, ends), ends, silence.created_by, silence.comment
            )
            await self._audit_silence(session, silence, "notify.silence.expire", expired_by, "expired")
            await self._audit_call(session, silence, "silence.expire", caller, "expired through the gateway")
        return silence

    async def _audit_silence(self, session: AsyncSession, silence: Silence, action: str, who: str, why: str) -> None:
        entry = self.auditor.entry(
            action=action,
            target=ResourceRef(kind="Silence", name=silence.id),
            outcome=AuditOutcome.EXECUTED,
            reason=why,
            actor=Actor(kind=ActorKind.USER, id=who),
            details={
                "matchers": [str(m) for m in silence.matchers],
                "starts_at": silence.starts_at.isoformat(),
                "ends_at": silence.ends_at.isoformat(),
            },
            idempotency_key=f"{action}:{silence.id}:{silence.ends_at.isoformat()}",
        )
        if await add(session, self._outbox, entry):
            self._on_outbox()

    async def _audit_call(
        self, session: AsyncSession, silence: Silence, action: str, caller: Caller | None, why: str
    ) -> None:
        """The gateway caller's entry (the same one the gateway recorded itself before it moved here)."""
        if caller is None:
            return
        namespace = next((m.value for m in silence.matchers if m.name == "namespace" and m.op == "="), None)
        entry = self.auditor.entry(
            action=action,
            target=ResourceRef(kind="Silence", namespace=namespace, name=silence.id),
            outcome=AuditOutcome.EXECUTED,
            reason=why,
            actor=caller.actor,
            request_id=caller.request_id,
            details={"matchers": [str(m) for m in silence.matchers], "ends_at": silence.ends_at.isoformat()},
        )
        if await add(session, self._outbox, entry):
            self._on_outbox()

    # --- the loop ----------------------------------------------------------------------------------
    def wake(self) -> None:
        self._wake.set()

    def _schedule_wake(self, delay: float) -> None:
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().call_later(max(0.0, delay), self._wake.set)

    async def run_once(self) -> tuple[int, int]:
        return await self.flush_due(), await self.deliver_due()

    async def check_invariant(self) -> accounting.Unaccounted:
        """Count routed alerts still open past their due time plus the bound, into the gauge (and the log)."""
        async with self.db.sessions() as session:
            found = await accounting.check(
                session, self.clock(), bound=self.options.unaccounted_after, limit=self.options.check_limit
            )
        self.accounting.unaccounted.set(found.count)
        if found.count:
            log.error(
                "%d routed alert(s) neither delivered, dead, muted nor deliberately not sent %s after they were "
                "due (oldest: %s)",
                found.count,
                self.options.unaccounted_after,
                "; ".join(f"event {e} group {g} {i} {s}" for e, g, i, s in found.sample),
            )
        return found

    async def _housekeeping(self) -> None:
        if time.monotonic() < self._next_check:
            return
        self._next_check = time.monotonic() + self.options.check_every
        try:
            await self.check_invariant()
        except Exception:
            log.exception("invariant check failed; retrying at the next one")

    async def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="notifier:loop")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            await task

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            await self._housekeeping()
            try:
                flushed, sent = await self.run_once()
            except Exception:
                log.exception("notifier pass failed; retrying")
                flushed = sent = 0
            if flushed or sent:
                continue
            with contextlib.suppress(TimeoutError):
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation that
                # arrives as the event fires, and this loop would then never stop.
                async with asyncio.timeout(self.options.tick):
                    await self._wake.wait()


def silence_from(row: Any) -> Silence:
    return Silence(
        id=row.id,
        matchers=parse_all(row.matchers),
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        created_by=row.created_by,
        comment=row.comment,
    )
