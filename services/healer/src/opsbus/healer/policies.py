"""Remediation policy versions in PostgreSQL: config as code at startup, edits through the gateway.

Each edit is a new version (optimistic concurrency on the version number), so every recovery names the
policy version it was planned with and replicas pick up a newer version on their next plan. Parsing and
validation are the domain's (`domain.policy`); this module only stores and loads.

A put through the endpoint commits with its audit entry (`audit`, built by the endpoint with the caller the
gateway names) in one transaction: a version whose entry cannot be written is not stored.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from opsbus.common.api.calling import Caller
from opsbus.common.audit import Auditor
from opsbus.common.errors import ConflictError, NotFoundError, PermanentError
from opsbus.common.events import Envelope
from opsbus.common.events.payloads import Actor, ActorKind, AuditOutcome, ResourceRef
from opsbus.common.store import Database, Outbox
from opsbus.healer.domain.policy import PolicySet, parse_policies
from opsbus.healer.store import TABLES, PolicyVersionRow

AuditFor = Callable[[PolicySet], Envelope]
"""Builds the audit entry of a new version; it commits with the version."""


class PolicyStore:
    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.clock = clock
        self._policies: PolicySet | None = None

    async def load(self, document: str, author: str) -> PolicySet:
        """Make `document` the current version unless it already is (config as code at startup)."""
        async with self.db.sessions.begin() as session:
            latest = await self._latest_policy_row(session)
            if latest is not None and latest.document == document:
                self._policies = parse_policies(latest.document, version=latest.version)
                return self._policies
            version = (latest.version if latest else 0) + 1
            parsed = parse_policies(document, version=version)
            session.add(
                PolicyVersionRow(
                    version=version, document=document, author=author, comment="loaded", created_at=self.clock()
                )
            )
        self._policies = parsed
        return parsed

    async def _latest_policy_row(self, session: AsyncSession) -> PolicyVersionRow | None:
        q = select(PolicyVersionRow).order_by(PolicyVersionRow.version.desc()).limit(1)
        return (await session.execute(q)).scalar_one_or_none()

    async def current(self, session: AsyncSession | None = None) -> PolicySet:
        """The latest version (another replica may have put a newer one); read in `session` when given (the
        intake's batch transaction), else in a session of its own."""
        if session is None:
            async with self.db.sessions() as own:
                return await self.current(own)
        latest_version = (await session.execute(select(func.max(PolicyVersionRow.version)))).scalar_one_or_none()
        if self._policies is None or latest_version != self._policies.version:
            row = await self._latest_policy_row(session)
            if row is None:
                raise PermanentError("no remediation policies are loaded")
            self._policies = parse_policies(row.document, version=row.version)
        return self._policies

    async def version(self, number: int) -> PolicyVersionRow:
        """A stored version, current or past (the console diffs against it and rolls back to it)."""
        async with self.db.sessions() as session:
            row = await session.get(PolicyVersionRow, number)
        if row is None:
            raise NotFoundError(f"no policy version {number}")
        return row

    async def versions(self, limit: int) -> list[PolicyVersionRow]:
        """The newest `limit` versions, newest first."""
        q = select(PolicyVersionRow).order_by(PolicyVersionRow.version.desc()).limit(limit)
        async with self.db.sessions() as session:
            return list((await session.execute(q)).scalars())

    @staticmethod
    def audit_for(auditor: Auditor, *, author: str, comment: str | None, caller: Caller | None) -> AuditFor:
        """The entry of a put (`policy.put`, as the gateway recorded it): the caller the gateway names, else
        the author, as the actor."""

        def entry(stored: PolicySet) -> Envelope:
            return auditor.entry(
                action="policy.put",
                target=ResourceRef(kind="RemediationPolicy", name="policies"),
                outcome=AuditOutcome.EXECUTED,
                reason=comment or f"policies version {stored.version}",
                details={"version": stored.version, "policies": [p.name for p in stored.policies]},
                actor=caller.actor if caller else Actor(kind=ActorKind.USER, id=author),
                request_id=caller.request_id if caller else None,
            )

        return entry

    async def put(
        self, document: str, expected_version: int, author: str, comment: str | None, *, audit: AuditFor | None = None
    ) -> PolicySet:
        parsed = parse_policies(document)  # PolicyError -> 422 at the endpoint
        async with self.db.sessions.begin() as session:
            latest = await self._latest_policy_row(session)
            current = latest.version if latest else 0
            if current != expected_version:
                raise ConflictError(f"policies are at version {current}, not {expected_version}: reload and retry")
            stored = PolicySet(parsed.policies, current + 1, document)
            session.add(
                PolicyVersionRow(
                    version=stored.version, document=document, author=author, comment=comment, created_at=self.clock()
                )
            )
            if audit is not None:
                await Outbox.for_tables(TABLES).add(session, audit(stored))
        self._policies = stored
        return stored
