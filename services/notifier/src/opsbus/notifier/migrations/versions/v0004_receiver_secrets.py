"""receiver secrets stored encrypted (Fernet), referenced from the configuration as `secretRef: <name>`

One row per secret: its name, the Fernet token, the id (a digest) of the key it is encrypted under, and who
changed it when. The value is never stored in clear, never returned by the API.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

SCHEMA = "notifier"
TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "receiver_secrets",
        sa.Column("name", sa.String(253), nullable=False),
        sa.Column("ciphertext", sa.Text, nullable=False, comment="Fernet token (AES-128-CBC + HMAC-SHA256)"),
        sa.Column("key_id", sa.String(16), nullable=False, comment="digest of the key the value is encrypted under"),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("updated_by", sa.String(253), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_receiver_secrets"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("receiver_secrets", schema=SCHEMA)
