"""API keys in the `gateway.api_keys` table: mint (the token is returned once), authenticate, list, revoke.

Authentication looks the row up by the key's public prefix and compares the secret's SHA-256 in constant
time; a revoked or expired key fails like an unknown one (the caller learns nothing). Successful lookups
are cached for `cache_seconds` so a hot key costs no query per request, and concurrent misses of one key share
a single query; a revocation through this replica evicts the key at once, a revocation through another replica
takes at most `cache_seconds`.

A key is created or revoked in the same transaction as its audit entry (given as `audit`, added to the
gateway's outbox): when the entry cannot be written, no key was created or revoked (and no token was shown).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from opsbus.common.errors import ConflictError, NotFoundError
from opsbus.common.events import Envelope
from opsbus.common.store import Database, add
from opsbus.gateway import store
from opsbus.gateway.domain import keys
from opsbus.gateway.domain.access import Principal, Role, Scope


@dataclass(frozen=True, slots=True)
class KeyRecord:
    id: str
    name: str
    prefix: str
    role: Role
    namespaces: tuple[str, ...]
    clusters: tuple[str, ...]
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None

    def principal(self) -> Principal:
        return Principal(
            kind="apikey",
            id=self.id,
            role=self.role,
            scope=Scope.of(self.namespaces, self.clusters),
            display_name=self.name,
        )

    def usable(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


AuditFor = Callable[[KeyRecord], Envelope]
"""Builds the audit entry of a key's creation or revocation; it commits with the change."""


async def _audited(session: AsyncSession, record: KeyRecord, audit: AuditFor | None) -> None:
    if audit is not None:
        await add(session, store.TABLES.outbox, audit(record))


def _record(row: object) -> KeyRecord:
    r = row._mapping  # type: ignore[attr-defined]
    return KeyRecord(
        id=r["id"],
        name=r["name"],
        prefix=r["prefix"],
        role=Role.parse(r["role"]),
        namespaces=tuple(r["namespaces"]),
        clusters=tuple(r["clusters"]),
        created_at=r["created_at"],
        created_by=r["created_by"],
        expires_at=r["expires_at"],
        revoked_at=r["revoked_at"],
    )


class KeyStore:
    def __init__(
        self,
        db: Database,
        *,
        cache_seconds: float = 5.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.cache_seconds = cache_seconds
        self.clock = clock
        self._monotonic = monotonic
        self._cache: dict[str, tuple[float, KeyRecord, str]] = {}
        self._lookups: dict[str, asyncio.Future[tuple[KeyRecord, str] | None]] = {}

    async def create(
        self,
        *,
        name: str,
        role: Role,
        namespaces: Sequence[str],
        clusters: Sequence[str],
        created_by: str,
        expires_at: datetime | None = None,
        audit: AuditFor | None = None,
    ) -> tuple[KeyRecord, str]:
        """A new key; returns its record and the token, which is never available again. With `audit`, the
        entry commits with the key or neither does."""
        now = self.clock()
        if expires_at is not None and expires_at <= now:
            raise ConflictError("expires_at is in the past")
        minted = keys.mint()
        key_id = str(uuid.uuid4())
        values = {
            "id": key_id,
            "name": name,
            "prefix": minted.prefix,
            "digest": minted.digest,
            "role": str(role),
            "namespaces": sorted(set(namespaces)),
            "clusters": sorted(set(clusters)),
            "created_at": now,
            "created_by": created_by,
            "expires_at": expires_at,
        }
        record = KeyRecord(
            id=key_id,
            name=name,
            prefix=minted.prefix,
            role=role,
            namespaces=tuple(values["namespaces"]),  # type: ignore[arg-type]
            clusters=tuple(values["clusters"]),  # type: ignore[arg-type]
            created_at=now,
            created_by=created_by,
            expires_at=expires_at,
            revoked_at=None,
        )
        async with self.db.sessions.begin() as session:
            await session.execute(store.api_keys.insert().values(**values))
            await _audited(session, record, audit)
        return record, minted.token

    async def authenticate(self, token: str) -> Principal | None:
        parsed = keys.parse(token)
        if parsed is None:
            return None
        prefix, secret = parsed
        now = self.clock()
        cached = self._cache.get(prefix)
        if cached is not None and cached[0] > self._monotonic():
            _, record, digest = cached
        else:
            found = await self._lookup(prefix)
            if found is None:
                return None
            record, digest = found
        if not keys.matches(secret, digest) or not record.usable(now):
            return None
        return record.principal()

    async def current(self, prefix: str) -> Principal | None:
        """The principal of the key with this public prefix while it is usable (a console session made from the
        key asks on every request, through the same cache, so it authenticates exactly as the key does)."""
        cached = self._cache.get(prefix)
        record = cached[1] if cached is not None and cached[0] > self._monotonic() else None
        if record is None:
            found = await self._lookup(prefix)
            record = found[0] if found is not None else None
        return record.principal() if record is not None and record.usable(self.clock()) else None

    async def _lookup(self, prefix: str) -> tuple[KeyRecord, str] | None:
        """One query per prefix at a time: requests arriving while it runs (a busy key whose cache entry just
        expired) wait for its answer instead of each querying the database."""
        task = self._lookups.get(prefix)
        if task is None:
            task = asyncio.ensure_future(self._query(prefix))
            self._lookups[prefix] = task
            task.add_done_callback(lambda _: self._lookups.pop(prefix, None))
        return await asyncio.shield(task)

    async def _query(self, prefix: str) -> tuple[KeyRecord, str] | None:
        t = store.api_keys
        async with self.db.sessions() as session:
            row = (await session.execute(select(t).where(t.c.prefix == prefix))).first()
        if row is None:
            return None
        record, digest = _record(row), str(row._mapping["digest"])
        self._cache[prefix] = (self._monotonic() + self.cache_seconds, record, digest)
        if len(self._cache) > 10_000:
            self._cache.clear()
        return record, digest

    async def list(self) -> list[KeyRecord]:
        t = store.api_keys
        async with self.db.sessions() as session:
            rows = (await session.execute(select(t).order_by(t.c.created_at))).all()
        return [_record(r) for r in rows]

    async def get(self, key_id: str) -> KeyRecord:
        t = store.api_keys
        async with self.db.sessions() as session:
            row = (await session.execute(select(t).where(t.c.id == key_id))).first()
        if row is None:
            raise NotFoundError(f"no API key {key_id}")
        return _record(row)

    async def revoke(self, key_id: str, *, by: str, audit: AuditFor | None = None) -> KeyRecord:
        t = store.api_keys
        async with self.db.sessions.begin() as session:
            row = (
                await session.execute(
                    update(t)
                    .where(t.c.id == key_id, t.c.revoked_at.is_(None))
                    .values(revoked_at=self.clock(), revoked_by=by)
                    .returning(t)
                )
            ).first()
            if row is not None:
                record = _record(row)
                await _audited(session, record, audit)
        if row is None:
            await self.get(key_id)  # 404 when unknown
            raise ConflictError(f"API key {key_id} is already revoked")
        self._cache.pop(record.prefix, None)
        return record
