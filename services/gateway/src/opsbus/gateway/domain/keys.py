"""API keys: random, shown once, stored as a SHA-256 hash next to a public prefix used for lookup.

A key reads `opsb_<prefix>_<secret>`: the prefix (10 hex characters) is stored in clear and indexed, so the
gateway finds the one candidate row without scanning; the secret (32 random bytes, URL-safe base64) is never
stored, only its SHA-256. A slow password hash is not needed: the secret has 256 bits of entropy, so a stolen
hash cannot be brute-forced, and a fast hash keeps authentication cheap on every request. Comparison is
constant-time. This module must never log or return a stored secret: there is none.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

KEY_PREFIX = "opsb"
_KEY = re.compile(r"^opsb_(?P<prefix>[0-9a-f]{10})_(?P<secret>[A-Za-z0-9_-]{43})$")


@dataclass(frozen=True, slots=True)
class NewKey:
    """A freshly minted key: `token` is shown to the caller once; only `prefix` and `digest` are stored."""

    token: str
    prefix: str
    digest: str


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def mint() -> NewKey:
    prefix = secrets.token_hex(5)
    secret = secrets.token_urlsafe(32)
    return NewKey(token=f"{KEY_PREFIX}_{prefix}_{secret}", prefix=prefix, digest=digest(secret))


def parse(token: str) -> tuple[str, str] | None:
    """(prefix, secret) of a well-formed key, None otherwise (never raises on attacker input)."""
    match = _KEY.match(token)
    if match is None:
        return None
    return match["prefix"], match["secret"]


def matches(secret: str, stored_digest: str) -> bool:
    return hmac.compare_digest(digest(secret), stored_digest)
