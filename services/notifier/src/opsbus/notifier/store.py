"""The notifier's tables in its own `notifier` schema (migrations in `migrations/`), and their (de)serialisation.

* `groups`: one row per aggregation group, holding its alerts, timers and notification log; the row lock
  (`FOR UPDATE SKIP LOCKED`) is what makes one replica flush a group at a time.
* `firing_alerts`: every alert currently firing, the sources inhibition rules look at.
* `groups.epoch`: chosen when the row is created and never reused, so a group deleted when it empties and
  re-created later starts a new id space (its sequence restarts, its epoch does not).
* `notifications`: one row per (notification, integration), primary key (notification id, integration),
  unique (group key, epoch, sequence, integration): a flush replayed after a crash cannot queue it twice.
  Status `pending` -> `sending` (leased) -> `delivered` | `pending` (retry later) | `dead` (dead letter).
* `alert_outcomes`: one row per (routed event, group, integration) with its state (`domain/outcomes.py`):
  routed -> queued -> delivered | dead, or muted / not_sent with the reason; rows still open past their
  `due_at` plus a bound are what the housekeeping check reports.
* `delivery_log`: every attempt with its outcome, status code, error (no URLs) and latency.
* `silences`: matchers, creator, comment, start and end.
* `config_versions`: every routing configuration in force so far (seeded from the file or put through the API);
  the highest version is the one in force, and its primary key is what makes two concurrent edits conflict.
* `rate_limits`: one token bucket per integration, shared by every replica (row-locked while a token is taken).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Float,
    Identity,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

from opsbus.common.store import make_metadata, store_tables
from opsbus.notifier.domain.config import GroupOptions
from opsbus.notifier.domain.grouping import Group, Notification, NotifyLog
from opsbus.notifier.domain.notices import Notice

SCHEMA = "notifier"
MIGRATIONS = Path(__file__).parent / "migrations"

metadata: MetaData = make_metadata(SCHEMA)
TABLES = store_tables(metadata)

groups = Table(
    "groups",
    metadata,
    Column("key", String(500), nullable=False),
    Column("route_id", String(200), nullable=False),
    Column("receiver", String(200), nullable=False),
    Column("labels", JSONB, nullable=False),
    Column("options", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("next_flush_at", DateTime(timezone=True), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("epoch", String(36), nullable=False),
    Column("log", JSONB, nullable=True),
    Column("alerts", JSONB, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("key", name="pk_groups"),
)
Index("ix_groups_next_flush_at", groups.c.next_flush_at)

firing_alerts = Table(
    "firing_alerts",
    metadata,
    Column("fingerprint", String(64), nullable=False),
    Column("labels", JSONB, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("fingerprint", name="pk_firing_alerts"),
)

notifications = Table(
    "notifications",
    metadata,
    Column("notification_id", String(64), nullable=False),
    Column("integration", String(64), nullable=False, comment="<kind>/<index> in the receiver"),
    Column("group_key", String(500), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("epoch", String(36), nullable=False, comment="the group's epoch"),
    Column("receiver", String(200), nullable=False),
    Column("channel", String(32), nullable=False),
    Column("status", String(16), nullable=False, comment="pending, sending, delivered, dead"),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("lease_until", DateTime(timezone=True), nullable=True),
    Column("body", JSONB, nullable=False, comment="the notification (alerts and labels), never a URL"),
    Column("last_error", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    PrimaryKeyConstraint("notification_id", "integration", name="pk_notifications"),
    UniqueConstraint(
        "group_key", "epoch", "seq", "integration", name="uq_notifications_group_key_epoch_seq_integration"
    ),
)
Index(
    "ix_notifications_due",
    notifications.c.next_attempt_at,
    postgresql_where=notifications.c.status.in_(["pending", "sending"]),
)

alert_outcomes = Table(
    "alert_outcomes",
    metadata,
    Column("event_id", String(64), nullable=False),
    Column("group_key", String(500), nullable=False),
    Column("integration", String(64), nullable=False, comment="<kind>/<index>, or '-' for none"),
    Column("receiver", String(200), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("status", String(16), nullable=False, comment="the alert's status: firing or resolved"),
    Column("state", String(16), nullable=False, comment="routed, queued, delivered, dead, muted, not_sent"),
    Column("reason", Text, nullable=True),
    Column("notification_id", String(64), nullable=True),
    Column("routed_at", DateTime(timezone=True), nullable=False),
    Column("due_at", DateTime(timezone=True), nullable=False, comment="when the row should have left routed/queued"),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("event_id", "group_key", "integration", name="pk_alert_outcomes"),
)
Index(
    "ix_alert_outcomes_open_due_at",
    alert_outcomes.c.due_at,
    postgresql_where=alert_outcomes.c.state.in_(["routed", "queued"]),
)
Index("ix_alert_outcomes_notification", alert_outcomes.c.notification_id, alert_outcomes.c.integration)
Index("ix_alert_outcomes_group_key", alert_outcomes.c.group_key)
Index("ix_alert_outcomes_updated_at", alert_outcomes.c.updated_at)

delivery_log = Table(
    "delivery_log",
    metadata,
    Column("id", BigInteger, Identity(always=False), nullable=False),
    Column("notification_id", String(64), nullable=False),
    Column("integration", String(64), nullable=False),
    Column("receiver", String(200), nullable=False),
    Column("channel", String(32), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("outcome", String(16), nullable=False, comment="delivered, retry, dead"),
    Column("status_code", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("retry_after_seconds", Float, nullable=True),
    Column("latency_ms", Float, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("id", name="pk_delivery_log"),
)
Index("ix_delivery_log_notification_id", delivery_log.c.notification_id)
Index("ix_delivery_log_at", delivery_log.c.at)

silences = Table(
    "silences",
    metadata,
    Column("id", String(64), nullable=False),
    Column("matchers", JSONB, nullable=False),
    Column("starts_at", DateTime(timezone=True), nullable=False),
    Column("ends_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(253), nullable=False),
    Column("comment", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("id", name="pk_silences"),
)
Index("ix_silences_ends_at", silences.c.ends_at)

config_versions = Table(
    "config_versions",
    metadata,
    Column("version", Integer, nullable=False),
    Column("yaml", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("source", String(8), nullable=False, comment="file or api"),
    Column("author", String(253), nullable=False),
    Column("comment", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("version", name="pk_config_versions"),
)

rate_limits = Table(
    "rate_limits",
    metadata,
    Column("key", String(300), nullable=False, comment="<receiver>/<kind>/<index>"),
    Column("tokens", Float, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("key", name="pk_rate_limits"),
)


# --- rows <-> domain ---------------------------------------------------------------------------------
def options_json(options: GroupOptions) -> dict[str, Any]:
    return {
        "group_by": list(options.group_by),
        "group_wait": options.group_wait.total_seconds(),
        "group_interval": options.group_interval.total_seconds(),
        "repeat_interval": options.repeat_interval.total_seconds(),
    }


def group_row(group: Group) -> dict[str, Any]:
    log = None
    if group.log is not None:
        log = {
            "firing": sorted(group.log.firing),
            "resolved": sorted(group.log.resolved),
            "at": group.log.at.isoformat(),
        }
    return {
        "key": group.key,
        "route_id": group.route_id,
        "receiver": group.receiver,
        "labels": dict(group.labels),
        "options": options_json(group.options),
        "created_at": group.created_at,
        "next_flush_at": group.next_flush_at,
        "seq": group.seq,
        "epoch": group.epoch,
        "log": log,
        "alerts": {fp: a.model_dump(mode="json") for fp, a in group.alerts.items()},
        "updated_at": func.now(),
    }


def group_from(row: Any) -> Group:
    o = row.options
    log = None
    if row.log is not None:
        log = NotifyLog(
            frozenset(row.log["firing"]), frozenset(row.log["resolved"]), datetime.fromisoformat(row.log["at"])
        )
    return Group(
        key=row.key,
        route_id=row.route_id,
        receiver=row.receiver,
        labels=dict(row.labels),
        options=GroupOptions(
            group_by=tuple(o["group_by"]),
            group_wait=timedelta(seconds=o["group_wait"]),
            group_interval=timedelta(seconds=o["group_interval"]),
            repeat_interval=timedelta(seconds=o["repeat_interval"]),
        ),
        created_at=row.created_at,
        next_flush_at=row.next_flush_at,
        seq=row.seq,
        epoch=row.epoch,
        log=log,
        alerts={fp: Notice.model_validate(a) for fp, a in row.alerts.items()},
    )


def notification_json(n: Notification) -> dict[str, Any]:
    return {
        "id": n.id,
        "group_key": n.group_key,
        "seq": n.seq,
        "epoch": n.epoch,
        "receiver": n.receiver,
        "status": n.status,
        "group_labels": dict(n.group_labels),
        "common_labels": dict(n.common_labels),
        "alerts": [a.model_dump(mode="json") for a in n.alerts],
        "repeat": n.repeat,
    }


def notification_from(body: dict[str, Any]) -> Notification:
    return Notification(
        id=body["id"],
        group_key=body["group_key"],
        seq=body["seq"],
        epoch=body.get("epoch", ""),
        receiver=body["receiver"],
        status=body["status"],
        group_labels=body["group_labels"],
        common_labels=body["common_labels"],
        alerts=tuple(Notice.model_validate(a) for a in body["alerts"]),
        repeat=body["repeat"],
    )
