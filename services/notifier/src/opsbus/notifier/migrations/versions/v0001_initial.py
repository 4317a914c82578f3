"""initial: inbox and outbox, groups, firing alerts, notifications, delivery log, silences

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from opsbus.common.store import create_inbox_outbox, drop_inbox_outbox

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

SCHEMA = "notifier"
TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    create_inbox_outbox(op, SCHEMA)
    op.create_table(
        "groups",
        sa.Column("key", sa.String(500), nullable=False),
        sa.Column("route_id", sa.String(200), nullable=False),
        sa.Column("receiver", sa.String(200), nullable=False),
        sa.Column("labels", JSONB, nullable=False),
        sa.Column("options", JSONB, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("next_flush_at", TZ, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("log", JSONB, nullable=True),
        sa.Column("alerts", JSONB, nullable=False),
        sa.Column("updated_at", TZ, server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_groups"),
        schema=SCHEMA,
    )
    op.create_index("ix_groups_next_flush_at", "groups", ["next_flush_at"], schema=SCHEMA)
    op.create_table(
        "firing_alerts",
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("labels", JSONB, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("fingerprint", name="pk_firing_alerts"),
        schema=SCHEMA,
    )
    op.create_table(
        "notifications",
        sa.Column("notification_id", sa.String(64), nullable=False),
        sa.Column("integration", sa.String(64), nullable=False, comment="<kind>/<index> in the receiver"),
        sa.Column("group_key", sa.String(500), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("receiver", sa.String(200), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, comment="pending, sending, delivered, dead"),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", TZ, nullable=False),
        sa.Column("lease_until", TZ, nullable=True),
        sa.Column("body", JSONB, nullable=False, comment="the notification (alerts and labels), never a URL"),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("finished_at", TZ, nullable=True),
        sa.PrimaryKeyConstraint("notification_id", "integration", name="pk_notifications"),
        sa.UniqueConstraint("group_key", "seq", "integration", name="uq_notifications_group_key_seq_integration"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_notifications_due",
        "notifications",
        ["next_attempt_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("status IN ('pending', 'sending')"),
    )
    op.create_table(
        "delivery_log",
        sa.Column("id", sa.BigInteger, sa.Identity(always=False), nullable=False),
        sa.Column("notification_id", sa.String(64), nullable=False),
        sa.Column("integration", sa.String(64), nullable=False),
        sa.Column("receiver", sa.String(200), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False, comment="delivered, retry, dead"),
        sa.Column("status_code", sa.Integer, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("retry_after_seconds", sa.Float, nullable=True),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_delivery_log"),
        schema=SCHEMA,
    )
    op.create_index("ix_delivery_log_notification_id", "delivery_log", ["notification_id"], schema=SCHEMA)
    op.create_index("ix_delivery_log_at", "delivery_log", ["at"], schema=SCHEMA)
    op.create_table(
        "silences",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("matchers", JSONB, nullable=False),
        sa.Column("starts_at", TZ, nullable=False),
        sa.Column("ends_at", TZ, nullable=False),
        sa.Column("created_by", sa.String(253), nullable=False),
        sa.Column("comment", sa.Text, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_silences"),
        schema=SCHEMA,
    )
    op.create_index("ix_silences_ends_at", "silences", ["ends_at"], schema=SCHEMA)


def downgrade() -> None:
    for table in ("silences", "delivery_log", "notifications", "firing_alerts", "groups"):
        op.drop_table(table, schema=SCHEMA)
    drop_inbox_outbox(op, SCHEMA)
