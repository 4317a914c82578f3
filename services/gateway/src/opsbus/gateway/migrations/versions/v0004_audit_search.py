"""audit search: one (column, seq) index per filter of the audit search, for keyset pages over millions of rows

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

SCHEMA = "gateway"
COLUMNS = ("actor_id", "action", "target_name", "outcome", "cluster")


def upgrade() -> None:
    for column in COLUMNS:
        op.create_index(f"ix_audit_entries_{column}_seq", "audit_entries", [column, "seq"], schema=SCHEMA)


def downgrade() -> None:
    for column in COLUMNS:
        op.drop_index(f"ix_audit_entries_{column}_seq", table_name="audit_entries", schema=SCHEMA)
