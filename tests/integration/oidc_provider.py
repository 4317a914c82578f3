"""A real OIDC provider for SSO tests: tests/browser/oidc/server.mjs (the certified `oidc-provider` from npm,
installed by `make setup`) as a subprocess listening on 127.0.0.1, with one confidential client and test users.

One helper for every tier that signs in with SSO: `sso_gateway` (the gateway stack of the integration and browser
tiers, configured for the provider) and `oidc_provider` + `gateway_oidc_env` (the e2e platform's gateway process).
`host` names the provider in its issuer URL: `localhost` puts it on another site than a gateway at 127.0.0.1, as
an identity provider is in production, so the callback is a cross-site top-level navigation.
"""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.integration.gateway_stack import GatewayStack, gateway_stack

SERVER = Path(__file__).resolve().parents[1] / "browser" / "oidc" / "server.mjs"
CLIENT_ID = "opsbus-console"
CLIENT_SECRET = "test-client-secret-0123456789abcdef"
USERS: dict[str, dict[str, Any]] = {
    "alice": {
        "email": "alice@example.com",
        "opsbus_role": "operator",
        "opsbus_namespaces": ["payments"],
        "opsbus_clusters": ["*"],
    },
    "norole": {"email": "norole@example.com"},
}
CALLBACK = "/v1/session/oidc/callback"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def installed() -> bool:
    return (SERVER.parent / "node_modules" / "oidc-provider").is_dir()


@contextmanager
def oidc_provider(
    redirect_uri: str, *, host: str = "127.0.0.1", users: Mapping[str, Mapping[str, Any]] = USERS
) -> Iterator[str]:
    """Start the provider with `redirect_uri` registered for the test client; yields its issuer URL."""
    if not installed():
        pytest.skip("the test OIDC provider is not installed: run make setup")
    port = free_port()
    config = {
        "port": port,
        "host": host,
        "clients": [{"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uris": [redirect_uri]}],
        "users": users,
    }
    proc = subprocess.Popen(
        ["node", str(SERVER), json.dumps(config)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("ready "), f"the OIDC provider did not start: {line!r}"
        yield line.split()[1]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


def gateway_oidc(issuer: str) -> dict[str, Any]:
    """The gateway's `oidc` settings for this provider (the role and scope from the ID token's opsbus_* claims)."""
    return {
        "issuer": issuer,
        "jwks_url": f"{issuer}/jwks",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "scopes": ["openid", "email", "opsbus"],
        "algorithms": ["RS256"],
        "role_claim": "opsbus_role",
        "namespaces_claim": "opsbus_namespaces",
        "clusters_claim": "opsbus_clusters",
    }


def gateway_oidc_env(issuer: str) -> dict[str, str]:
    """The same settings as the gateway process's `OPSBUS_GATEWAY__OIDC__*` environment."""
    return {
        f"OPSBUS_GATEWAY__OIDC__{key.upper()}": value if isinstance(value, str) else json.dumps(value)
        for key, value in gateway_oidc(issuer).items()
    }


async def sso_gateway(
    database_url: str, nats_url: str, *, provider_host: str = "127.0.0.1"
) -> AsyncIterator[tuple[GatewayStack, str]]:
    """The real gateway (insecure loopback cookie: plain http) signing in through a fresh provider; and its issuer."""
    port = free_port()  # the redirect URI registered at the provider names the gateway's port
    with oidc_provider(f"http://127.0.0.1:{port}{CALLBACK}", host=provider_host) as issuer:
        async for stack in gateway_stack(database_url, nats_url):
            await stack.start(port=port, oidc=gateway_oidc(issuer), console={"insecure_loopback_cookie": True})
            yield stack, issuer
