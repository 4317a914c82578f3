"""usage history: the optimizer's own bounded store of downsampled usage per workload and container

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

SCHEMA = "optimizer"


def upgrade() -> None:
    op.create_table(
        "usage_history",
        sa.Column("namespace", sa.String(63), nullable=False),
        sa.Column("workload", sa.String(253), nullable=False),
        sa.Column("container", sa.String(63), nullable=False),
        sa.Column("at", sa.Float, nullable=False, comment="start of the step, epoch seconds"),
        sa.Column("samples", sa.Integer, nullable=False, comment="sample times folded into the step"),
        sa.Column("cpu_sum", sa.Float, nullable=False, comment="sum over sample times of the per-pod mean, m"),
        sa.Column("demand_sum", sa.Float, nullable=False, comment="sum over sample times of the pods' total, m"),
        sa.Column("memory_max", sa.Float, nullable=False, comment="highest per-pod working set, bytes"),
        sa.PrimaryKeyConstraint("namespace", "workload", "container", "at", name="pk_usage_history"),
        schema=SCHEMA,
    )
    op.create_index("ix_usage_history_at", "usage_history", ["at"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_table("usage_history", schema=SCHEMA)
