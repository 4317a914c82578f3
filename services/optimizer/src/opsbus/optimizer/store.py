"""The optimizer's tables in its own `optimizer` schema (migrations in `migrations/`).

* `usage_checkpoints`: one row per (namespace, workload, container): the decaying histograms and recent
  peaks (the VPA's VerticalPodAutoscalerCheckpoint), so a restart keeps days of history.
* `cursors`: how far usage has been read from the metrics source.
* `workload_state`: per workload, the last applied change (cooldown), the horizontal stabilization history
  and the last decision (a decision is audited when it differs from the previous one).
* `recommendations`: every recommendation published, with its status (open, applied, superseded).
* `applied_changes`: every change made (or simulated in dry run), with the object before and after.
* `usage_history`: usage downsampled per (namespace, workload, container) at a fixed step, bounded by age and
  by points per series (`history.StoredHistory`): the forecaster's history where no Prometheus runs.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Identity,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB

from opsbus.common.store import make_metadata, store_tables

SCHEMA = "optimizer"
MIGRATIONS = Path(__file__).parent / "migrations"

metadata: MetaData = make_metadata(SCHEMA)
TABLES = store_tables(metadata)
TZ = DateTime(timezone=True)

usage_checkpoints = Table(
    "usage_checkpoints",
    metadata,
    Column("namespace", String(63), nullable=False),
    Column("workload", String(253), nullable=False),
    Column("container", String(63), nullable=False),
    Column("state", JSONB, nullable=False),
    Column("updated_at", TZ, nullable=False),
    PrimaryKeyConstraint("namespace", "workload", "container", name="pk_usage_checkpoints"),
)

cursors = Table(
    "cursors",
    metadata,
    Column("name", String(63), nullable=False),
    Column("until", Float, nullable=False, comment="epoch seconds read up to"),
    PrimaryKeyConstraint("name", name="pk_cursors"),
)

workload_state = Table(
    "workload_state",
    metadata,
    Column("namespace", String(63), nullable=False),
    Column("workload", String(253), nullable=False),
    Column("last_applied_at", TZ, nullable=True),
    Column("replica_history", JSONB, nullable=False),
    Column("last_decision", Text, nullable=True),
    Column("last_recommendation", Text, nullable=True, comment="fingerprint of the last published targets"),
    Column("updated_at", TZ, nullable=False),
    PrimaryKeyConstraint("namespace", "workload", name="pk_workload_state"),
)

recommendations = Table(
    "recommendations",
    metadata,
    Column("id", String(64), nullable=False),
    Column("namespace", String(63), nullable=False),
    Column("workload", String(253), nullable=False),
    Column("created_at", TZ, nullable=False),
    Column("action", String(16), nullable=False),
    Column("guard", String(32), nullable=True),
    Column("reason", Text, nullable=False),
    Column("status", String(16), nullable=False, comment="open, applied, superseded"),
    Column("payload", JSONB, nullable=False, comment="the scale.recommended payload"),
    PrimaryKeyConstraint("id", name="pk_recommendations"),
)
Index(
    "ix_recommendations_workload", recommendations.c.namespace, recommendations.c.workload, recommendations.c.created_at
)

applied_changes = Table(
    "applied_changes",
    metadata,
    Column("id", BigInteger, Identity(always=False), nullable=False),
    Column("recommendation_id", String(64), nullable=False),
    Column("namespace", String(63), nullable=False),
    Column("workload", String(253), nullable=False),
    Column("applied_at", TZ, nullable=False),
    Column("applied_by", String(253), nullable=False),
    Column("dry_run", Boolean, nullable=False),
    Column("previous", JSONB, nullable=False),
    Column("applied", JSONB, nullable=False),
    Column("resource_version_before", String(64), nullable=False),
    Column("resource_version_after", String(64), nullable=True),
    PrimaryKeyConstraint("id", name="pk_applied_changes"),
)
Index("ix_applied_changes_workload", applied_changes.c.namespace, applied_changes.c.workload)

usage_history = Table(
    "usage_history",
    metadata,
    Column("namespace", String(63), nullable=False),
    Column("workload", String(253), nullable=False),
    Column("container", String(63), nullable=False),
    Column("at", Float, nullable=False, comment="start of the step, epoch seconds"),
    Column("samples", Integer, nullable=False, comment="sample times folded into the step"),
    Column("cpu_sum", Float, nullable=False, comment="sum over sample times of the per-pod mean, m"),
    Column("demand_sum", Float, nullable=False, comment="sum over sample times of the pods' total, m"),
    Column("memory_max", Float, nullable=False, comment="highest per-pod working set, bytes"),
    PrimaryKeyConstraint("namespace", "workload", "container", "at", name="pk_usage_history"),
)
Index("ix_usage_history_at", usage_history.c.at)
