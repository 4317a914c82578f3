"""initial: inbox and outbox, api keys, audit read model, incidents, deploy requests

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from opsbus.common.store import create_inbox_outbox, drop_inbox_outbox

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

SCHEMA = "gateway"
TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    create_inbox_outbox(op, SCHEMA)
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False, comment="sha256 of the secret part, hex"),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("namespaces", ARRAY(sa.String(253)), nullable=False),
        sa.Column("clusters", ARRAY(sa.String(253)), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("created_by", sa.String(253), nullable=False),
        sa.Column("expires_at", TZ, nullable=True),
        sa.Column("revoked_at", TZ, nullable=True),
        sa.Column("revoked_by", sa.String(253), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("prefix", name="uq_api_keys_prefix"),
        schema=SCHEMA,
    )
    op.create_table(
        "audit_entries",
        sa.Column("seq", sa.BigInteger, sa.Identity(always=False), nullable=False, comment="cursor for pagination"),
        sa.Column("event_id", sa.String(200), nullable=False),
        sa.Column("time", TZ, nullable=False),
        sa.Column("service", sa.String(64), nullable=False),
        sa.Column("cluster", sa.String(253), nullable=False),
        sa.Column("namespace", sa.String(253), nullable=True),
        sa.Column("actor_kind", sa.String(16), nullable=False),
        sa.Column("actor_id", sa.String(253), nullable=False),
        sa.Column("action", sa.String(200), nullable=False),
        sa.Column("target_kind", sa.String(63), nullable=False),
        sa.Column("target_name", sa.String(253), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("details", JSONB, nullable=False),
        sa.Column("request_id", sa.String(200), nullable=True),
        sa.Column("correlation_id", sa.String(200), nullable=True),
        sa.Column("dry_run", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_entries"),
        sa.UniqueConstraint("event_id", name="uq_audit_entries_event_id"),
        schema=SCHEMA,
    )
    op.create_index("ix_audit_entries_namespace_seq", "audit_entries", ["namespace", "seq"], schema=SCHEMA)
    op.create_index("ix_audit_entries_time", "audit_entries", ["time"], schema=SCHEMA)
    op.create_index("ix_audit_entries_correlation_id", "audit_entries", ["correlation_id"], schema=SCHEMA)
    op.create_table(
        "incidents",
        sa.Column("seq", sa.BigInteger, sa.Identity(always=False), nullable=False),
        sa.Column(
            "id", sa.String(200), nullable=False, comment="id of the alert.fired event: the chain's correlation id"
        ),
        sa.Column("cluster", sa.String(253), nullable=False),
        sa.Column("namespace", sa.String(253), nullable=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("alertname", sa.String(200), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, comment="firing or resolved"),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("subject", sa.String(600), nullable=False, comment="CloudEvents subject <kind>/<namespace>/<name>"),
        sa.Column("labels", JSONB, nullable=False),
        sa.Column("alert", JSONB, nullable=False, comment="the alert.fired payload (evidence included)"),
        sa.Column("starts_at", TZ, nullable=False),
        sa.Column("ends_at", TZ, nullable=True),
        sa.Column("updated_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_incidents"),
        sa.UniqueConstraint("id", name="uq_incidents_id"),
        schema=SCHEMA,
    )
    op.create_index("ix_incidents_cluster_fingerprint", "incidents", ["cluster", "fingerprint"], schema=SCHEMA)
    op.create_index("ix_incidents_namespace_seq", "incidents", ["namespace", "seq"], schema=SCHEMA)
    op.create_index("ix_incidents_updated_at", "incidents", ["updated_at"], schema=SCHEMA)
    op.create_table(
        "incident_events",
        sa.Column("event_id", sa.String(200), nullable=False),
        sa.Column("correlation_id", sa.String(200), nullable=False),
        sa.Column("type", sa.String(200), nullable=False),
        sa.Column("time", TZ, nullable=False),
        sa.Column("subject", sa.String(600), nullable=False),
        sa.Column("data", JSONB, nullable=False),
        sa.PrimaryKeyConstraint("event_id", name="pk_incident_events"),
        schema=SCHEMA,
    )
    op.create_index("ix_incident_events_correlation_id", "incident_events", ["correlation_id"], schema=SCHEMA)
    op.create_index("ix_incident_events_time", "incident_events", ["time"], schema=SCHEMA)
    op.create_table(
        "deploy_requests",
        sa.Column("request_id", sa.String(200), nullable=False),
        sa.Column("cluster", sa.String(253), nullable=False),
        sa.Column("namespace", sa.String(253), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("name", sa.String(253), nullable=False),
        sa.Column("strategy", sa.String(32), nullable=False),
        sa.Column("requester", sa.String(300), nullable=False),
        sa.Column("requested_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("request_id", name="pk_deploy_requests"),
        schema=SCHEMA,
    )
    op.create_index("ix_deploy_requests_requested_at", "deploy_requests", ["requested_at"], schema=SCHEMA)


def downgrade() -> None:
    for table in ("deploy_requests", "incident_events", "incidents", "audit_entries", "api_keys"):
        op.drop_table(table, schema=SCHEMA)
    drop_inbox_outbox(op, SCHEMA)
