"""initial: inbox and outbox, usage checkpoints, cursors, workload state, recommendations, applied changes

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

SCHEMA = "optimizer"
TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    create_inbox_outbox(op, SCHEMA)
    op.create_table(
        "usage_checkpoints",
        sa.Column("namespace", sa.String(63), nullable=False),
        sa.Column("workload", sa.String(253), nullable=False),
        sa.Column("container", sa.String(63), nullable=False),
        sa.Column("state", JSONB, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("namespace", "workload", "container", name="pk_usage_checkpoints"),
        schema=SCHEMA,
    )
    op.create_table(
        "cursors",
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("until", sa.Float, nullable=False, comment="epoch seconds read up to"),
        sa.PrimaryKeyConstraint("name", name="pk_cursors"),
        schema=SCHEMA,
    )
    op.create_table(
        "workload_state",
        sa.Column("namespace", sa.String(63), nullable=False),
        sa.Column("workload", sa.String(253), nullable=False),
        sa.Column("last_applied_at", TZ, nullable=True),
        sa.Column("replica_history", JSONB, nullable=False),
        sa.Column("last_decision", sa.Text, nullable=True),
        sa.Column("last_recommendation", sa.Text, nullable=True, comment="fingerprint of the last published targets"),
        sa.Column("updated_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("namespace", "workload", name="pk_workload_state"),
        schema=SCHEMA,
    )
    op.create_table(
        "recommendations",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("namespace", sa.String(63), nullable=False),
        sa.Column("workload", sa.String(253), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("guard", sa.String(32), nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, comment="open, applied, superseded"),
        sa.Column("payload", JSONB, nullable=False, comment="the scale.recommended payload"),
        sa.PrimaryKeyConstraint("id", name="pk_recommendations"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_recommendations_workload", "recommendations", ["namespace", "workload", "created_at"], schema=SCHEMA
    )
    op.create_table(
        "applied_changes",
        sa.Column("id", sa.BigInteger, sa.Identity(always=False), nullable=False),
        sa.Column("recommendation_id", sa.String(64), nullable=False),
        sa.Column("namespace", sa.String(63), nullable=False),
        sa.Column("workload", sa.String(253), nullable=False),
        sa.Column("applied_at", TZ, nullable=False),
        sa.Column("applied_by", sa.String(253), nullable=False),
        sa.Column("dry_run", sa.Boolean, nullable=False),
        sa.Column("previous", JSONB, nullable=False),
        sa.Column("applied", JSONB, nullable=False),
        sa.Column("resource_version_before", sa.String(64), nullable=False),
        sa.Column("resource_version_after", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_applied_changes"),
        schema=SCHEMA,
    )
    op.create_index("ix_applied_changes_workload", "applied_changes", ["namespace", "workload"], schema=SCHEMA)


def downgrade() -> None:
    for table in ("applied_changes", "recommendations", "workload_state", "cursors", "usage_checkpoints"):
        op.drop_table(table, schema=SCHEMA)
    drop_inbox_outbox(op, SCHEMA)
