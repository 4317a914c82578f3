"""changes: the change timeline read model (change.recorded)

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

SCHEMA = "gateway"
TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "changes",
        sa.Column("seq", sa.BigInteger, sa.Identity(always=False), nullable=False, comment="cursor for pagination"),
        sa.Column("event_id", sa.String(200), nullable=False),
        sa.Column("time", TZ, nullable=False, comment="observed_at of the change"),
        sa.Column("service", sa.String(64), nullable=False),
        sa.Column("cluster", sa.String(253), nullable=False),
        sa.Column("namespace", sa.String(253), nullable=True, comment="null for cluster-scoped objects (nodes)"),
        sa.Column("object_kind", sa.String(63), nullable=False),
        sa.Column("object_name", sa.String(253), nullable=False),
        sa.Column("workload_kind", sa.String(32), nullable=True),
        sa.Column("workload_name", sa.String(253), nullable=True),
        sa.Column("kinds", ARRAY(sa.String(32)), nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("change", JSONB, nullable=False, comment="the change.recorded payload"),
        sa.Column("correlation_id", sa.String(200), nullable=True),
        sa.Column("causation_id", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_changes"),
        sa.UniqueConstraint("event_id", name="uq_changes_event_id"),
        schema=SCHEMA,
    )
    op.create_index("ix_changes_namespace_seq", "changes", ["namespace", "seq"], schema=SCHEMA)
    op.create_index("ix_changes_workload", "changes", ["cluster", "namespace", "workload_name"], schema=SCHEMA)
    op.create_index("ix_changes_time", "changes", ["time"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_table("changes", schema=SCHEMA)
