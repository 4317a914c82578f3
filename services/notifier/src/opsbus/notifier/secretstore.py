"""Receiver secrets stored encrypted in the notifier's schema, so a receiver can be added through the API without a
redeploy; the configuration refers to one as `secretRef: <name>`.

* `Keyring`: Fernet keys from settings (`OPSBUS_NOTIFIER__SECRETS__KEYS`); the first encrypts, every one decrypts
  (MultiFernet), so a key is rotated by adding the new one first, running `rotate`, then dropping the old one.
  A key is known by `key_id` (a digest of it), never by its text.
* `ReceiverSecrets`: the `receiver_secrets` table. Every put, delete and rotation writes its `audit.recorded`
  event to the outbox in the same transaction (name, actor, key id: never the value).

Write-only by design: nothing here returns a value to a caller outside the notifier; `values` is for resolving
references into the channels of the configuration in force. No value is ever logged.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import Column, DateTime, PrimaryKeyConstraint, String, Table, Text, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from opsbus.common.audit import Auditor
from opsbus.common.errors import ConfigurationError, ConflictError, NotFoundError
from opsbus.common.events.payloads.audit import AuditOutcome
from opsbus.common.events.payloads.common import Actor, ActorKind, ResourceRef
from opsbus.common.store import Database, add
from opsbus.notifier import store
from opsbus.notifier.domain.secrets import SecretRef, StoredSecretRef, Unresolved

log = logging.getLogger(__name__)

receiver_secrets = Table(
    "receiver_secrets",
    store.metadata,
    Column("name", String(253), nullable=False),
    Column("ciphertext", Text, nullable=False, comment="Fernet token (AES-128-CBC + HMAC-SHA256)"),
    Column("key_id", String(16), nullable=False, comment="digest of the key the value is encrypted under"),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("updated_by", String(253), nullable=False),
    PrimaryKeyConstraint("name", name="pk_receiver_secrets"),
)


def key_id(key: str) -> str:
    """A short public name for a Fernet key: a digest, from which the key cannot be recovered."""
    return hashlib.sha256(b"opsbus-notifier-receiver-secrets:" + key.encode()).hexdigest()[:12]


def check_key(key: str) -> bytes:
    """The key's 32 raw bytes; `ValueError` when it is not a Fernet key (url-safe base64 of 32 bytes)."""
    try:
        Fernet(key.encode())
        return base64.urlsafe_b64decode(key.encode())
    except (ValueError, TypeError) as exc:
        raise ValueError("not a Fernet key (url-safe base64 of 32 random bytes; see docs/OPERATIONS.md)") from exc


class NoKeyError(ConfigurationError):
    """Stored secrets need an encryption key and none is configured."""


class Keyring:
    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise NoKeyError("no receiver secret key is configured (OPSBUS_NOTIFIER__SECRETS__KEYS)")
        self._fernet = MultiFernet([Fernet(k.encode()) for k in keys])
        self.ids = tuple(key_id(k) for k in keys)
        self._by_id = {key_id(k): Fernet(k.encode()) for k in keys}

    @property
    def primary(self) -> str:
        return self.ids[0]

    def encrypt(self, value: str) -> str:
        return self._fernet.encrypt(value.encode()).decode()

    def decrypt(self, token: str, stored_key_id: str | None = None) -> str:
        """The value; `InvalidToken` when no key of the ring opens it."""
        fernet = self._by_id.get(stored_key_id or "", self._fernet)  # the recorded key first, else try them all
        try:
            return fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            return self._fernet.decrypt(token.encode()).decode()

    def rotate(self, token: str) -> str:
        return self._fernet.rotate(token.encode()).decode()


@dataclass(frozen=True, slots=True)
class SecretInfo:
    name: str
    key_id: str
    created_at: datetime
    updated_at: datetime
    updated_by: str


def _info(row: object) -> SecretInfo:
    return SecretInfo(row.name, row.key_id, row.created_at, row.updated_at, row.updated_by)  # type: ignore[attr-defined]


