"""The analyzer's schema `analyzer`: the change timeline window and the incidents with their latest diagnosis,
plus the store's inbox and outbox.

* `timeline`: one row per change (`change.recorded`, deployer events, node alerts), keyed by event id, kept
  for `timeline_retention_hours`: the window every diagnosis reads (its namespace, and the cluster-scoped rows
  of the nodes its failing pods run on, by `object_name`).
* `incidents`: one row per incident (the alerts of one workload or node firing together), named by its first
  alert's event id, with its alerts, the failing pods' log lines, the revision and the latest diagnosis.

A diagnosis and its event commit together (transactional outbox); the inbox makes every handler idempotent.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Column, DateTime, Index, Integer, MetaData, PrimaryKeyConstraint, String, Table
from sqlalchemy.dialects.postgresql import JSONB

from opsbus.common.store import make_metadata, store_tables

SCHEMA = "analyzer"
MIGRATIONS = Path(__file__).parent / "migrations"

metadata: MetaData = make_metadata(SCHEMA)
TABLES = store_tables(metadata)
TZ = DateTime(timezone=True)

timeline = Table(
    "timeline",
    metadata,
    Column("event_id", String(200), nullable=False),
    Column("cluster", String(253), nullable=False),
    Column("namespace", String(63), nullable=False, comment="`_` for cluster-scoped objects (nodes)"),
    Column("at", TZ, nullable=False, comment="when the change was observed or made"),
    Column("object_name", String(253), nullable=False, comment="the changed object"),
    Column("entry", JSONB, nullable=False, comment="domain.timeline.Entry as JSON"),
    Column("recorded_at", TZ, nullable=False),
    PrimaryKeyConstraint("event_id", name="pk_timeline"),
)
Index("ix_timeline_cluster_namespace_at", timeline.c.cluster, timeline.c.namespace, timeline.c.at)
# a node's rows by name: a diagnosis reads only the nodes its failing pods run on
Index(
    "ix_timeline_cluster_namespace_object_at",
    timeline.c.cluster,
    timeline.c.namespace,
    timeline.c.object_name,
    timeline.c.at,
)

incidents = Table(
    "incidents",
    metadata,
    Column("id", String(200), nullable=False, comment="event id of the first alert.fired"),
    Column("cluster", String(253), nullable=False),
    Column("namespace", String(63), nullable=False, comment="`_` for a node's incident"),
    Column("scope_key", String(600), nullable=False, comment="Kind/namespace/name the alerts are grouped by"),
    Column("opened_at", TZ, nullable=False),
    Column("last_alert_at", TZ, nullable=False, comment="when the latest alert of the incident arrived"),
    Column("first_alert", JSONB, nullable=False, comment="the first alert's envelope (causation of revisions)"),
    Column("alerts", JSONB, nullable=False, comment="[{event_id, alert}] in arrival order"),
    Column("logs", JSONB, nullable=False, comment="log samples gathered: [{pod, container, lines, failing}]"),
    Column("config_refs", JSONB, nullable=True, comment="[[kind, name]] the workload reads; null: unknown"),
    Column("revision", Integer, nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("top_kind", String(32), nullable=True),
    Column("diagnosis", JSONB, nullable=False, comment="the latest diagnosis payload"),
    Column("updated_at", TZ, nullable=False),
    PrimaryKeyConstraint("id", name="pk_incidents"),
)
Index("ix_incidents_cluster_scope_last", incidents.c.cluster, incidents.c.scope_key, incidents.c.last_alert_at)
Index("ix_incidents_cluster_namespace_last", incidents.c.cluster, incidents.c.namespace, incidents.c.last_alert_at)
Index("ix_incidents_updated_at", incidents.c.updated_at)
