"""timeline object name: a diagnosis reads the cluster-scoped rows of the failing pods' nodes only, by name,
instead of every node change of the hour (issue 19: at 1,000 nodes that was ~1,000 rows per diagnosis)

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

SCHEMA = "analyzer"


def upgrade() -> None:
    op.add_column(
        "timeline",
        sa.Column("object_name", sa.String(253), nullable=False, server_default="", comment="the changed object"),
        schema=SCHEMA,
    )
    op.execute(sa.text("UPDATE analyzer.timeline SET object_name = entry->>'object_name'"))
    op.alter_column("timeline", "object_name", server_default=None, schema=SCHEMA)
    op.create_index(
        "ix_timeline_cluster_namespace_object_at",
        "timeline",
        ["cluster", "namespace", "object_name", "at"],
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_index("ix_timeline_cluster_namespace_object_at", "timeline", schema=SCHEMA)
    op.drop_column("timeline", "object_name", schema=SCHEMA)
