"""initial: inbox and outbox, the change timeline window, incidents with their latest diagnosis

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from opsbus.common.store import create_inbox_outbox, drop_inbox_outbox

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

SCHEMA = "analyzer"
TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    create_inbox_outbox(op, SCHEMA)
    op.create_table(
        "timeline",
        sa.Column("event_id", sa.String(200), nullable=False),
        sa.Column("cluster", sa.String(253), nullable=False),
        sa.Column("namespace", sa.String(63), nullable=False, comment="`_` for cluster-scoped objects (nodes)"),
        sa.Column("at", TZ, nullable=False, comment="when the change was observed or made"),
        sa.Column("entry", JSONB, nullable=False, comment="domain.timeline.Entry as JSON"),
        sa.Column("recorded_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("event_id", name="pk_timeline"),
        schema=SCHEMA,
    )
    op.create_index("ix_timeline_cluster_namespace_at", "timeline", ["cluster", "namespace", "at"], schema=SCHEMA)
    op.create_table(
        "incidents",
        sa.Column("id", sa.String(200), nullable=False, comment="event id of the first alert.fired"),
        sa.Column("cluster", sa.String(253), nullable=False),
        sa.Column("namespace", sa.String(63), nullable=False, comment="`_` for a node's incident"),
        sa.Column("scope_key", sa.String(600), nullable=False, comment="Kind/namespace/name the alerts are grouped by"),
        sa.Column("opened_at", TZ, nullable=False),
        sa.Column("last_alert_at", TZ, nullable=False, comment="when the latest alert of the incident arrived"),
        sa.Column("first_alert", JSONB, nullable=False, comment="the first alert's envelope (causation of revisions)"),
        sa.Column("alerts", JSONB, nullable=False, comment="[{event_id, alert}] in arrival order"),
        sa.Column("logs", JSONB, nullable=False, comment="log samples gathered: [{pod, container, lines, failing}]"),
        sa.Column("config_refs", JSONB, nullable=True, comment="[[kind, name]] the workload reads; null: unknown"),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("top_kind", sa.String(32), nullable=True),
        sa.Column("diagnosis", JSONB, nullable=False, comment="the latest diagnosis payload"),
        sa.Column("updated_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_incidents"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_incidents_cluster_scope_last", "incidents", ["cluster", "scope_key", "last_alert_at"], schema=SCHEMA
    )
    op.create_index(
        "ix_incidents_cluster_namespace_last", "incidents", ["cluster", "namespace", "last_alert_at"], schema=SCHEMA
    )
    op.create_index("ix_incidents_updated_at", "incidents", ["updated_at"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_table("incidents", schema=SCHEMA)
    op.drop_table("timeline", schema=SCHEMA)
    drop_inbox_outbox(op, SCHEMA)
