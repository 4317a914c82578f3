"""initial: the store's inbox and outbox, and widgets

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from opsbus.common.store import create_inbox_outbox, drop_inbox_outbox

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

SCHEMA = "sample"


def upgrade() -> None:
    create_inbox_outbox(op, SCHEMA)
    op.create_table(
        "widgets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("source_event", sa.String(200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_widgets"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("widgets", schema=SCHEMA)
    drop_inbox_outbox(op, SCHEMA)
