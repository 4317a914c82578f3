"""The one way every opsbus service records a decision or a mutating call in the audit trail.

Every decision is recorded, including deliberate no-ops ("skipped: the alert resolved meanwhile"), so the
trail explains silence as well as action. An entry is an `audit.recorded` event: `entry()` builds it (pure,
usable from planners' callers and tests), `record()` builds it and hands it to a sink - the publisher for
fire-and-forget recording, or the transactional outbox when the entry must commit with the service's own
writes. The gateway keeps the queryable table.

A reason longer than the model allows (`REASON_MAX`) is cut with an ellipsis rather than refused: a reason
is built from what a caller sent (a comment, a list of names), and an audit entry that cannot be built would
fail the write it records. It is never cut silently: the whole text is kept in `details["reason_full"]`.

Entries about the same decision get the same id when an `idempotency_key` is given (for example the
triggering event's id and the action), so a redelivered event does not write the trail twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime

from pydantic import JsonValue

from opsbus.common.events.envelope import Envelope, ObjectRef
from opsbus.common.events.payloads.audit import AuditOutcome, AuditRecorded
from opsbus.common.events.payloads.common import Actor, ActorKind, ResourceRef

_AUDIT_NAMESPACE = uuid.UUID("6f1b8f0e-4d1e-4b8e-9a51-0a7c3f1d2e10")
REASON_MAX = 2048  # AuditRecorded.reason's max_length


def bounded(reason: str, limit: int = REASON_MAX) -> str:
    """`reason` cut to `limit` characters, the cut marked with an ellipsis."""
    return reason if len(reason) <= limit else reason[: limit - 1] + "\u2026"


Sink = Callable[[Envelope], Awaitable[object]]


class Auditor:
    def __init__(self, *, service: str, cluster: str, sink: Sink | None = None) -> None:
        self.service = service
        self.cluster = cluster
        self._sink = sink
        self._self = Actor(kind=ActorKind.SERVICE, id=service)

    def entry(
        self,
        *,
        action: str,
        target: ResourceRef,
        outcome: AuditOutcome,
        reason: str,
        details: Mapping[str, JsonValue] | None = None,
        actor: Actor | None = None,
        cause: Envelope | None = None,
        request_id: str | None = None,
        dry_run: bool = False,
        idempotency_key: str | None = None,
        time: datetime | None = None,
    ) -> Envelope:
        """The `audit.recorded` event for one decision (no I/O)."""
        payload = AuditRecorded(
            actor=actor or self._self,
            action=action,
            target=target,
            outcome=outcome,
            reason=bounded(reason),
            details=dict(details or {}) | ({"reason_full": reason} if len(reason) > REASON_MAX else {}),
            request_id=request_id or (cause.id if cause else None),
            dry_run=dry_run,
        )
        event_id = str(uuid.uuid5(_AUDIT_NAMESPACE, f"{self.service}:{idempotency_key}")) if idempotency_key else None
        return Envelope.build(
            payload,
            service=self.service,
            cluster=self.cluster,
            obj=ObjectRef(kind=target.kind, namespace=target.namespace, name=target.name),
            cause=cause,
            event_id=event_id,
            time=time,
        )

    async def record(self, **fields: object) -> Envelope:
        """Build the entry (same arguments as `entry`) and hand it to the sink."""
        if self._sink is None:
            raise RuntimeError("this Auditor has no sink: pass sink= (publisher.publish or an outbox adder)")
        event = self.entry(**fields)  # type: ignore[arg-type]
        await self._sink(event)
        return event
