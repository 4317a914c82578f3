"""initial: inbox/outbox, alerts, recoveries, attempts, approvals, policy versions, deploy outcomes

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from opsbus.common.store import create_inbox_outbox, drop_inbox_outbox

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

SCHEMA = "healer"
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    create_inbox_outbox(op, SCHEMA)
    op.create_table(
        "alerts",
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("alertname", sa.String(200), nullable=False),
        sa.Column("firing", sa.Boolean(), nullable=False),
        sa.Column("event_id", sa.String(200), nullable=False),
        sa.Column("event_time", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("fingerprint", name="pk_alerts"),
        schema=SCHEMA,
    )
    op.create_table(
        "recoveries",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("alert_event_id", sa.String(200), nullable=False),
        sa.Column("alert_event", sa.JSON(), nullable=False),
        sa.Column("policy", sa.String(253), nullable=False),
        sa.Column("policy_version", sa.Integer(), nullable=False),
        sa.Column("target_key", sa.String(600), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String(253), nullable=True),
        sa.Column("lease_until", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_recoveries"),
        schema=SCHEMA,
    )
    op.create_index("ix_recoveries_fingerprint", "recoveries", ["fingerprint"], schema=SCHEMA)
    op.create_index("ix_recoveries_target_key", "recoveries", ["target_key"], schema=SCHEMA)
    op.create_table(
        "attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("recovery_id", sa.String(64), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target_key", sa.String(600), nullable=False),
        sa.Column("target", sa.JSON(), nullable=False),
        sa.Column("plan", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("deploy_request_id", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_attempts"),
        sa.UniqueConstraint("recovery_id", "step", name="uq_attempts_recovery_id_step"),
        schema=SCHEMA,
    )
    op.create_index("ix_attempts_recovery_id", "attempts", ["recovery_id"], schema=SCHEMA)
    op.create_index("ix_attempts_target_key", "attempts", ["target_key"], schema=SCHEMA)
    op.create_index("ix_attempts_started_at", "attempts", ["started_at"], schema=SCHEMA)
    op.create_table(
        "approvals",
        sa.Column("recovery_id", sa.String(64), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("action", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("requested_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("decided_by", sa.String(253), nullable=True),
        sa.Column("decided_at", TS, nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("recovery_id", "step", name="pk_approvals"),
        schema=SCHEMA,
    )
    op.create_table(
        "policy_versions",
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("author", sa.String(253), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("version", name="pk_policy_versions"),
        schema=SCHEMA,
    )
    op.create_table(
        "deploy_outcomes",
        sa.Column("request_id", sa.String(200), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("event_id", sa.String(200), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.PrimaryKeyConstraint("request_id", name="pk_deploy_outcomes"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    for table in ("deploy_outcomes", "policy_versions", "approvals", "attempts", "recoveries", "alerts"):
        op.drop_table(table, schema=SCHEMA)
    drop_inbox_outbox(op, SCHEMA)
