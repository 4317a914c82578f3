"""incidents: a recovery leads or joins the incident of its workload or node (incident_id, group_key, incident_at)

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

SCHEMA = "healer"


def upgrade() -> None:
    op.add_column("recoveries", sa.Column("incident_id", sa.String(64), nullable=True), schema=SCHEMA)
    op.add_column("recoveries", sa.Column("group_key", sa.String(600), nullable=True), schema=SCHEMA)
    op.add_column("recoveries", sa.Column("incident_at", sa.DateTime(timezone=True), nullable=True), schema=SCHEMA)
    op.create_index("ix_recoveries_incident_id", "recoveries", ["incident_id"], schema=SCHEMA)
    op.create_index("ix_recoveries_group_key", "recoveries", ["group_key"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_index("ix_recoveries_group_key", "recoveries", schema=SCHEMA)
    op.drop_index("ix_recoveries_incident_id", "recoveries", schema=SCHEMA)
    op.drop_column("recoveries", "incident_at", schema=SCHEMA)
    op.drop_column("recoveries", "group_key", schema=SCHEMA)
    op.drop_column("recoveries", "incident_id", schema=SCHEMA)
