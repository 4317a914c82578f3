"""group epochs (notification ids that never collide) and the per-integration outcome of every routed alert

A group row is deleted when it empties and re-created by the next alert with the same key; its sequence then
restarts. Ids derived from (group key, sequence) were reused and the insert of the new notification was
silently dropped (issue 29). Each group now carries an epoch chosen when the row is created and never reused;
notification ids derive from (group key, epoch, sequence) and the unique key of `notifications` includes it.

`alert_outcomes` holds one row per (routed event, group, integration) and its state (routed, queued,
delivered, dead, muted, not_sent): the housekeeping check counts rows still routed or queued past a bound.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

SCHEMA = "notifier"
TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("groups", sa.Column("epoch", sa.String(36), nullable=True), schema=SCHEMA)
    op.execute("UPDATE notifier.groups SET epoch = gen_random_uuid()::text")
    op.alter_column("groups", "epoch", nullable=False, schema=SCHEMA)
    op.add_column(
        "notifications",
        sa.Column("epoch", sa.String(36), nullable=False, server_default="", comment="the group's epoch"),
        schema=SCHEMA,
    )
    op.alter_column("notifications", "epoch", server_default=None, schema=SCHEMA)
    op.drop_constraint("uq_notifications_group_key_seq_integration", "notifications", schema=SCHEMA)
    op.create_unique_constraint(
        "uq_notifications_group_key_epoch_seq_integration",
        "notifications",
        ["group_key", "epoch", "seq", "integration"],
        schema=SCHEMA,
    )
    op.create_table(
        "alert_outcomes",
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("group_key", sa.String(500), nullable=False),
        sa.Column("integration", sa.String(64), nullable=False, comment="<kind>/<index>, or '-' for none"),
        sa.Column("receiver", sa.String(200), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, comment="the alert's status: firing or resolved"),
        sa.Column("state", sa.String(16), nullable=False, comment="routed, queued, delivered, dead, muted, not_sent"),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("notification_id", sa.String(64), nullable=True),
        sa.Column("routed_at", TZ, nullable=False),
        sa.Column("due_at", TZ, nullable=False, comment="when the row should have left routed/queued"),
        sa.Column("updated_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("event_id", "group_key", "integration", name="pk_alert_outcomes"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_alert_outcomes_open_due_at",
        "alert_outcomes",
        ["due_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("state IN ('routed', 'queued')"),
    )
    op.create_index(
        "ix_alert_outcomes_notification", "alert_outcomes", ["notification_id", "integration"], schema=SCHEMA
    )
    op.create_index("ix_alert_outcomes_group_key", "alert_outcomes", ["group_key"], schema=SCHEMA)
    op.create_index("ix_alert_outcomes_updated_at", "alert_outcomes", ["updated_at"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_table("alert_outcomes", schema=SCHEMA)
    op.drop_constraint("uq_notifications_group_key_epoch_seq_integration", "notifications", schema=SCHEMA)
    op.execute(
        "DELETE FROM notifier.notifications n USING notifier.notifications m "
        "WHERE n.group_key = m.group_key AND n.seq = m.seq AND n.integration = m.integration "
        "AND n.created_at < m.created_at"
    )
    op.create_unique_constraint(
        "uq_notifications_group_key_seq_integration",
        "notifications",
        ["group_key", "seq", "integration"],
        schema=SCHEMA,
    )
    op.drop_column("notifications", "epoch", schema=SCHEMA)
    op.drop_column("groups", "epoch", schema=SCHEMA)
