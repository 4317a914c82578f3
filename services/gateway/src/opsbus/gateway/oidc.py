"""OIDC/JWT bearer tokens validated against the issuer's JWKS (PyJWT does the cryptography).

The signing keys are fetched with httpx (non-blocking) and cached for `jwks_cache_seconds`; a token signed
with a key id not in the cache triggers one refetch (key rotation), at most every 10 seconds, so a flood of
forged key ids cannot make the gateway hammer the issuer. `iss`, `aud`, `exp` (required) and `nbf` are
checked with a small leeway. The role and scope come from configurable claims.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt

from opsbus.gateway.domain.access import ALL, Principal, Role, Scope
from opsbus.gateway.settings import OidcSettings

log = logging.getLogger(__name__)


class TokenError(Exception):
    """The token is not acceptable (the message is safe to show: no token content)."""


class JwtVerifier:
    def __init__(
        self, settings: OidcSettings, client: httpx.AsyncClient, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self._client = client
        self._monotonic = monotonic
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")

    @property
    def enabled(self) -> bool:
        return bool(self.settings.jwks_url)

    async def _refresh(self) -> None:
        assert self.settings.jwks_url
        try:
            response = await self._client.get(self.settings.jwks_url, timeout=5.0)
            response.raise_for_status()
            jwks = jwt.PyJWKSet.from_dict(response.json())
        except (httpx.HTTPError, ValueError, jwt.PyJWKSetError) as exc:
            log.warning("cannot fetch the JWKS: %s", type(exc).__name__)
            raise TokenError("the token issuer's signing keys are unavailable") from exc
        self._keys = {k.key_id or "": k for k in jwks.keys}
        self._fetched_at = self._monotonic()

    async def _key(self, kid: str) -> jwt.PyJWK:
        age = self._monotonic() - self._fetched_at
        if age > self.settings.jwks_cache_seconds or (kid not in self._keys and age > 10.0):
            await self._refresh()
        key = self._keys.get(kid) or (self._keys.get("") if len(self._keys) == 1 else None)
        if key is None:
            raise TokenError("the token is signed with an unknown key")
        return key

    async def verify(self, token: str) -> Principal:
        if not self.enabled:
            raise TokenError("JWT bearer tokens are not enabled on this gateway")
        return self.principal(await self.claims(token, audience=self.settings.audience))

    async def id_token_claims(self, token: str, *, audience: str, nonce: str) -> dict[str, Any]:
        """An ID token of the SSO sign-in: signature, issuer, audience (the client id), expiry and nonce."""
        claims = await self.claims(token, audience=audience)
        sent = claims.get("nonce")
        if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), nonce.encode()):
            raise TokenError("the ID token's nonce does not match this sign-in")
        return claims

    async def claims(self, token: str, *, audience: str | None) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise TokenError("malformed token") from exc
        algorithm = header.get("alg")
        if algorithm not in self.settings.algorithms:
            raise TokenError(f"token algorithm {algorithm!r} is not accepted")
        key = await self._key(str(header.get("kid") or ""))
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=self.settings.algorithms,
                audience=audience,
                issuer=self.settings.issuer,
                leeway=self.settings.leeway_seconds,
                options={"require": ["exp", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenError("the token has expired") from exc
        except jwt.InvalidTokenError as exc:
            raise TokenError(f"invalid token: {type(exc).__name__}") from exc
        return claims

    def principal(self, claims: dict[str, Any]) -> Principal:
        s = self.settings
        role_value = claims.get(s.role_claim, s.default_role)
        if not isinstance(role_value, str):
            raise TokenError(f"the token has no {s.role_claim} claim")
        try:
            role = Role.parse(role_value)
        except ValueError as exc:
            raise TokenError(str(exc)) from exc
        return Principal(
            kind="user",
            id=str(claims["sub"])[:253],
            role=role,
            scope=Scope.of(_names(claims.get(s.namespaces_claim)), _names(claims.get(s.clusters_claim))),
            display_name=str(claims.get("email") or claims.get("preferred_username") or claims["sub"])[:253],
        )


def _names(value: object) -> list[str]:
    """A claim listing names: a list, a space/comma separated string, or absent (nothing)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [v for v in value.replace(",", " ").split() if v] or []
    if isinstance(value, list):
        return [str(v) for v in value if v] or []
    return [ALL] if value is True else []
