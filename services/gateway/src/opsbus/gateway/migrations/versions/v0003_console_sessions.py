"""console sessions: the web console's sign-ins (the gateway as backend-for-frontend)

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

SCHEMA = "gateway"
TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "console_sessions",
        sa.Column("id", sa.String(64), nullable=False, comment="public id of the session (audit, sign-out)"),
        sa.Column("digest", sa.String(64), nullable=False, comment="sha256 of the cookie's secret, hex"),
        sa.Column("csrf", sa.String(64), nullable=False, comment="the synchronizer token mutating calls must send"),
        sa.Column("kind", sa.String(16), nullable=False, comment="apikey or user (OIDC)"),
        sa.Column("subject", sa.String(253), nullable=False, comment="the key id or the OIDC subject"),
        sa.Column("key_prefix", sa.String(16), nullable=True, comment="apikey sessions: the key they came from"),
        sa.Column("display_name", sa.String(253), nullable=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("namespaces", ARRAY(sa.String(253)), nullable=False),
        sa.Column("clusters", ARRAY(sa.String(253)), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("expires_at", TZ, nullable=False),
        sa.Column("ended_at", TZ, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_console_sessions"),
        sa.UniqueConstraint("digest", name="uq_console_sessions_digest"),
        schema=SCHEMA,
    )
    op.create_index("ix_console_sessions_expires_at", "console_sessions", ["expires_at"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_table("console_sessions", schema=SCHEMA)
