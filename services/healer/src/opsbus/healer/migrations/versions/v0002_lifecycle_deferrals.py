"""lifecycle and deferrals: recovery states of domain.lifecycle, due times, the escalation bound, severity order,
and every transition with its reason

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

SCHEMA = "healer"
TS = sa.DateTime(timezone=True)
# The old status words and the lifecycle states they are now (a step's outcome stays in `attempts`).
RENAMES = {
    "running": "acting",
    "exhausted": "acting",  # died between the last failure and its escalation: walked again, then escalated
    "succeeded": "resolved",
    "skipped": "closed",
    "dry_run": "closed",
    "rejected": "closed",
}


def upgrade() -> None:
    op.add_column("recoveries", sa.Column("due_at", TS, nullable=True), schema=SCHEMA)
    op.add_column("recoveries", sa.Column("act_by", TS, nullable=True), schema=SCHEMA)
    op.add_column("recoveries", sa.Column("deferred_by", sa.String(64), nullable=True), schema=SCHEMA)
    op.add_column(
        "recoveries", sa.Column("severity_rank", sa.Integer(), nullable=False, server_default="1"), schema=SCHEMA
    )
    op.create_index("ix_recoveries_status_due_at", "recoveries", ["status", "due_at"], schema=SCHEMA)
    rename = sa.text("UPDATE healer.recoveries SET status = :new WHERE status = :old")
    for old, new in RENAMES.items():
        op.execute(rename.bindparams(old=old, new=new))
    op.create_table(
        "transitions",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("recovery_id", sa.String(64), nullable=False),
        sa.Column("from_state", sa.String(32), nullable=False),
        sa.Column("transition", sa.String(32), nullable=False),
        sa.Column("to_state", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_transitions"),
        schema=SCHEMA,
    )
    op.create_index("ix_transitions_recovery_id", "transitions", ["recovery_id"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_table("transitions", schema=SCHEMA)
    rename = sa.text("UPDATE healer.recoveries SET status = :old WHERE status = :new")
    for old, new in RENAMES.items():
        if old != "exhausted":
            op.execute(rename.bindparams(old=old, new=new))
    for live in ("open", "verifying", "deferred"):
        op.execute(rename.bindparams(old="running", new=live))
    op.drop_index("ix_recoveries_status_due_at", "recoveries", schema=SCHEMA)
    for column in ("severity_rank", "deferred_by", "act_by", "due_at"):
        op.drop_column("recoveries", column, schema=SCHEMA)
