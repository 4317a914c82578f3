"""The healer's schema `healer`: alert states, recoveries (with their lifecycle state, due time when deferred
and every transition), attempts (the history guards count), approvals, policy versions and the deploy
outcomes it follows, the analyzer's latest top cause per incident, plus the store's inbox and outbox.

Recovery ids are deterministic (alert event id + policy), and a recovery row is claimed with a lease, so
replicas sharing the work never run one recovery twice. Every state change and the events announcing it
commit together (transactional outbox).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    Identity,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from opsbus.common.store import make_metadata, store_tables

SCHEMA = "healer"
MIGRATIONS = Path(__file__).parent / "migrations"


class Base(DeclarativeBase):
    metadata = make_metadata(SCHEMA)


TABLES = store_tables(Base.metadata)


class AlertRow(Base):
    """The latest state of each alert, by fingerprint: what "still firing at execution time" reads."""

    __tablename__ = "alerts"

    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    alertname: Mapped[str] = mapped_column(String(200))
    firing: Mapped[bool] = mapped_column(Boolean)
    event_id: Mapped[str] = mapped_column(String(200))
    event_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RecoveryRow(Base):
    __tablename__ = "recoveries"
    __table_args__ = (Index("ix_recoveries_status_due_at", "status", "due_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    alert_event_id: Mapped[str] = mapped_column(String(200))
    alert_event: Mapped[dict[str, Any]] = mapped_column(JSON)  # the triggering envelope, to resume from
    policy: Mapped[str] = mapped_column(String(253))
    policy_version: Mapped[int] = mapped_column(Integer)
    target_key: Mapped[str] = mapped_column(String(600), index=True)
    status: Mapped[str] = mapped_column(String(32))  # a `domain.lifecycle.State`
    step: Mapped[int] = mapped_column(Integer)
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # deferred: plan again then
    act_by: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # still deferred then: escalate
    deferred_by: Mapped[str | None] = mapped_column(String(64))  # the guard that said "not now"
    severity_rank: Mapped[int] = mapped_column(Integer, server_default="1")  # 0 critical first
    # The incident: the leading recovery's id (its own for a lead), and what it groups by (`Deployment/ns/name`,
    # `Node/_/name`); NULL for a recovery that groups with nothing.
    incident_id: Mapped[str | None] = mapped_column(String(64), index=True)
    group_key: Mapped[str | None] = mapped_column(String(600), index=True)
    incident_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # when it led or joined

    lease_owner: Mapped[str | None] = mapped_column(String(253))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TransitionRow(Base):
    """Every lifecycle transition of a recovery with its reason: the incident's history."""

    __tablename__ = "transitions"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    recovery_id: Mapped[str] = mapped_column(String(64), index=True)
    from_state: Mapped[str] = mapped_column(String(32))
    transition: Mapped[str] = mapped_column(String(32))
    to_state: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AttemptRow(Base):
    """One step of one recovery: what was planned (with preconditions), when it started, how it ended."""

    __tablename__ = "attempts"
    __table_args__ = (UniqueConstraint("recovery_id", "step"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    recovery_id: Mapped[str] = mapped_column(String(64), index=True)
    step: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(64))
    target_key: Mapped[str] = mapped_column(String(600), index=True)
    target: Mapped[dict[str, Any]] = mapped_column(JSON)
    plan: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(32))  # started, succeeded, failed, dry_run, skipped, rejected
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    message: Mapped[str | None] = mapped_column(Text)
    deploy_request_id: Mapped[str | None] = mapped_column(String(200))


class ApprovalRow(Base):
    __tablename__ = "approvals"

    recovery_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    action: Mapped[dict[str, Any]] = mapped_column(JSON)
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(32))  # pending, approved, rejected, expired
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    decided_by: Mapped[str | None] = mapped_column(String(253))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    comment: Mapped[str | None] = mapped_column(Text)


class PolicyVersionRow(Base):
    __tablename__ = "policy_versions"

    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    document: Mapped[str] = mapped_column(Text)
    author: Mapped[str] = mapped_column(String(253))
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DeployOutcomeRow(Base):
    """Terminal deploy outcomes by request id: how a rollback step learns it finished."""

    __tablename__ = "deploy_outcomes"

    request_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    outcome: Mapped[str] = mapped_column(String(32))
    message: Mapped[str | None] = mapped_column(Text)
    event_id: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DiagnosisRow(Base):
    """The analyzer's latest diagnosis of an incident (by its first alert's event id), reduced to what ladder
    steps conditioned on the cause read: the top cause, or none when the analyzer found none."""

    __tablename__ = "diagnoses"
    __table_args__ = (Index("ix_diagnoses_alerts", "alerts", postgresql_using="gin"),)

    incident_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    alerts: Mapped[list[str]] = mapped_column(ARRAY(String(64)))  # fingerprints of the incident's alerts
    revision: Mapped[int] = mapped_column(Integer)
    cause: Mapped[str | None] = mapped_column(String(64))  # a CauseKind; NULL when the outcome is unknown
    confidence: Mapped[float | None] = mapped_column(Float)
    summary: Mapped[str | None] = mapped_column(Text)
    suggested_action: Mapped[str | None] = mapped_column(String(64))
    event_id: Mapped[str] = mapped_column(String(200))
    diagnosed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
