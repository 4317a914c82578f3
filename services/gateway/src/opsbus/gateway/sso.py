"""SSO sign-in for the console: the OIDC authorization code flow with PKCE, run by the gateway (authlib).

The browser never sees a token. `start` makes the state, nonce and PKCE verifier and the provider's
authorization URL; they travel in a short-lived (10 min) HMAC-signed HttpOnly cookie (`FlowSeal`), so any
replica can finish the flow and a script in the page can neither read nor forge it. `finish` exchanges the
code (with the verifier, authenticating as the client) and returns the ID token; the caller validates it with
the gateway's `JwtVerifier` (signature via JWKS, issuer, audience = client id, nonce).

The seal's key derives from the client secret, which every replica shares; a public client (no secret) gets a
random key per process, so its flows must come back to the replica that started them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request  # type: ignore[import-untyped]
from authlib.oauth2.rfc7636 import create_s256_code_challenge  # type: ignore[import-untyped]

from opsbus.gateway.settings import OidcSettings

FLOW_SECONDS = 600
"""How long a sign-in at the provider may take."""


class FlowError(Exception):
    """The sign-in cannot complete (the message is safe to show and to audit: no secret in it)."""


class ProviderUnavailable(FlowError):
    """The identity provider did not answer (or answered nonsense): not the user's fault."""


@dataclass(frozen=True, slots=True)
class Flow:
    state: str
    nonce: str
    verifier: str
    next: str


def safe_next(path: str | None) -> str:
    """Where to land after sign-in: a path of this origin only (no scheme, no `//host`), else the console's root."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path[:2000]


class FlowSeal:
    """Signs a `Flow` into a cookie value and back, refusing a forged, altered or expired one."""

    def __init__(self, key: bytes, *, clock: Callable[[], float] = time.time) -> None:
        self._key = key
        self._clock = clock

    @classmethod
    def for_settings(cls, settings: OidcSettings) -> FlowSeal:
        secret = settings.client_secret.get_secret_value().encode() if settings.client_secret else None
        key = hashlib.sha256(b"opsbus-oidc-flow\0" + secret).digest() if secret else secrets.token_bytes(32)
        return cls(key)

    def _mac(self, body: bytes) -> str:
        return base64.urlsafe_b64encode(hmac.new(self._key, body, hashlib.sha256).digest()).decode().rstrip("=")

    def seal(self, flow: Flow) -> str:
        doc = {
            "s": flow.state,
            "n": flow.nonce,
            "v": flow.verifier,
            "x": flow.next,
            "e": int(self._clock()) + FLOW_SECONDS,
        }
        body = base64.urlsafe_b64encode(json.dumps(doc, separators=(",", ":")).encode()).decode().rstrip("=")
        return f"{body}.{self._mac(body.encode())}"

    def open(self, value: str | None) -> Flow:
        if not value or len(value) > 4000 or "." not in value:
            raise FlowError("no sign-in in progress in this browser (missing flow cookie)")
        body, mac = value.rsplit(".", 1)
        if not hmac.compare_digest(mac.encode(), self._mac(body.encode()).encode()):
            raise FlowError("the sign-in's flow cookie is not this gateway's")
        try:
            doc: dict[str, Any] = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            flow = Flow(state=str(doc["s"]), nonce=str(doc["n"]), verifier=str(doc["v"]), next=safe_next(doc["x"]))
            expires = int(doc["e"])
        except (ValueError, KeyError, TypeError) as exc:
            raise FlowError("the sign-in's flow cookie is malformed") from exc
        if expires < self._clock():
            raise FlowError("the sign-in took too long: start again")
        return flow


class OidcClient:
    """The provider's endpoints (from its discovery document, cached) and the two legs of the code flow."""

    def __init__(self, settings: OidcSettings, http: httpx.AsyncClient) -> None:
        self.settings = settings
        self.seal = FlowSeal.for_settings(settings)
        self._http = http
        self._discovery: dict[str, Any] | None = None

    async def _endpoints(self) -> dict[str, Any]:
        if self._discovery is None:
            url = f"{(self.settings.issuer or '').rstrip('/')}/.well-known/openid-configuration"
            try:
                response = await self._http.get(url, timeout=5.0)
                response.raise_for_status()
                doc = response.json()
            except (httpx.HTTPError, ValueError) as exc:
                raise ProviderUnavailable("the identity provider's discovery document is unavailable") from exc
            if not isinstance(doc, dict) or "authorization_endpoint" not in doc or "token_endpoint" not in doc:
                raise ProviderUnavailable("the identity provider's discovery document names no endpoints")
            self._discovery = doc
        return self._discovery

    def _client_auth(self) -> dict[str, str]:
        """`client_secret_basic` (RFC 6749 2.3.1: each part form-encoded), or nothing for a public client."""
        s = self.settings
        if s.client_secret is None:
            return {}
        pair = f"{quote(s.client_id or '', safe='')}:{quote(s.client_secret.get_secret_value(), safe='')}"
        return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}

    async def start(self, redirect_uri: str, next_path: str | None) -> tuple[str, Flow]:
        """The provider's authorization URL and the flow to seal in the browser's cookie."""
        endpoints = await self._endpoints()
        flow = Flow(
            state=secrets.token_urlsafe(32),
            nonce=secrets.token_urlsafe(32),
            verifier=secrets.token_urlsafe(64),
            next=safe_next(next_path),
        )
        extra = {"acr_values": self.settings.acr_values} if self.settings.acr_values else {}
        url = prepare_grant_uri(
            endpoints["authorization_endpoint"],
            self.settings.client_id,
            "code",
            redirect_uri=redirect_uri,
            scope=" ".join(self.settings.scopes),
            state=flow.state,
            nonce=flow.nonce,
            code_challenge=create_s256_code_challenge(flow.verifier),
            code_challenge_method="S256",
            **extra,
        )
        return str(url), flow

    async def finish(self, redirect_uri: str, flow: Flow, code: str) -> str:
        """The ID token the provider issues for `code` (PKCE verifier sent, client authenticated)."""
        endpoints = await self._endpoints()
        public = {"client_id": self.settings.client_id} if self.settings.client_secret is None else {}
        body = prepare_token_request(
            "authorization_code", redirect_uri=redirect_uri, code=code, code_verifier=flow.verifier, **public
        )
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
        try:
            response = await self._http.post(
                endpoints["token_endpoint"], content=body, headers=headers | self._client_auth(), timeout=10.0
            )
            token = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ProviderUnavailable("the identity provider's token endpoint is unavailable") from exc
        if not isinstance(token, dict):
            raise ProviderUnavailable("the identity provider's token endpoint answered nonsense")
        if response.status_code != 200:
            error = str(token.get("error", response.status_code))[:100]
            raise FlowError(f"the identity provider refused the code: {error}")
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise FlowError("the identity provider returned no ID token (is `openid` among the scopes?)")
        return id_token