class ReceiverSecrets:
    def __init__(
        self,
        db: Database,
        keyring: Keyring | None,
        *,
        auditor: Auditor,
        clock: Callable[[], datetime],
        on_outbox: Callable[[], None] = lambda: None,
    ) -> None:
        self.db = db
        self._keyring = keyring
        self.auditor = auditor
        self.clock = clock
        self._on_outbox = on_outbox

    @property
    def keyring(self) -> Keyring:
        if self._keyring is None:  # 409: the notifier's state, not the request, is what is missing
            raise ConflictError(
                "the notifier has no receiver secret key: set OPSBUS_NOTIFIER__SECRETS__KEYS to store secrets"
            )
        return self._keyring

    async def check_readable(self) -> int:
        """At start: `ConfigurationError` when secrets are stored but no key, or a key they need, is configured;
        else how many are stored."""
        t = receiver_secrets
        async with self.db.sessions() as session:
            rows = (await session.execute(select(t.c.key_id, func.count()).group_by(t.c.key_id))).all()
        total = sum(int(count) for _, count in rows)
        if total and self._keyring is None:
            raise NoKeyError(
                f"{total} receiver secret(s) are stored but OPSBUS_NOTIFIER__SECRETS__KEYS is empty: "
                "configure the key they were stored under"
            )
        missing = sorted(k for k, _ in rows if self._keyring is not None and k not in self._keyring.ids)
        if missing:
            raise ConfigurationError(
                f"receiver secrets are stored under key(s) {', '.join(missing)} that OPSBUS_NOTIFIER__SECRETS__KEYS "
                "no longer holds: add the key back (after the new one), run the rotation, then remove it"
            )
        return total

    async def list(self) -> list[SecretInfo]:
        t = receiver_secrets
        async with self.db.sessions() as session:
            rows = (await session.execute(select(t).order_by(t.c.name))).all()
        return [_info(r) for r in rows]

    async def values(self, names: Collection[str]) -> dict[SecretRef, str | Unresolved]:
        """The decrypted value of each name (or why there is none); for the notifier's own channels only."""
        if not names:
            return {}
        t = receiver_secrets
        async with self.db.sessions() as session:
            rows = {r.name: r for r in (await session.execute(select(t).where(t.c.name.in_(list(names))))).all()}
        out: dict[SecretRef, str | Unresolved] = {}
        for name in names:
            ref, row = StoredSecretRef(name), rows.get(name)
            if row is None:
                out[ref] = Unresolved(f"{ref} does not exist: put it first (PUT /v1/receiver-secrets/{name})")
            elif self._keyring is None:
                out[ref] = Unresolved(f"{ref} cannot be decrypted: no key is configured")
            else:
                try:
                    out[ref] = self._keyring.decrypt(row.ciphertext, row.key_id)
                except InvalidToken:
                    out[ref] = Unresolved(f"{ref} cannot be decrypted with the configured keys (key {row.key_id})")
        return out

    async def put(self, name: str, value: str, *, actor: str, comment: str | None) -> SecretInfo:
        keyring = self.keyring
        now = self.clock()
        t = receiver_secrets
        async with self.db.sessions.begin() as session:
            existed = (await session.execute(select(t.c.name).where(t.c.name == name).with_for_update())).first()
            upsert = insert(t).values(
                name=name,
                ciphertext=keyring.encrypt(value),
                key_id=keyring.primary,
                created_at=now,
                updated_at=now,
                updated_by=actor,
            )
            statement = upsert.on_conflict_do_update(
                index_elements=[t.c.name],
                set_={
                    "ciphertext": upsert.excluded.ciphertext,
                    "key_id": upsert.excluded.key_id,
                    "updated_at": now,
                    "updated_by": actor,
                },
            ).returning(*t.c)
            info = _info((await session.execute(statement)).one())
            verb = "replaced" if existed else "created"
            reason = comment or f"receiver secret {verb}"
            await self._audit(session, "notify.secret.put", info, actor=actor, reason=reason)
        log.info("receiver secret %s %s by %s (key %s)", name, verb, actor, info.key_id)
        return info

    async def delete(self, name: str, *, actor: str) -> SecretInfo:
        t = receiver_secrets
        async with self.db.sessions.begin() as session:
            row = (await session.execute(select(t).where(t.c.name == name).with_for_update())).first()
            if row is None:
                raise NotFoundError(f"receiver secret {name} does not exist")
            info = _info(row)
            await session.execute(delete(t).where(t.c.name == name))
            await self._audit(session, "notify.secret.delete", info, actor=actor, reason="receiver secret deleted")
        log.info("receiver secret %s deleted by %s", name, actor)
        return info

    async def rotate(self, *, actor: str) -> tuple[int, int]:
        """Re-encrypt every value under the first key: (re-encrypted, total). One audit entry for the rotation."""
        keyring = self.keyring
        t = receiver_secrets
        rotated = 0
        async with self.db.sessions.begin() as session:
            rows = (await session.execute(select(t).order_by(t.c.name).with_for_update())).all()
            for row in rows:
                try:
                    token = keyring.rotate(row.ciphertext)
                except InvalidToken as exc:
                    raise ConflictError(
                        f"receiver secret {row.name} is stored under key {row.key_id}, which is not configured: "
                        "add it back (after the new key) and rotate again"
                    ) from exc
                await session.execute(
                    update(t).where(t.c.name == row.name).values(ciphertext=token, key_id=keyring.primary)
                )
                rotated += row.key_id != keyring.primary
            entry = self.auditor.entry(
                action="notify.secret.rotate",
                target=ResourceRef(kind="ReceiverSecret", name="*"),
                outcome=AuditOutcome.EXECUTED,
                reason=f"{len(rows)} receiver secret(s) re-encrypted under key {keyring.primary}",
                actor=Actor(kind=ActorKind.USER, id=actor),
                details={"key_id": keyring.primary, "rotated": rotated, "total": len(rows)},
                time=self.clock(),
            )
            if await add(session, store.TABLES.outbox, entry):
                self._on_outbox()
        log.info("%d receiver secret(s) re-encrypted under key %s by %s", len(rows), keyring.primary, actor)
        return rotated, len(rows)

    async def _audit(self, session: AsyncSession, action: str, info: SecretInfo, *, actor: str, reason: str) -> None:
        name = info.name
        entry = self.auditor.entry(
            action=action,
            target=ResourceRef(kind="ReceiverSecret", name=name),
            outcome=AuditOutcome.EXECUTED,
            reason=reason,
            actor=Actor(kind=ActorKind.USER, id=actor),
            details={"key_id": info.key_id},
            idempotency_key=f"{action}:{name}:{info.updated_at.isoformat()}",
            time=self.clock(),
        )
        if await add(session, store.TABLES.outbox, entry):
            self._on_outbox()
