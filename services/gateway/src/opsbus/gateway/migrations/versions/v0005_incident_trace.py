"""incident trace: the W3C trace id of the alert.fired event, for the console's link to the trace in Jaeger

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None

SCHEMA = "gateway"


def upgrade() -> None:
    op.add_column(
        "incidents",
        sa.Column(
            "trace_id",
            sa.String(32),
            nullable=True,
            comment="trace id of the alert.fired event's traceparent (32 hex); null when it carried none",
        ),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_column("incidents", "trace_id", schema=SCHEMA)
