"""diagnoses: the analyzer's latest top cause per incident, for ladder steps conditioned on the cause

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

SCHEMA = "healer"
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "diagnoses",
        sa.Column("incident_id", sa.String(200), nullable=False),
        sa.Column("alerts", ARRAY(sa.String(64)), nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("cause", sa.String(64), nullable=True),
        sa.Column("confidence", sa.Float, nullable=True),
        sa.Column("summary", sa.Text, nullable=True),
        sa.Column("suggested_action", sa.String(64), nullable=True),
        sa.Column("event_id", sa.String(200), nullable=False),
        sa.Column("diagnosed_at", TS, nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("incident_id", name="pk_diagnoses"),
        schema=SCHEMA,
    )
    op.create_index("ix_diagnoses_alerts", "diagnoses", ["alerts"], postgresql_using="gin", schema=SCHEMA)


def downgrade() -> None:
    op.drop_index("ix_diagnoses_alerts", "diagnoses", schema=SCHEMA)
    op.drop_table("diagnoses", schema=SCHEMA)
