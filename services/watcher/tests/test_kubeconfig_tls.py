"""The kubeconfig's `tls-server-name` against a real TLS server whose certificate does not name the URL's host.

The compose scenario reaches the sandbox apiserver through a relay at an IP its certificate does not list; a
kubeconfig says so with `tls-server-name`. Here a local HTTPS server on 127.0.0.1 presents a certificate for
`kube.test` only (signed by a CA of the test's own): the watcher's client must connect when the kubeconfig names
`kube.test`, send it as SNI, and still refuse the certificate when it does not. The official client (healer,
deployer, analyzer) is checked against the same server.
"""

from __future__ import annotations

import asyncio
import datetime
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from opsbus.watcher.watching import KubeClient

SERVER_NAME = "kube.test"
BODY = b'{"kind":"APIVersions","versions":["v1"],"serverAddressByClientCIDRs":[]}'


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_pki(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for SERVER_NAME only (no IP address): (ca.pem, server.pem, server-key.pem)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("opsbus test CA"))
        .issuer_name(_name("opsbus test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(SERVER_NAME))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(SERVER_NAME)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = (directory / "ca.pem", directory / "server.pem", directory / "server-key.pem")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


@dataclass
class Apiserver:
    """What the stand-in apiserver saw: the SNI names of TLS handshakes and the request lines it answered."""

    port: int = 0
    server_names: list[str | None] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)


@pytest.fixture
async def apiserver(tmp_path: Path) -> AsyncIterator[tuple[Apiserver, Path]]:
    ca, cert, key = _write_pki(tmp_path)
    seen = Apiserver()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda _sock, name, _ctx: seen.server_names.append(name)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        seen.requests.append(head.split(b"\r\n", 1)[0].decode())
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
            + f"Content-Length: {len(BODY)}\r\n\r\n".encode()
            + BODY
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=context)
    seen.port = server.sockets[0].getsockname()[1]
    try:
        yield seen, ca
    finally:
        server.close()
        await server.wait_closed()


def _kubeconfig(directory: Path, port: int, ca: Path, server_name: str | None) -> str:
    cluster: dict[str, str] = {"server": f"https://127.0.0.1:{port}", "certificate-authority": str(ca)}
    if server_name:
        cluster["tls-server-name"] = server_name
    path = directory / f"kubeconfig-{server_name or 'plain'}"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": cluster}],
                "users": [{"name": "u", "user": {"token": "t0ken"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    return str(path)


async def test_watcher_client_checks_the_certificate_against_tls_server_name(
    apiserver: tuple[Apiserver, Path], tmp_path: Path
) -> None:
    seen, ca = apiserver
    kube = KubeClient.from_config(_kubeconfig(tmp_path, seen.port, ca, SERVER_NAME))
    try:
        assert (await kube.get("/api"))["versions"] == ["v1"]
        async with kube.watch("/api/v1/pods", {"watch": "1"}, read_timeout=5.0) as response:
            assert response.status_code == 200
    finally:
        await kube.close()
    assert seen.server_names == [SERVER_NAME, SERVER_NAME]
    assert seen.requests == ["GET /api HTTP/1.1", "GET /api/v1/pods?watch=1 HTTP/1.1"]


async def test_watcher_client_without_tls_server_name_refuses_the_certificate(
    apiserver: tuple[Apiserver, Path], tmp_path: Path
) -> None:
    seen, ca = apiserver
    kube = KubeClient.from_config(_kubeconfig(tmp_path, seen.port, ca, None))
    try:
        with pytest.raises(httpx.ConnectError, match="IP address mismatch"):
            await kube.get("/api")
    finally:
        await kube.close()
    assert seen.requests == []


async def test_official_client_of_the_other_services_honours_tls_server_name(
    apiserver: tuple[Apiserver, Path], tmp_path: Path
) -> None:
    """Healer, deployer and analyzer talk through the official client, which passes it to urllib3 itself."""
    seen, ca = apiserver
    api = k8s_config.new_client_from_config(config_file=_kubeconfig(tmp_path, seen.port, ca, SERVER_NAME))  # type: ignore[no-untyped-call]
    try:
        versions = await asyncio.to_thread(k8s_client.CoreApi(api).get_api_versions)
    finally:
        api.close()
    assert versions.versions == ["v1"]
    assert seen.server_names == [SERVER_NAME]
