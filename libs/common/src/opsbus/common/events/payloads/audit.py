"""`audit.recorded`: who did what, to which object, why, and what came of it.

Every service records every decision and every mutating call through one helper in opsbus.common,
including deliberate no-ops ("skipped: alert resolved meanwhile"), so the audit trail explains silence too.
The gateway keeps the queryable table; teams may subscribe.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar, Self

from pydantic import Field, JsonValue, model_validator

from opsbus.common.events.envelope import EventPayload
from opsbus.common.events.payloads.common import Actor, ResourceRef


class AuditOutcome(StrEnum):
    EXECUTED = "executed"
    SKIPPED = "skipped"
    DRY_RUN = "dry_run"
    DENIED = "denied"
    FAILED = "failed"


class AuditRecorded(EventPayload):
    """Who did what to which object, why, and with what outcome (deliberate no-ops included)."""

    event_type: ClassVar[str] = "io.opsbus.audit.recorded.v1"

    actor: Actor = Field(description="Who acted: a service, a user or an API key.")
    action: str = Field(
        pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$",
        description="What, dotted, e.g. `recovery.delete_pod`, `deploy.request`, `silence.create`.",
    )
    target: ResourceRef = Field(description="The object concerned.")
    outcome: AuditOutcome = Field(description="executed, skipped, dry_run, denied or failed.")
    reason: str = Field(min_length=1, max_length=2048, description="Why (the decision's reason or the error).")
    details: dict[str, JsonValue] = Field(default_factory=dict, description="Structured details, no secrets.")
    request_id: str | None = Field(default=None, description="HTTP request id or the id of the triggering event.")
    dry_run: bool = Field(default=False, description="True when nothing was changed on purpose.")

    @model_validator(mode="after")
    def _dry_run_consistent(self) -> Self:
        if self.outcome is AuditOutcome.DRY_RUN and not self.dry_run:
            raise ValueError("outcome dry_run requires dry_run=true")
        if self.dry_run and self.outcome is AuditOutcome.EXECUTED:
            raise ValueError("a dry run cannot have outcome executed: use dry_run")
        return self
