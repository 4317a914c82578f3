"""The grouping and dedup planner: Alertmanager's aggregation groups and notification log, as pure functions.

A group is (route, values of the route's group_by labels). Its timers, exactly as in Alertmanager:

* **group_wait**: a *new* group waits this long before its first notification, to collect its siblings.
* **group_interval**: after a flush, the group is looked at again this much later; an alert that joins an
  existing group therefore waits up to group_interval, never group_wait (the confusion of Alertmanager#322).
* **repeat_interval**: at a group_interval tick where nothing changed, the notification is repeated only if
  the last one is older than repeat_interval, so repeats happen at the first tick after it: the repeat is
  effectively rounded up to a multiple of group_interval.

At a flush, the notification log entry of the group (firing and resolved fingerprints last told, and when)
decides whether to send (`needs_update`, Alertmanager's DedupStage): a new firing alert, all alerts resolved
after some were told firing, a newly resolved alert (with send_resolved), or repeat_interval elapsed. An
alert that fires and resolves before the first flush is never sent. Muted alerts (silenced or inhibited) are
left out; resolved alerts and ephemeral notices leave the group after the flush; an empty group is deleted.

Every output is data; the executor persists it in the same transaction as the row locks that make several
replicas flush each group once.

Identity: notification ids derive from (group key, epoch, sequence). The epoch is chosen when the group is
created (the executor passes a fresh UUID into `ingest`, so this module stays pure), stored in the group row
and never reused. A group deleted when it empties and re-created by the next alert with the same key restarts
its sequence but not its epoch, so its ids are new (before the epoch, the Nth notification of a re-created
group reused the id of the Nth of the first one and was silently dropped: issue 29). A replayed flush reads
the same row (same epoch and sequence) and yields the same id, so the unique key still refuses a duplicate.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from opsbus.notifier.domain.config import GroupOptions, Route
from opsbus.notifier.domain.notices import Notice

_NOTIFICATION_NAMESPACE = uuid.UUID("3d0b7f0e-2b7c-4f61-9c1a-6a0e5b1f7c42")


@dataclass(frozen=True, slots=True)
class NotifyLog:
    """What the group last told its receiver (Alertmanager's nflog entry)."""

    firing: frozenset[str]
    resolved: frozenset[str]
    at: datetime


@dataclass(frozen=True, slots=True)
class Group:
    key: str
    route_id: str
    receiver: str
    labels: Mapping[str, str]
    options: GroupOptions
    created_at: datetime
    next_flush_at: datetime
    epoch: str  # chosen when the row is created, never reused: a re-created group starts a new id space
    seq: int = 0
    log: NotifyLog | None = None
    alerts: Mapping[str, Notice] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Notification:
    """One message to a receiver: the group's alerts at the moment of the flush."""

    id: str
    group_key: str
    epoch: str
    seq: int
    receiver: str
    status: str  # firing when any alert fires, else resolved
    group_labels: Mapping[str, str]
    common_labels: Mapping[str, str]
    alerts: tuple[Notice, ...]
    repeat: bool


@dataclass(frozen=True, slots=True)
class IngestPlan:
    group: Group | None  # the state to store (None: nothing to store)
    created: bool
    reason: str


@dataclass(frozen=True, slots=True)
class FlushPlan:
    notification: Notification | None
    group: Group | None  # None: the group is now empty, delete it
    reason: str
    muted: Mapping[str, str]  # fingerprint -> why it was left out
    dropped: tuple[str, ...]  # fingerprints that left the group


def group_labels(options: GroupOptions, labels: Mapping[str, str]) -> dict[str, str]:
    if options.by_all:
        return dict(sorted(labels.items()))
    return {name: labels[name] for name in sorted(options.group_by) if labels.get(name)}


def group_key(route: Route, labels: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """`<route id>:{labels}` (readable, as Alertmanager's group key) and the group labels."""
    chosen = group_labels(route.options, labels)
    text = json.dumps(chosen, sort_keys=True, separators=(",", ":"))
    key = f"{route.id}:{text}"
    if len(key) > 400:
        key = f"{route.id}:sha256:{hashlib.sha256(text.encode()).hexdigest()}"
    return key, chosen


def notification_id(key: str, epoch: str, seq: int) -> str:
    """Deterministic in (group key, epoch, sequence): a replayed flush yields the same id, a re-created group
    (same key, new epoch, sequence from 1 again) never yields an id used before."""
    return str(uuid.uuid5(_NOTIFICATION_NAMESPACE, f"{key}#{epoch}#{seq}"))


def ingest(group: Group | None, route: Route, notice: Notice, now: datetime, *, epoch: str) -> IngestPlan:
    """Put `notice` into its group (creating the group, whose first flush is group_wait away).

    `epoch` is used only when the group is created: a value never used before for this key (the executor
    passes a fresh UUID), so that the planner stays pure and the ids of the new group cannot collide."""
    if group is None:
        if notice.status == "resolved":
            return IngestPlan(None, created=False, reason="resolved alert was never in a group: nothing to tell")
        key, chosen = group_key(route, notice.labels)
        fresh = Group(
            key=key,
            route_id=route.id,
            receiver=route.receiver,
            labels=chosen,
            options=route.options,
            created_at=now,
            next_flush_at=now + route.options.group_wait,
            epoch=epoch,
            alerts={notice.fingerprint: notice},
        )
        return IngestPlan(fresh, created=True, reason="new group: first flush after group_wait")
    current = group.alerts.get(notice.fingerprint)
    if notice.status == "resolved" and current is None:
        return IngestPlan(None, created=False, reason="resolved alert not in its group (already told or dropped)")
    if current is not None and current.status == notice.status == "resolved":
        return IngestPlan(None, created=False, reason="already resolved")
    alerts = {**group.alerts, notice.fingerprint: notice}
    return IngestPlan(replace(group, alerts=alerts), created=False, reason="joined group: told at the next flush")


def needs_update(
    log: NotifyLog | None, firing: frozenset[str], resolved: frozenset[str], *, repeat_due: bool, send_resolved: bool
) -> str | None:
    """Why a notification is due, or None (Alertmanager's DedupStage.needsUpdate)."""
    if log is None:
        return "first notification" if firing else None
    if not firing <= log.firing:
        return "new firing alerts"
    if not firing:
        return "all alerts resolved" if log.firing else None
    if send_resolved and not resolved <= log.resolved:
        return "alerts resolved"
    return "repeat_interval elapsed" if repeat_due else None


def flush(
    group: Group, now: datetime, *, muted: Mapping[str, str] | None = None, send_resolved: bool = True
) -> FlushPlan:
    """The group's flush at `now` (its next_flush_at has passed): what to send and the group's next state."""
    muted = {fp: why for fp, why in (muted or {}).items() if fp in group.alerts}
    alerts = list(group.alerts.values())
    firing_notices = [a for a in alerts if a.status == "firing" and a.fingerprint not in muted]
    resolved_notices = [a for a in alerts if a.status == "resolved"]
    firing = frozenset(a.fingerprint for a in firing_notices)
    resolved = frozenset(a.fingerprint for a in resolved_notices)
    repeat_due = group.log is not None and group.log.at + group.options.repeat_interval <= now
    why = needs_update(group.log, firing, resolved, repeat_due=repeat_due, send_resolved=send_resolved)
    notification = None
    log = group.log
    seq = group.seq
    if why is not None:
        told = tuple(sorted(firing_notices, key=lambda a: (a.starts_at, a.fingerprint)))
        if send_resolved:
            told += tuple(sorted(resolved_notices, key=lambda a: (a.starts_at, a.fingerprint)))
        lasting = frozenset(a.fingerprint for a in firing_notices if not a.ephemeral)
        log = NotifyLog(firing=lasting, resolved=resolved, at=now)
        if told:
            seq += 1
            notification = Notification(
                id=notification_id(group.key, group.epoch, seq),
                group_key=group.key,
                epoch=group.epoch,
                seq=seq,
                receiver=group.receiver,
                status="firing" if firing else "resolved",
                group_labels=dict(group.labels),
                common_labels=_common(told),
                alerts=told,
                repeat=why == "repeat_interval elapsed",
            )
        else:
            why = f"{why}, but the receiver does not take resolved notifications"
    else:
        why = "muted" if muted and not firing else "nothing changed since the last notification"
    dropped = tuple(sorted(a.fingerprint for a in alerts if a.status == "resolved" or a.ephemeral))
    remaining = {fp: a for fp, a in group.alerts.items() if fp not in dropped}
    if not remaining:
        return FlushPlan(notification, None, why, muted, dropped)
    following = replace(group, alerts=remaining, seq=seq, log=log, next_flush_at=now + group.options.group_interval)
    return FlushPlan(notification, following, why, muted, dropped)


def _common(alerts: tuple[Notice, ...]) -> dict[str, str]:
    first = alerts[0].labels
    return {k: v for k, v in sorted(first.items()) if all(a.labels.get(k) == v for a in alerts[1:])}
