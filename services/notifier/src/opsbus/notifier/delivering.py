"""Step 3 of the notifier's executor: send the queued notifications and record what became of each attempt.

Due notification rows are leased (`sending`, `lease_until`) with `FOR UPDATE SKIP LOCKED` and sent through
their channel; the outcome (delivered, retry at a time honouring Retry-After, or dead letter), the delivery
log row, the `notify.*` event, the alert outcome rows and the audit entry commit together. A replica that dies
mid-send leaves a lease that expires, and the send is retried: at-least-once towards the channel (receivers
deduplicate on `X-Opsbus-Notification-Id`, PagerDuty on dedup_key). An integration over its rate limit gets
the row back for when its shared bucket has a token; that is not an attempt.

It must never log or publish a webhook URL, routing key or secret (channels report errors without them),
never record an outcome over a lease it no longer holds (the row's status and attempt must still match), and
never give up recording an outcome while the lease still protects it from a second send.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from sqlalchemy import and_, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DBAPIError, DisconnectionError

from opsbus.common.audit import Auditor
from opsbus.common.events import Envelope
from opsbus.common.events.payloads import ChannelKind, NotifyDelivered, NotifyFailed
from opsbus.common.events.payloads.audit import AuditOutcome
from opsbus.common.store import Database
from opsbus.notifier import accounting, store
from opsbus.notifier.channels import Channel, Outcome
from opsbus.notifier.domain.config import NotifierConfig
from opsbus.notifier.domain.delivery import RetryPolicy, next_delay
from opsbus.notifier.domain.grouping import Notification
from opsbus.notifier.emitting import Emitter, target
from opsbus.notifier.ratelimits import SharedRateLimiter

log = logging.getLogger(__name__)

_EVENT_NAMESPACE = uuid.UUID("9b1f3c2e-7a44-4d0e-8f61-2c5d9e0a7b13")

Channels = Mapping[str, Mapping[str, Channel]]


class DeliveryMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
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


@dataclass(frozen=True, slots=True)
class Ports:
    """Where a delivery reads its configuration and writes its outcome."""

    db: Database
    config: Callable[[], NotifierConfig]  # the configuration in force, read at each attempt
    channels: Callable[[], Channels]  # its channels, built from it
    limiter: SharedRateLimiter
    auditor: Auditor
    emitter: Emitter
    metrics: DeliveryMetrics
    cluster: str


@dataclass(frozen=True, slots=True)
class Timing:
    """Time as a delivery sees it: the clock, the retry policy and its jitter, the lease, when to look again."""

    clock: Callable[[], datetime]
    rand: Callable[[], float]
    wake_in: Callable[[float], None]  # run the loop again in this many seconds
    retry: RetryPolicy
    lease: timedelta
    batch: int


class Deliverer:
    def __init__(self, ports: Ports, timing: Timing) -> None:
        self.ports = ports
        self.timing = timing

    async def deliver_due(self) -> int:
        """Send the notifications whose attempt is due; the number of attempts made."""
        now = self.timing.clock()
        t = store.notifications
        async with self.ports.db.sessions.begin() as session:
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
                    .limit(self.timing.batch)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            for row in rows:
                await session.execute(
                    update(t)
                    .where(t.c.notification_id == row.notification_id, t.c.integration == row.integration)
                    .values(status="sending", lease_until=now + self.timing.lease, attempts=row.attempts + 1)
                )
        if not rows:
            return 0
        await asyncio.gather(*(self._attempt(row) for row in rows))
        return len(rows)

    def _retry_policy(self, receiver: str, integration: str) -> RetryPolicy:
        cfg = self.ports.config().receivers.get(receiver)
        if cfg is not None:
            for kind, index, integ in cfg.integrations():
                if f"{kind}/{index}" == integration and integ.max_attempts:
                    p = self.timing.retry
                    return RetryPolicy(integ.max_attempts, p.base_seconds, p.max_seconds, p.max_retry_after)
        return self.timing.retry

    async def _rate_wait(self, receiver: str, integration: str) -> float:
        """Seconds to wait before sending to this integration (its bucket is shared by every replica)."""
        cfg = self.ports.config().receivers.get(receiver)
        if cfg is None:
            return 0.0
        for kind, index, integ in cfg.integrations():
            if f"{kind}/{index}" == integration and integ.rate_limit is not None:
                return await self.ports.limiter.take(f"{receiver}/{integration}", integ.rate_limit)
        return 0.0

    async def _attempt(self, row: Any) -> None:
        attempt = row.attempts + 1
        notification = store.notification_from(row.body)
        channel = self.ports.channels().get(row.receiver, {}).get(row.integration)
        wait = await self._rate_wait(row.receiver, row.integration)
        now = self.timing.clock()
        if wait > 0:  # not an attempt: put it back for when the bucket has a token
            await self._reschedule(row, attempt, now + timedelta(seconds=wait))
            self.timing.wake_in(wait)
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
        give_up_at = time.monotonic() + self.timing.lease.total_seconds() * 0.8
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
        async with self.ports.db.sessions.begin() as session:
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
        now = self.timing.clock()
        policy = self._retry_policy(row.receiver, row.integration)
        delay = None
        if not outcome.delivered and outcome.retryable:
            delay = next_delay(policy, attempt, retry_after=outcome.retry_after, rand=self.timing.rand)
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
            cluster=self.ports.cluster,
            obj=target(first).as_object_ref(),
            event_id=event_id,
            time=now,
        )
        async with self.ports.db.sessions.begin() as session:
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
            await self.ports.emitter.emit(session, event, first)
            reason = f"{log_outcome} on attempt {attempt}" + (f": {outcome.error}" if status == "dead" else "")
            await accounting.delivery_outcome(
                session, n.id, row.integration, status=status, reason=reason, now=next_at or now
            )
            if status != "pending":
                audit = self.ports.auditor.entry(
                    action="notify.deliver",
                    target=target(first),
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
                await self.ports.emitter.emit(session, audit, first)
        self.ports.metrics.attempts.labels(row.channel, log_outcome).inc()
        if outcome.delivered:
            for a in n.alerts:
                self.ports.metrics.latency.labels(row.channel).observe(max(0.0, (now - a.starts_at).total_seconds()))
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
            self.timing.wake_in(delay)
