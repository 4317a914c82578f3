"""The deployer's schema: rollouts (one row per request, its state and what a restart needs to resume it)
and revisions (what ran when, good or bad), plus the store's inbox and outbox. Only the deployer reads it."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Index, Integer, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from opsbus.common.store import make_metadata, store_tables

SCHEMA = "deployer"
MIGRATIONS = Path(__file__).parent / "migrations"

ACTIVE_STATES = ("queued", "running")


class Base(DeclarativeBase):
    metadata = make_metadata(SCHEMA)


TABLES = store_tables(Base.metadata)


class Rollout(Base):
    __tablename__ = "rollouts"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(200), unique=True)
    workload: Mapped[str] = mapped_column(String(400), comment="Kind/namespace/name")
    cluster: Mapped[str] = mapped_column(String(63))
    strategy: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(
        String(20), comment="queued running succeeded failed rolledback superseded aborted"
    )
    step: Mapped[str] = mapped_column(String(20), default="pending", comment="pending applying applied rolling_back")
    phase: Mapped[str | None] = mapped_column(String(20))
    request: Mapped[dict[str, Any]] = mapped_column(JSONB, comment="the deploy.requested event, whole")
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    accepted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    deadline_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), comment="per-request timeout")
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revision: Mapped[int | None] = mapped_column(Integer)
    previous_revision: Mapped[int | None] = mapped_column(Integer)
    previous_template: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    tracking: Mapped[dict[str, Any] | None] = mapped_column(JSONB, comment="progression state between ticks")
    analysis: Mapped[dict[str, Any] | None] = mapped_column(JSONB, comment="measurements per metric")
    command: Mapped[dict[str, Any] | None] = mapped_column(JSONB, comment="pending abort/promote and who asked")
    owner: Mapped[str | None] = mapped_column(String(253))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome_reason: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        Index("ix_rollouts_workload_state", "workload", "state"),
        Index("ix_rollouts_state", "state"),
    )


class Revision(Base):
    __tablename__ = "revisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    workload: Mapped[str] = mapped_column(String(400))
    revision: Mapped[int | None] = mapped_column(Integer)
    rollout_id: Mapped[str] = mapped_column(String(64))
    images: Mapped[dict[str, Any]] = mapped_column(JSONB)
    template: Mapped[dict[str, Any]] = mapped_column(JSONB)
    outcome: Mapped[str] = mapped_column(String(20), comment="good (rolled out) or bad (failed, rolled back)")
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (Index("ix_revisions_workload", "workload", "recorded_at"),)
