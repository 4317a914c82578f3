"""zabbix acks: the acknowledgements made in Zabbix for problems opsbus healed (one per recovery and event)

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None

SCHEMA = "gateway"


def upgrade() -> None:
    op.create_table(
        "zabbix_acks",
        sa.Column("recovery_id", sa.String(200), nullable=False),
        sa.Column("zabbix_event_id", sa.String(20), nullable=False, comment="the problem's event id in Zabbix"),
        sa.Column("event_id", sa.String(200), nullable=False, comment="the recovery.succeeded event acknowledged"),
        sa.Column("incident_id", sa.String(200), nullable=False),
        sa.Column("state", sa.String(16), nullable=False, comment="acknowledged, found (made before) or failed"),
        sa.Column("detail", sa.Text, nullable=False, comment="the message sent, or Zabbix's error"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("recovery_id", "zabbix_event_id", name="pk_zabbix_acks"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("zabbix_acks", schema=SCHEMA)
