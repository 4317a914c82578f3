"""The gateway's tables in its own `gateway` schema (migrations in `migrations/`).

* `api_keys`: one row per key: public prefix (lookup), SHA-256 of the secret, role, namespace and cluster
  scope, expiry, revocation. The secret itself is never stored.
* `audit_entries`: the queryable audit trail, a read model of `audit.recorded` (every service's decisions).
* `incidents`: alerts (`alert.fired`/`alert.resolved`, keyed by the firing event's id, which is the chain's
  correlation id); `incident_events`: the recoveries and notifications of each chain.
* `deploy_requests`: what the gateway asked the deployer, so status and authorization work before the
  deployer has picked a request up.
* `changes`: the change timeline, a read model of `change.recorded` (what changed on workloads, config objects,
  autoscalers, nodes, observed by the watcher or written by opsbus), for `GET /v1/changes`.
* `zabbix_acks`: the acknowledgements made in Zabbix for problems opsbus healed (one per recovery and Zabbix
  event: a redelivered `recovery.succeeded` finds its row and acknowledges nothing twice).
* `console_sessions`: the web console's sign-ins: the SHA-256 of the cookie's secret (never the secret), the
  CSRF token, who signed in (the key or OIDC subject, role and scope), expiry and sign-out.
* the inbox and the outbox (`opsbus.common.store`).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Identity,
    Index,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from opsbus.common.store import make_metadata, store_tables

SCHEMA = "gateway"
MIGRATIONS = Path(__file__).parent / "migrations"

metadata: MetaData = make_metadata(SCHEMA)
TABLES = store_tables(metadata)
TZ = DateTime(timezone=True)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("digest", String(64), nullable=False, comment="sha256 of the secret part, hex"),
    Column("role", String(16), nullable=False),
    Column("namespaces", ARRAY(String(253)), nullable=False),
    Column("clusters", ARRAY(String(253)), nullable=False),
    Column("created_at", TZ, nullable=False),
    Column("created_by", String(253), nullable=False),
    Column("expires_at", TZ, nullable=True),
    Column("revoked_at", TZ, nullable=True),
    Column("revoked_by", String(253), nullable=True),
    PrimaryKeyConstraint("id", name="pk_api_keys"),
    UniqueConstraint("prefix", name="uq_api_keys_prefix"),
)

audit_entries = Table(
    "audit_entries",
    metadata,
    Column("seq", BigInteger, Identity(always=False), nullable=False, comment="cursor for pagination"),
    Column("event_id", String(200), nullable=False),
    Column("time", TZ, nullable=False),
    Column("service", String(64), nullable=False),
    Column("cluster", String(253), nullable=False),
    Column("namespace", String(253), nullable=True),
    Column("actor_kind", String(16), nullable=False),
    Column("actor_id", String(253), nullable=False),
    Column("action", String(200), nullable=False),
    Column("target_kind", String(63), nullable=False),
    Column("target_name", String(253), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("details", JSONB, nullable=False),
    Column("request_id", String(200), nullable=True),
    Column("correlation_id", String(200), nullable=True),
    Column("dry_run", Boolean, nullable=False),
    PrimaryKeyConstraint("seq", name="pk_audit_entries"),
    UniqueConstraint("event_id", name="uq_audit_entries_event_id"),
)
Index("ix_audit_entries_namespace_seq", audit_entries.c.namespace, audit_entries.c.seq)
Index("ix_audit_entries_time", audit_entries.c.time)
Index("ix_audit_entries_correlation_id", audit_entries.c.correlation_id)
# One (filter, seq) index per search field of the console's audit search: keyset pages stay index range scans.
for _column in ("actor_id", "action", "target_name", "outcome", "cluster"):
    Index(f"ix_audit_entries_{_column}_seq", audit_entries.c[_column], audit_entries.c.seq)

incidents = Table(
    "incidents",
    metadata,
    Column("seq", BigInteger, Identity(always=False), nullable=False),
    Column("id", String(200), nullable=False, comment="id of the alert.fired event: the chain's correlation id"),
    Column("cluster", String(253), nullable=False),
    Column("namespace", String(253), nullable=True),
    Column("fingerprint", String(64), nullable=False),
    Column("alertname", String(200), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("status", String(16), nullable=False, comment="firing or resolved"),
    Column("source", String(32), nullable=False),
    Column("summary", Text, nullable=False),
    Column("subject", String(600), nullable=False, comment="CloudEvents subject <kind>/<namespace>/<name>"),
    Column("labels", JSONB, nullable=False),
    Column("alert", JSONB, nullable=False, comment="the alert.fired payload (evidence included)"),
    Column("starts_at", TZ, nullable=False),
    Column("ends_at", TZ, nullable=True),
    Column("updated_at", TZ, nullable=False),
    Column(
        "trace_id",
        String(32),
        nullable=True,
        comment="trace id of the alert.fired event's traceparent (32 hex); null when it carried none",
    ),
    PrimaryKeyConstraint("seq", name="pk_incidents"),
    UniqueConstraint("id", name="uq_incidents_id"),
)
Index("ix_incidents_cluster_fingerprint", incidents.c.cluster, incidents.c.fingerprint)
Index("ix_incidents_namespace_seq", incidents.c.namespace, incidents.c.seq)
Index("ix_incidents_updated_at", incidents.c.updated_at)

incident_events = Table(
    "incident_events",
    metadata,
    Column("event_id", String(200), nullable=False),
    Column("correlation_id", String(200), nullable=False),
    Column("type", String(200), nullable=False),
    Column("time", TZ, nullable=False),
    Column("subject", String(600), nullable=False),
    Column("data", JSONB, nullable=False),
    PrimaryKeyConstraint("event_id", name="pk_incident_events"),
)
Index("ix_incident_events_correlation_id", incident_events.c.correlation_id)
Index("ix_incident_events_time", incident_events.c.time)

deploy_requests = Table(
    "deploy_requests",
    metadata,
    Column("request_id", String(200), nullable=False),
    Column("cluster", String(253), nullable=False),
    Column("namespace", String(253), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("name", String(253), nullable=False),
    Column("strategy", String(32), nullable=False),
    Column("requester", String(300), nullable=False),
    Column("requested_at", TZ, nullable=False),
    PrimaryKeyConstraint("request_id", name="pk_deploy_requests"),
)
Index("ix_deploy_requests_requested_at", deploy_requests.c.requested_at)

changes = Table(
    "changes",
    metadata,
    Column("seq", BigInteger, Identity(always=False), nullable=False, comment="cursor for pagination"),
    Column("event_id", String(200), nullable=False),
    Column("time", TZ, nullable=False, comment="observed_at of the change"),
    Column("service", String(64), nullable=False),
    Column("cluster", String(253), nullable=False),
    Column("namespace", String(253), nullable=True, comment="null for cluster-scoped objects (nodes)"),
    Column("object_kind", String(63), nullable=False),
    Column("object_name", String(253), nullable=False),
    Column("workload_kind", String(32), nullable=True),
    Column("workload_name", String(253), nullable=True),
    Column("kinds", ARRAY(String(32)), nullable=False),
    Column("origin", String(16), nullable=False),
    Column("summary", Text, nullable=False),
    Column("change", JSONB, nullable=False, comment="the change.recorded payload"),
    Column("correlation_id", String(200), nullable=True),
    Column("causation_id", String(200), nullable=True),
    PrimaryKeyConstraint("seq", name="pk_changes"),
    UniqueConstraint("event_id", name="uq_changes_event_id"),
)
Index("ix_changes_namespace_seq", changes.c.namespace, changes.c.seq)
Index("ix_changes_workload", changes.c.cluster, changes.c.namespace, changes.c.workload_name)
Index("ix_changes_time", changes.c.time)

console_sessions = Table(
    "console_sessions",
    metadata,
    Column("id", String(64), nullable=False, comment="public id of the session (audit, sign-out)"),
    Column("digest", String(64), nullable=False, comment="sha256 of the cookie's secret, hex"),
    Column("csrf", String(64), nullable=False, comment="the synchronizer token mutating calls must send"),
    Column("kind", String(16), nullable=False, comment="apikey or user (OIDC)"),
    Column("subject", String(253), nullable=False, comment="the key id or the OIDC subject"),
    Column("key_prefix", String(16), nullable=True, comment="apikey sessions: the key they came from"),
    Column("display_name", String(253), nullable=True),
    Column("role", String(16), nullable=False),
    Column("namespaces", ARRAY(String(253)), nullable=False),
    Column("clusters", ARRAY(String(253)), nullable=False),
    Column("created_at", TZ, nullable=False),
    Column("expires_at", TZ, nullable=False),
    Column("ended_at", TZ, nullable=True),
    PrimaryKeyConstraint("id", name="pk_console_sessions"),
    UniqueConstraint("digest", name="uq_console_sessions_digest"),
)
Index("ix_console_sessions_expires_at", console_sessions.c.expires_at)

zabbix_acks = Table(
    "zabbix_acks",
    metadata,
    Column("recovery_id", String(200), nullable=False),
    Column("zabbix_event_id", String(20), nullable=False, comment="the problem's event id in Zabbix"),
    Column("event_id", String(200), nullable=False, comment="the recovery.succeeded event acknowledged"),
    Column("incident_id", String(200), nullable=False),
    Column("state", String(16), nullable=False, comment="acknowledged, found (made before) or failed"),
    Column("detail", Text, nullable=False, comment="the message sent, or Zabbix's error"),
    Column("updated_at", TZ, nullable=False),
    PrimaryKeyConstraint("recovery_id", "zabbix_event_id", name="pk_zabbix_acks"),
)
