"""config versions (routing configuration edited through the API) and shared per-integration rate limits

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

SCHEMA = "notifier"
TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "config_versions",
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("yaml", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("source", sa.String(8), nullable=False, comment="file or api"),
        sa.Column("author", sa.String(253), nullable=False),
        sa.Column("comment", sa.Text, nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("version", name="pk_config_versions"),
        schema=SCHEMA,
    )
    op.create_table(
        "rate_limits",
        sa.Column("key", sa.String(300), nullable=False, comment="<receiver>/<kind>/<index>"),
        sa.Column("tokens", sa.Float, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_rate_limits"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("rate_limits", schema=SCHEMA)
    op.drop_table("config_versions", schema=SCHEMA)
