"""The demo's Jaeger (the real binary built by tools/install.d/10-jaeger.sh) starts again on fresh ports when one of
the ports chosen for it was taken before it could bind it (another process's connection took it meanwhile)."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from opsbus.common.testing.servers import free_port
from opsbus.demo.jaeger import Jaeger, jaeger_binary

pytestmark = pytest.mark.integration


def test_jaeger_moves_to_fresh_ports_when_one_was_taken(tmp_path: Path) -> None:
    try:
        jaeger_binary()
    except FileNotFoundError as exc:
        pytest.fail(f"{exc} (make test builds it through tools/install-deps.sh)")
    squatter = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = int(squatter.getsockname()[1])
    jaeger = Jaeger(
        workdir=tmp_path / "jaeger",
        otlp_port=free_port(),
        query_port=taken,
        query_grpc_port=free_port(),
        health_port=free_port(),
    )
    try:
        jaeger.start()
        assert jaeger.query_port != taken
        assert httpx.get(f"{jaeger.query_url}/api/services", timeout=5.0).status_code == 200
        assert "address already in use" in jaeger.log_path.read_text(errors="replace")
    finally:
        jaeger.stop()
        squatter.close()
