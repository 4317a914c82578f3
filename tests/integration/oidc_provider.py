"""A real OIDC provider for SSO tests: tests/browser/oidc/server.mjs (the certified `oidc-provider` from npm,
installed by `make setup`) as a subprocess on 127.0.0.1, with one confidential client and test users."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

SERVER = Path(__file__).resolve().parents[1] / "browser" / "oidc" / "server.mjs"
CLIENT_ID = "opsbus-console"
CLIENT_SECRET = "test-client-secret-0123456789abcdef"
USERS = {
    "alice": {"email": "alice@example.com", "opsbus_role": "operator", "opsbus_namespaces": ["payments"]},
    "norole": {"email": "norole@example.com"},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def oidc_provider(redirect_uri: str) -> Iterator[str]:
    """Start the provider with `redirect_uri` registered for the test client; yields its issuer URL."""
    if not (SERVER.parent / "node_modules" / "oidc-provider").is_dir():
        pytest.skip("the test OIDC provider is not installed: run make setup")
    port = free_port()
    config = {
        "port": port,
        "clients": [{"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uris": [redirect_uri]}],
        "users": USERS,
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


def gateway_oidc(issuer: str) -> dict[str, object]:
    """The gateway's `oidc` settings for this provider."""
    return {
        "issuer": issuer,
        "jwks_url": f"{issuer}/jwks",
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "scopes": ["openid", "email", "opsbus"],
        "algorithms": ["RS256"],
    }
