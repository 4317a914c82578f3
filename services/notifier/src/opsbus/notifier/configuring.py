"""The routing configuration in force, with versions: seeded from the file, edited through the API, reloaded
by every replica.

* `ConfigVersions` is the `config_versions` table. The highest version is in force. `put` stores a new one
  only when `expected_version` is the latest (optimistic concurrency: the version's primary key makes two
  concurrent puts of the same version conflict, and the loser gets 409). A put is validated first against this
  process's environment (unset `${VARIABLE}`s are named) and its secret sources (a missing Kubernetes Secret or
  key, or stored secret, is named, read fresh), and literal secrets are refused, because a stored
  configuration is readable back. Each put is audited in the same transaction (and, for a put through the
  gateway, the gateway's caller's `routes.put` entry too).
* `seed` records the configuration file as a new version when it differs from the last version seeded from a
  file: redeploying a changed file wins over earlier API edits, a restart with the same file does not.
* `Reloader.refresh` (every `config_poll_seconds`, and at once after a put) applies the latest version to the
  running notifier: new routing tree, receivers and channels. A version that does not parse here (a variable
  missing in this replica's environment) is logged and the previous one stays in force. The version in force is
  applied again when the values of its secret references change (a stored secret put again, a Kubernetes Secret
  edited), so a secret is replaced without a restart.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from opsbus.common.api.calling import Caller
from opsbus.common.audit import Auditor
from opsbus.common.errors import ConfigurationError, ConflictError, NotFoundError, PermanentError
from opsbus.common.events.payloads.audit import AuditOutcome
from opsbus.common.events.payloads.common import Actor, ActorKind, ResourceRef
from opsbus.common.store import Database, add
from opsbus.notifier import store
from opsbus.notifier.channels import Channel, ChannelConfigError
from opsbus.notifier.domain.config import (
    ConfigError,
    NotifierConfig,
    literal_secrets,
    parse_config,
    secret_references,
)
from opsbus.notifier.domain.secrets import Resolved, StoredSecretRef
from opsbus.notifier.executing import Notifier
from opsbus.notifier.secretsources import SecretSources

log = logging.getLogger(__name__)

Source = Literal["file", "api"]
ChannelsFor = Callable[[NotifierConfig], Mapping[str, Mapping[str, Channel]]]


@dataclass(frozen=True, slots=True)
class StoredConfig:
    version: int
    yaml: str
    sha256: str
    source: Source
    author: str
    comment: str | None
    created_at: datetime


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _stored(row: Any) -> StoredConfig:
    return StoredConfig(row.version, row.yaml, row.sha256, row.source, row.author, row.comment, row.created_at)


class ConfigVersions:
    def __init__(
        self,
        db: Database,
        *,
        auditor: Auditor,
        env: Mapping[str, str],
        clock: Callable[[], datetime],
        on_outbox: Callable[[], None] = lambda: None,
        channels_for: ChannelsFor | None = None,
        sources: SecretSources | None = None,
    ) -> None:
        self.db = db
        self.channels_for = channels_for
        self.sources = sources
        self.auditor = auditor
        self.env = env
        self.clock = clock
        self._on_outbox = on_outbox

    async def latest(self) -> StoredConfig | None:
        t = store.config_versions
        async with self.db.sessions() as session:
            row = (await session.execute(select(t).order_by(t.c.version.desc()).limit(1))).first()
        return _stored(row) if row else None

    async def get(self, version: int) -> StoredConfig:
        t = store.config_versions
        async with self.db.sessions() as session:
            row = (await session.execute(select(t).where(t.c.version == version))).first()
        if row is None:
            raise NotFoundError(f"configuration version {version} does not exist")
        return _stored(row)

    async def history(self, limit: int) -> list[StoredConfig]:
        t = store.config_versions
        async with self.db.sessions() as session:
            rows = (await session.execute(select(t).order_by(t.c.version.desc()).limit(limit))).all()
        return [_stored(r) for r in rows]

    async def resolve(self, text: str, *, fresh: bool = False) -> Resolved:
        """The values of the configuration's secret references (or why each has none); `ConfigError` when the
        text is not a YAML mapping."""
        refs = secret_references(text)
        if not refs:
            return {}
        if self.sources is None:
            return {}  # parse_config names every reference as not looked up
        return await self.sources.resolve(refs, fresh=fresh)

    async def load(self, text: str, *, fresh: bool = False) -> tuple[NotifierConfig, Resolved]:
        """Parse `text` with its secrets resolved; `ConfigError` naming every problem."""
        resolved = await self.resolve(text, fresh=fresh)
        return parse_config(text, env=self.env, secrets=resolved), resolved

    async def referencing(self, name: str) -> str | None:
        """What in the latest configuration refers to the stored secret `name`, if anything."""
        latest = await self.latest()
        if latest is None:
            return None
        try:
            refs = secret_references(latest.yaml)
        except ConfigError:
            return None
        return f"configuration version {latest.version}" if StoredSecretRef(name) in refs else None

    async def check(self, text: str) -> NotifierConfig:
        """Validate a configuration proposed through the API: `PermanentError` (422) naming every problem."""
        try:
            config, _ = await self.load(text, fresh=True)
            secrets = literal_secrets(text)
        except ConfigError as exc:
            raise PermanentError("invalid notifier configuration: " + "; ".join(exc.problems)) from exc
        if secrets:
            raise PermanentError("invalid notifier configuration: " + "; ".join(str(i) for i in secrets))
        if self.channels_for is not None:  # integrations that name files (an SMTP CA) must be buildable here
            try:
                self.channels_for(config)
            except ChannelConfigError as exc:
                raise PermanentError(f"invalid notifier configuration: {exc}") from exc
        return config

    async def put(
        self, text: str, *, expected_version: int, author: str, comment: str | None, caller: Caller | None = None
    ) -> StoredConfig:
        await self.check(text)
        try:
            async with self.db.sessions.begin() as session:
                current = await self._latest_version(session)
                if current != expected_version:
                    raise ConflictError(
                        f"configuration version {current} is in force, not {expected_version}: "
                        "read it again, reapply your change and put with its version"
                    )
                stored = await self._insert(session, current + 1, text, source="api", author=author, comment=comment)
                if caller is not None:  # the gateway's caller, as the gateway recorded the put before
                    call = self.auditor.entry(
                        action="routes.put",
                        target=ResourceRef(kind="NotifierConfig", name="routes"),
                        outcome=AuditOutcome.EXECUTED,
                        reason=comment or f"notifier configuration version {stored.version}",
                        actor=caller.actor,
                        request_id=caller.request_id,
                        details={"version": stored.version, "sha256": stored.sha256, "replaced": expected_version},
                    )
                    await add(session, store.TABLES.outbox, call)
        except IntegrityError as exc:  # another put of the same version committed first
            raise ConflictError(
                f"configuration version {expected_version + 1} was put concurrently: read it and retry"
            ) from exc
        log.info("configuration version %d put by %s", stored.version, author)
        return stored

    async def seed(self, text: str, *, author: str = "configuration file") -> StoredConfig:
        """Record the file's configuration unless it is the last one seeded from a file; the version in force."""
        t = store.config_versions
        digest = sha256(text)
        for _ in range(5):
            try:
                async with self.db.sessions.begin() as session:
                    last_file = (
                        await session.execute(
                            select(t.c.sha256).where(t.c.source == "file").order_by(t.c.version.desc()).limit(1)
                        )
                    ).first()
                    if last_file is None or last_file.sha256 != digest:
                        current = await self._latest_version(session)
                        await self._insert(
                            session, current + 1, text, source="file", author=author, comment="seeded from the file"
                        )
            except IntegrityError:  # another replica seeded at the same moment: look again
                continue
            latest = await self.latest()
            assert latest is not None
            return latest
        raise ConfigurationError("could not record the notifier configuration: versions kept changing")

    async def _latest_version(self, session: AsyncSession) -> int:
        t = store.config_versions
        row = (await session.execute(select(t.c.version).order_by(t.c.version.desc()).limit(1))).first()
        return int(row.version) if row else 0

    async def _insert(
        self, session: AsyncSession, version: int, text: str, *, source: Source, author: str, comment: str | None
    ) -> StoredConfig:
        stored = StoredConfig(version, text, sha256(text), source, author, comment, self.clock())
        await session.execute(
            store.config_versions.insert().values(
                version=stored.version,
                yaml=stored.yaml,
                sha256=stored.sha256,
                source=stored.source,
                author=stored.author,
                comment=stored.comment,
                created_at=stored.created_at,
            )
        )
        entry = self.auditor.entry(
            action="notify.config.put",
            target=ResourceRef(kind="NotifierConfig", name=f"v{version}"),
            outcome=AuditOutcome.EXECUTED,
            reason=comment or f"configuration version {version} ({source})",
            actor=Actor(kind=ActorKind.USER, id=author) if source == "api" else None,
            details={"version": version, "sha256": stored.sha256, "source": source},
            idempotency_key=f"notify.config.put:{version}:{stored.sha256}",
            time=stored.created_at,
        )
        if await add(session, store.TABLES.outbox, entry):
            self._on_outbox()
        return stored


