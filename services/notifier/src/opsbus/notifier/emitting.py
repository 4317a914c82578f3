"""The notifier's writes to its outbox: events and audit entries, in the caller's transaction.

Flushing, delivering and silencing all record what they did (`notify.*` events, `audit.recorded` entries) by
adding them to the transactional outbox inside the transaction of the change they describe, so an event is
published exactly when its change committed. This module is that one write, plus the link to the alert that
caused it (`correlationid`, `causationid`, `traceparent`), so one incident stays one trace.

It must never publish to NATS itself (the outbox relay does), never open or commit a transaction of its own,
and never put a webhook URL, routing key or secret into an event.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession

from opsbus.common.events import Envelope, ObjectRef
from opsbus.common.events.payloads.common import ResourceRef
from opsbus.common.store import add
from opsbus.notifier import store
from opsbus.notifier.domain.notices import Notice


def target(notice: Notice) -> ResourceRef:
    """The object an alert (or notice) is about, as an audit target."""
    obj = ObjectRef.from_subject(notice.subject)
    return ResourceRef(kind=obj.kind, name=obj.name, namespace=obj.namespace)


class Emitter:
    """Adds events to the outbox and pokes the relay (`on_outbox`) when one was new."""

    def __init__(self, on_outbox: Callable[[], None] | None = None) -> None:
        self._outbox = store.TABLES.outbox
        self._on_outbox = on_outbox or (lambda: None)

    async def emit(self, session: AsyncSession, event: Envelope, cause: Notice) -> None:
        """Add `event` caused by `cause`: same correlation and trace as the alert it tells about."""
        linked = event.model_copy(
            update={
                "correlationid": cause.correlationid or cause.event_id,
                "causationid": cause.event_id,
                "traceparent": cause.traceparent,
            }
        )
        await self.add(session, linked)

    async def add(self, session: AsyncSession, event: Envelope) -> None:
        """Add `event` as it is (an entry with no alert behind it, such as a silence's audit)."""
        if await add(session, self._outbox, event):
            self._on_outbox()
