"""initial: inbox, outbox, rollouts and revisions

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from opsbus.common.store import create_inbox_outbox, drop_inbox_outbox

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

SCHEMA = "deployer"


def upgrade() -> None:
    create_inbox_outbox(op, SCHEMA)
    op.create_table(
        "rollouts",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(200), nullable=False),
        sa.Column("workload", sa.String(400), nullable=False, comment="Kind/namespace/name"),
        sa.Column("cluster", sa.String(63), nullable=False),
        sa.Column("strategy", sa.String(20), nullable=False),
        sa.Column(
            "state",
            sa.String(20),
            nullable=False,
            comment="queued running succeeded failed rolledback superseded aborted",
        ),
        sa.Column("step", sa.String(20), nullable=False, comment="pending applying applied rolling_back"),
        sa.Column("phase", sa.String(20), nullable=True),
        sa.Column("request", postgresql.JSONB(), nullable=False, comment="the deploy.requested event, whole"),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=False, comment="per-request timeout"),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=True),
        sa.Column("previous_revision", sa.Integer(), nullable=True),
        sa.Column("previous_template", postgresql.JSONB(), nullable=True),
        sa.Column("tracking", postgresql.JSONB(), nullable=True, comment="progression state between ticks"),
        sa.Column("analysis", postgresql.JSONB(), nullable=True, comment="measurements per metric"),
        sa.Column("command", postgresql.JSONB(), nullable=True, comment="pending abort/promote and who asked"),
        sa.Column("owner", sa.String(253), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome_reason", sa.String(64), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_rollouts"),
        sa.UniqueConstraint("request_id", name="uq_rollouts_request_id"),
        schema=SCHEMA,
    )
    op.create_index("ix_rollouts_workload_state", "rollouts", ["workload", "state"], schema=SCHEMA)
    op.create_index("ix_rollouts_state", "rollouts", ["state"], schema=SCHEMA)
    op.create_table(
        "revisions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("workload", sa.String(400), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=True),
        sa.Column("rollout_id", sa.String(64), nullable=False),
        sa.Column("images", postgresql.JSONB(), nullable=False),
        sa.Column("template", postgresql.JSONB(), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False, comment="good (rolled out) or bad (failed, rolled back)"),
        sa.Column("recorded_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_revisions"),
        schema=SCHEMA,
    )
    op.create_index("ix_revisions_workload", "revisions", ["workload", "recorded_at"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_table("revisions", schema=SCHEMA)
    op.drop_table("rollouts", schema=SCHEMA)
    drop_inbox_outbox(op, SCHEMA)