class Reloader:
    """Keeps the running notifier on the latest configuration version."""

    def __init__(self, versions: ConfigVersions, notifier: Notifier, channels_for: ChannelsFor) -> None:
        self.versions = versions
        self.notifier = notifier
        self.channels_for = channels_for
        self.version: int | None = None
        self._refused: tuple[int, str] | None = None
        self._secrets = ""  # digest of the secret values the version in force was applied with

    async def apply(self, stored: StoredConfig, *, fresh: bool = False) -> None:
        """Parse and apply `stored`; `ConfigurationError` when it does not parse in this environment."""
        try:
            config, resolved = await self.versions.load(stored.yaml, fresh=fresh)
            channels = self.channels_for(config)
        except (ConfigError, ChannelConfigError) as exc:
            raise ConfigurationError(f"configuration version {stored.version}: {exc}") from exc
        self.notifier.apply_config(config, channels)
        self.version = stored.version
        self._secrets = _digest(resolved)

    async def refresh(self) -> bool:
        """Apply the latest version if it is not the one in force, or again if its secrets changed; True when
        something was applied."""
        latest = await self.versions.latest()
        if latest is None:
            return False
        same_version = latest.version == self.version
        try:
            resolved = await self.versions.resolve(latest.yaml)
        except ConfigError:
            resolved = {}
        digest = _digest(resolved)
        if (same_version and digest == self._secrets) or self._refused == (latest.version, digest):
            return False
        try:
            await self.apply(latest)
        except ConfigurationError as exc:
            self._refused = (latest.version, digest)  # said once, not at every poll
            log.error("%s; version %s stays in force", exc, self.version)
            return False
        what = "secrets changed" if same_version else f"{latest.source}, by {latest.author}"
        log.info("configuration version %d (%s) in force", latest.version, what)
        return True


def _digest(resolved: Resolved) -> str:
    """One digest of every resolved secret value, to notice a change without keeping the values around."""
    h = hashlib.sha256()
    for ref, value in sorted(resolved.items(), key=lambda item: repr(item[0])):
        h.update(f"{ref!r}\0{value!r}\0".encode())
    return h.hexdigest()
