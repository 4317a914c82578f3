"""Recovery leases: which healer replica runs a recovery right now.

Several replicas share the bus consumers, and a recovery can outlive the replica that started it (a
verification waits minutes for a rollback). A recovery is run only by the replica holding its lease
(`recoveries.lease_owner`/`lease_until`); the holder renews it while it works, and when a replica dies its
leases run out and another replica (the orphan sweep, or the alert's redelivery) claims the recovery and
resumes it from its recorded step. Claims and renewals are single conditional UPDATEs, so two replicas can
never both hold one lease. This module decides nothing about remediation; it never touches the cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from opsbus.common.store import Database
from opsbus.healer.domain import lifecycle
from opsbus.healer.store import RecoveryRow

log = logging.getLogger(__name__)

# Recoveries in these states still have work a replica must do (or resume) without a new event.
RESUMABLE = tuple(s.value for s in lifecycle.RESUMABLE)


class LeaseHeld(Exception):
    """Another replica holds the recovery's lease until `until`."""

    def __init__(self, rid: str, owner: str, until: datetime) -> None:
        super().__init__(f"recovery {rid} is being run by {owner} until {until.isoformat()}")
        self.owner = owner
        self.until = until


class LeaseLost(Exception):
    """This replica's lease ran out and another replica claimed the recovery: stop before writing."""


@dataclass
class Leases:
    db: Database
    owner: str
    seconds: float
    clock: Callable[[], datetime]

    def _until(self) -> datetime:
        return self.clock() + timedelta(seconds=self.seconds)

    async def claim(self, rid: str) -> bool:
        """Take the lease when it is free, expired or already ours; False when another replica holds it."""
        now = self.clock()
        free = or_(
            RecoveryRow.lease_owner.is_(None),
            RecoveryRow.lease_owner == self.owner,
            RecoveryRow.lease_until.is_(None),
            RecoveryRow.lease_until < now,
        )
        stmt = (
            update(RecoveryRow)
            .where(RecoveryRow.id == rid, free)
            .values(lease_owner=self.owner, lease_until=self._until())
            .returning(RecoveryRow.id)
        )
        async with self.db.sessions.begin() as session:
            return (await session.execute(stmt)).first() is not None

    async def holder(self, rid: str) -> tuple[str | None, datetime | None]:
        async with self.db.sessions() as session:
            row = (
                await session.execute(
                    select(RecoveryRow.lease_owner, RecoveryRow.lease_until).where(RecoveryRow.id == rid)
                )
            ).first()
        return (row[0], row[1]) if row is not None else (None, None)

    async def renew(self, rid: str) -> bool:
        stmt = (
            update(RecoveryRow)
            .where(RecoveryRow.id == rid, RecoveryRow.lease_owner == self.owner)
            .values(lease_until=self._until())
            .returning(RecoveryRow.id)
        )
        async with self.db.sessions.begin() as session:
            return (await session.execute(stmt)).first() is not None

    async def fence(self, session: AsyncSession, rid: str) -> None:
        """Inside the transaction that starts an action: fail unless this replica still holds the lease."""
        stmt = (
            update(RecoveryRow)
            .where(RecoveryRow.id == rid, RecoveryRow.lease_owner == self.owner)
            .values(lease_until=self._until())
            .returning(RecoveryRow.id)
        )
        if (await session.execute(stmt)).first() is None:
            raise LeaseLost(f"recovery {rid}: the lease of {self.owner} was taken over")

    async def release(self, rid: str) -> None:
        stmt = (
            update(RecoveryRow)
            .where(RecoveryRow.id == rid, RecoveryRow.lease_owner == self.owner)
            .values(lease_owner=None, lease_until=None)
        )
        async with self.db.sessions.begin() as session:
            await session.execute(stmt)

    async def orphans(self, limit: int = 50) -> list[str]:
        """Recoveries with work left whose holder stopped renewing (or that nobody claimed for a lease period)."""
        now = self.clock()
        stale = now - timedelta(seconds=self.seconds)
        q = (
            select(RecoveryRow.id)
            .where(
                RecoveryRow.status.in_(RESUMABLE),
                or_(
                    RecoveryRow.lease_until < now,
                    and_(RecoveryRow.lease_until.is_(None), RecoveryRow.updated_at < stale),
                ),
            )
            .order_by(RecoveryRow.updated_at)
            .limit(limit)
        )
        async with self.db.sessions() as session:
            return list((await session.execute(q)).scalars())

    @contextlib.asynccontextmanager
    async def kept(self, rid: str) -> AsyncIterator[None]:
        """Renew the lease every third of its length while the body runs; cancel the body if it is lost."""
        body = asyncio.current_task()
        assert body is not None
        lost = False

        async def heartbeat() -> None:
            nonlocal lost
            while True:
                await asyncio.sleep(self.seconds / 3)
                try:
                    still = await self.renew(rid)
                except Exception:  # a database hiccup: try again before the lease runs out
                    log.warning("recovery %s: lease renewal failed; retrying", rid, exc_info=True)
                    continue
                if not still:
                    lost = True
                    log.warning("recovery %s: lease lost to another replica; stopping here", rid)
                    body.cancel()
                    return

        beat = asyncio.create_task(heartbeat(), name=f"healer:lease:{rid}")
        try:
            yield
        except asyncio.CancelledError:
            if lost:
                body.uncancel()
                raise LeaseLost(f"recovery {rid}: lease lost while running") from None
            raise
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
