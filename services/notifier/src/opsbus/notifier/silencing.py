"""Silences: create, list and expire them, each change audited in the transaction that makes it.

A silence is a row in `silences` (matchers, start, end, who, why). The flush reads the ones in force through
`active`; the request-reply endpoints (`opsbus.svc.notifier.*silence*`) call `Silences` through the executor.
Creating and expiring write the notifier's own audit entry and, for a call through the gateway, the caller's
entry (actor and request id), both in the transaction of the write: a silence that exists was audited.

It must never delete a silence (expiring sets its end to now, so the audit trail and the list keep it), never
decide whether an alert is muted (that is `domain/muting.py`), and never commit a change without its audit.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from opsbus.common.api.calling import Caller
from opsbus.common.audit import Auditor
from opsbus.common.errors import NotFoundError
from opsbus.common.events.payloads.audit import AuditOutcome
from opsbus.common.events.payloads.common import Actor, ActorKind, ResourceRef
from opsbus.common.store import Database
from opsbus.notifier import store
from opsbus.notifier.domain.matchers import parse_all
from opsbus.notifier.domain.muting import Silence
from opsbus.notifier.emitting import Emitter


def silence_from(row: Any) -> Silence:
    return Silence(
        id=row.id,
        matchers=parse_all(row.matchers),
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        created_by=row.created_by,
        comment=row.comment,
    )


async def active(session: AsyncSession, now: datetime) -> list[Silence]:
    """The silences in force at `now` (started, not yet ended)."""
    t = store.silences
    rows = (await session.execute(select(t).where(t.c.starts_at <= now, t.c.ends_at > now))).all()
    return [silence_from(r) for r in rows]


class Silences:
    def __init__(self, db: Database, *, auditor: Auditor, emitter: Emitter, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.auditor = auditor
        self.emitter = emitter
        self.clock = clock

    async def create(  # noqa: PLR0917 - the silence's fields, then who asked
        self,
        matchers: list[str],
        starts_at: datetime,
        ends_at: datetime,
        created_by: str,
        comment: str,
        caller: Caller | None = None,
    ) -> Silence:
        silence = Silence(
            id=str(uuid.uuid4()),
            matchers=parse_all(matchers),
            starts_at=starts_at,
            ends_at=ends_at,
            created_by=created_by,
            comment=comment,
        )
        now = self.clock()
        async with self.db.sessions.begin() as session:
            await session.execute(
                insert(store.silences).values(
                    id=silence.id,
                    matchers=[str(m) for m in silence.matchers],
                    starts_at=starts_at,
                    ends_at=ends_at,
                    created_by=created_by,
                    comment=comment,
                    created_at=now,
                    updated_at=now,
                )
            )
            await self._audit_silence(session, silence, "notify.silence.create", created_by, comment)
            await self._audit_call(session, silence, "silence.create", caller, comment)
        return silence

    async def list_all(self) -> list[Silence]:
        async with self.db.sessions() as session:
            rows = (await session.execute(select(store.silences).order_by(store.silences.c.created_at))).all()
        return [silence_from(r) for r in rows]

    async def expire(self, silence_id: str, expired_by: str, caller: Caller | None = None) -> Silence:
        now = self.clock()
        t = store.silences
        async with self.db.sessions.begin() as session:
            row = (await session.execute(select(t).where(t.c.id == silence_id).with_for_update())).first()
            if row is None:
                raise NotFoundError(f"silence {silence_id} does not exist")
            ends = min(row.ends_at, now)
            await session.execute(update(t).where(t.c.id == silence_id).values(ends_at=ends, updated_at=now))
            silence = silence_from(row)
            silence = Silence(
                silence.id, silence.matchers, min(silence.starts_at, ends), ends, silence.created_by, silence.comment
            )
            await self._audit_silence(session, silence, "notify.silence.expire", expired_by, "expired")
            await self._audit_call(session, silence, "silence.expire", caller, "expired through the gateway")
        return silence

    async def _audit_silence(self, session: AsyncSession, silence: Silence, action: str, who: str, why: str) -> None:
        entry = self.auditor.entry(
            action=action,
            target=ResourceRef(kind="Silence", name=silence.id),
            outcome=AuditOutcome.EXECUTED,
            reason=why,
            actor=Actor(kind=ActorKind.USER, id=who),
            details={
                "matchers": [str(m) for m in silence.matchers],
                "starts_at": silence.starts_at.isoformat(),
                "ends_at": silence.ends_at.isoformat(),
            },
            idempotency_key=f"{action}:{silence.id}:{silence.ends_at.isoformat()}",
        )
        await self.emitter.add(session, entry)

    async def _audit_call(
        self, session: AsyncSession, silence: Silence, action: str, caller: Caller | None, why: str
    ) -> None:
        """The gateway caller's entry (the same one the gateway recorded itself before it moved here)."""
        if caller is None:
            return
        namespace = next((m.value for m in silence.matchers if m.name == "namespace" and m.op == "="), None)
        entry = self.auditor.entry(
            action=action,
            target=ResourceRef(kind="Silence", namespace=namespace, name=silence.id),
            outcome=AuditOutcome.EXECUTED,
            reason=why,
            actor=caller.actor,
            request_id=caller.request_id,
            details={"matchers": [str(m) for m in silence.matchers], "ends_at": silence.ends_at.isoformat()},
        )
        await self.emitter.add(session, entry)
