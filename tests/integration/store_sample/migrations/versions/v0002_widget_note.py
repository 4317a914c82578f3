"""widgets get a note

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

SCHEMA = "sample"


def upgrade() -> None:
    op.add_column("widgets", sa.Column("note", sa.String(200), nullable=True), schema=SCHEMA)


def downgrade() -> None:
    op.drop_column("widgets", "note", schema=SCHEMA)
