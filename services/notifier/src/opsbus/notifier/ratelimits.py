"""Per-integration rate limits shared by every replica: one token bucket per `<receiver>/<kind>/<index>` in the
`rate_limits` table. Taking a token locks the bucket's row (`FOR UPDATE`) for one short transaction, so two
replicas never spend the same token, and N replicas together send no faster than the configured rate (a Slack
webhook allows about one message per second whoever sends it). The arithmetic is `take_token`, pure.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert

from opsbus.common.store import Database
from opsbus.notifier import store
from opsbus.notifier.domain.delivery import Bucket, take_token
from opsbus.notifier.domain.integrations import RateLimit


class SharedRateLimiter:
    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.clock = clock

    async def take(self, key: str, limit: RateLimit) -> float:
        """Take a token from `key`'s bucket: 0.0 when taken (send now), else the seconds to wait."""
        t = store.rate_limits
        now = self.clock()
        async with self.db.sessions.begin() as session:
            await session.execute(
                insert(t).values(key=key, tokens=float(limit.burst), updated_at=now).on_conflict_do_nothing()
            )
            row = (await session.execute(select(t).where(t.c.key == key).with_for_update())).one()
            state = Bucket(row.tokens, row.updated_at.timestamp())
            new, wait = take_token(state, per_second=limit.per_second, burst=limit.burst, now=now.timestamp())
            if new != state:
                await session.execute(
                    update(t)
                    .where(t.c.key == key)
                    .values(tokens=new.tokens, updated_at=datetime.fromtimestamp(new.at, UTC))
                )
        return wait
