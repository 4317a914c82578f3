"""The web console's sessions in `gateway.console_sessions`: the gateway is the console's backend-for-frontend.

A browser signs in once (an API key, or OIDC through the gateway) and from then on holds only an opaque
cookie: 32 random bytes whose SHA-256 is the row's `digest` (the secret itself is never stored, as with API
keys). The row also holds the CSRF token every mutating call made with the cookie must echo in
`X-CSRF-Token` (a synchronizer token: the browser gets it from the sign-in answer or `GET /v1/session`, which
only same-origin script can read), who signed in, the expiry, and the sign-out.

A session made from an API key authenticates exactly as that key does: each request looks the key up again
(through the key store's cache), so the key's role and scope apply and revoking or expiring the key ends its
sessions within the key cache's lifetime. A session made through OIDC carries the role and scope of the ID
token's claims at sign-in, until it expires.

Opening and closing a session commit with their audit entry (given as `audit`, added to the gateway's outbox):
no entry, no session. A failed sign-in writes its entry alone (`refused`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from opsbus.common.events import Envelope
from opsbus.common.store import Database, add
from opsbus.gateway import store
from opsbus.gateway.domain.access import Principal, Role, Scope


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    csrf: str
    kind: str
    subject: str
    key_prefix: str | None
    display_name: str | None
    role: Role
    namespaces: tuple[str, ...]
    clusters: tuple[str, ...]
    created_at: datetime
    expires_at: datetime

    def principal(self) -> Principal:
        """Who the session speaks for, as signed in (an API key session is re-checked against its key)."""
        return Principal(
            kind=self.kind,
            id=self.subject,
            role=self.role,
            scope=Scope.of(self.namespaces, self.clusters),
            display_name=self.display_name,
        )

    def csrf_matches(self, sent: str | None) -> bool:
        return sent is not None and hmac.compare_digest(sent.encode(), self.csrf.encode())


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A session as an admin sees it: who, with what role and scope, when, and whether it ended."""

    session: Session
    ended_at: datetime | None


COOKIE = "__Host-opsbus_session"
"""The session cookie: `__Host-` makes the browser insist on Secure, Path=/ and no Domain."""
DEV_COOKIE = "opsbus_session"
"""The cookie without Secure, only with `console.insecure_loopback_cookie` on a loopback host (development)."""
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})


def cookie_name(host: str, *, insecure_loopback: bool) -> str:
    """The cookie a request to `host` (the Host header) gets: Secure unless development on a loopback address."""
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return DEV_COOKIE if insecure_loopback and name in LOOPBACK_HOSTS else COOKIE


AuditFor = Callable[[Session], Envelope]
"""Builds the audit entry of a sign-in or sign-out; it commits with the session's write."""


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _session(row: object) -> Session:
    r = row._mapping  # type: ignore[attr-defined]
    return Session(
        id=r["id"],
        csrf=r["csrf"],
        kind=r["kind"],
        subject=r["subject"],
        key_prefix=r["key_prefix"],
        display_name=r["display_name"],
        role=Role.parse(r["role"]),
        namespaces=tuple(r["namespaces"]),
        clusters=tuple(r["clusters"]),
        created_at=r["created_at"],
        expires_at=r["expires_at"],
    )


class SessionStore:
    def __init__(
        self,
        db: Database,
        *,
        ttl: timedelta,
        cache_seconds: float = 5.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.ttl = ttl
        self.cache_seconds = cache_seconds
        self.clock = clock
        self._monotonic = monotonic
        self._cache: dict[str, tuple[float, Session]] = {}

    async def open(self, who: Principal, *, key_prefix: str | None, audit: AuditFor) -> tuple[Session, str]:
        """A new session for `who` and the cookie's value (shown to the browser only, never stored)."""
        secret = secrets.token_urlsafe(32)
        now = self.clock()
        session = Session(
            id=str(uuid.uuid4()),
            csrf=secrets.token_urlsafe(32),
            kind=who.kind,
            subject=who.id,
            key_prefix=key_prefix,
            display_name=who.display_name,
            role=who.role,
            namespaces=tuple(sorted(who.scope.namespaces)),
            clusters=tuple(sorted(who.scope.clusters)),
            created_at=now,
            expires_at=now + self.ttl,
        )
        values = {
            "id": session.id,
            "digest": _digest(secret),
            "csrf": session.csrf,
            "kind": session.kind,
            "subject": session.subject[:253],
            "key_prefix": key_prefix,
            "display_name": (session.display_name or "")[:253] or None,
            "role": str(session.role),
            "namespaces": list(session.namespaces),
            "clusters": list(session.clusters),
            "created_at": now,
            "expires_at": session.expires_at,
        }
        async with self.db.sessions.begin() as tx:
            await tx.execute(store.console_sessions.insert().values(**values))
            await add(tx, store.TABLES.outbox, audit(session))
        return session, secret

    async def find(self, secret: str) -> Session | None:
        """The live session of a cookie: None when unknown, signed out or expired (the caller learns nothing)."""
        if not secret or len(secret) > 100:
            return None
        digest = _digest(secret)
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > self._monotonic():
            session: Session | None = cached[1]
        else:
            t = store.console_sessions
            async with self.db.sessions() as tx:
                row = (await tx.execute(select(t).where(t.c.digest == digest, t.c.ended_at.is_(None)))).first()
            session = _session(row) if row is not None else None
            if session is not None:
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[digest] = (self._monotonic() + self.cache_seconds, session)
        if session is None or session.expires_at <= self.clock():
            return None
        return session

    async def close(self, secret: str, session: Session, *, audit: AuditFor) -> None:
        """Sign out: the session ends now, with its audit entry, and this replica forgets it at once."""
        t = store.console_sessions
        async with self.db.sessions.begin() as tx:
            await tx.execute(
                update(t).where(t.c.id == session.id, t.c.ended_at.is_(None)).values(ended_at=self.clock())
            )
            await add(tx, store.TABLES.outbox, audit(session))
        self._cache.pop(_digest(secret), None)

    async def recent(self, limit: int) -> list[SessionRecord]:
        """The newest sessions, live or ended (for admins: who is signed in, and from what)."""
        t = store.console_sessions
        async with self.db.sessions() as tx:
            rows = (await tx.execute(select(t).order_by(t.c.created_at.desc(), t.c.id).limit(limit))).all()
        return [SessionRecord(_session(row), row._mapping["ended_at"]) for row in rows]

    async def get(self, session_id: str) -> SessionRecord | None:
        t = store.console_sessions
        async with self.db.sessions() as tx:
            row = (await tx.execute(select(t).where(t.c.id == session_id))).first()
        return SessionRecord(_session(row), row._mapping["ended_at"]) if row is not None else None

    async def end(self, session: Session, *, audit: AuditFor) -> bool:
        """An admin ends someone's session: now on this replica, within `cache_seconds` on the others.
        False when it had already ended (nothing written)."""
        t = store.console_sessions
        async with self.db.sessions.begin() as tx:
            ended = await tx.execute(
                update(t).where(t.c.id == session.id, t.c.ended_at.is_(None)).values(ended_at=self.clock())
            )
            if ended.rowcount == 0:  # type: ignore[attr-defined]
                return False
            await add(tx, store.TABLES.outbox, audit(session))
        for digest in [d for d, (_, s) in self._cache.items() if s.id == session.id]:
            self._cache.pop(digest, None)
        return True

    async def refused(self, entry: Envelope) -> None:
        """A failed sign-in: its audit entry alone."""
        async with self.db.sessions.begin() as tx:
            await add(tx, store.TABLES.outbox, entry)
