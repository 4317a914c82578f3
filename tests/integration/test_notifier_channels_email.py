"""The notifier's email channel against a real local SMTP server on 127.0.0.1: what a mail relay sees.

The channel is the production one, built from receiver configuration by `build_channels` exactly as the service
builds it, and sent a `Notification` made from the catalogue's example alert. The relay is aiosmtpd with STARTTLS,
with a self-signed certificate or one signed by a private CA, both generated here. Nothing is mocked: what is
asserted is the message the relay accepted (and over which connection), and the `Outcome` the executor acts on,
including that no error text carries the password. The HTTP channels are in test_notifier_channels_http.py.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email
import email.policy
import ipaddress
import ssl
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from opsbus.common.testing.servers import free_port
from opsbus.notifier.channels import ChannelConfigError, Outcome
from opsbus.notifier.domain.config import ReceiverConfig
from tests.integration.notifier_channel_harness import (
    EVIDENCE,
    GATEWAY,
    SMTP_PASSWORD,
    assert_clean,
    channel_for,
    http_client,
    notification,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async for c in http_client():
        yield c


# --- email: aiosmtpd with STARTTLS ------------------------------------------------------------------
@dataclass
class Mailbox:
    """aiosmtpd handler: keeps every message with whether it came over TLS. Runs on the controller's thread."""

    messages: list[tuple[Envelope, bool]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        with self.lock:
            self.messages.append((envelope, session.ssl is not None))
        return "250 Message accepted for delivery"

    def parsed(self) -> list[tuple[EmailMessage, Envelope, bool]]:
        out = []
        with self.lock:
            for envelope, tls in self.messages:
                assert isinstance(envelope.content, bytes)
                message = email.message_from_bytes(envelope.content, policy=email.policy.default)
                assert isinstance(message, EmailMessage)
                out.append((message, envelope, tls))
        return out


@pytest.fixture(scope="module")
def tls_context(tmp_path_factory: pytest.TempPathFactory) -> ssl.SSLContext:
    """A self-signed certificate for 127.0.0.1, made here."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "opsbus-test-smtp")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )
    directory: Path = tmp_path_factory.mktemp("smtp-tls")
    (directory / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(directory / "cert.pem", directory / "key.pem")
    return context


def _authenticate(server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"opsbus", SMTP_PASSWORD.encode())
    # handled=False makes aiosmtpd answer 535 itself; its default leaves the client waiting for a reply
    return AuthResult(success=ok, handled=False)


@contextlib.contextmanager
def smtp_server(mailbox: Mailbox, **options: Any) -> Iterator[int]:
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, **options)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def _email(port: int, **extra: Any) -> dict[str, Any]:
    return {
        "email_configs": [
            {
                "to": ["oncall@example.com", "sre@example.com"],
                "from": "opsbus@example.com",
                "smarthost": f"127.0.0.1:{port}",
                **extra,
            }
        ]
    }


async def test_email_over_starttls_with_auth_carries_reason_and_evidence(
    tls_context: ssl.SSLContext, client: httpx.AsyncClient
) -> None:
    mailbox = Mailbox()
    with smtp_server(
        mailbox, tls_context=tls_context, require_starttls=True, authenticator=_authenticate, auth_required=True
    ) as port:
        channel = channel_for(
            client,
            _email(
                port, tls_insecure_skip_verify=True, auth_username="opsbus", auth_password=SMTP_PASSWORD
            ),  # self-signed
        )
        n = notification()
        outcome = await channel.send(n)
    assert outcome == Outcome(True, None), outcome.error

    [(message, envelope, tls)] = mailbox.parsed()
    assert tls  # the message went over the STARTTLS-upgraded connection
    assert envelope.mail_from == "opsbus@example.com"
    assert envelope.rcpt_tos == ["oncall@example.com", "sre@example.com"]
    assert message["From"] == "opsbus@example.com"
    assert message["To"] == "oncall@example.com, sre@example.com"
    assert message["Subject"].startswith("[FIRING:1] KubePodCrashLooping")
    assert message["X-Opsbus-Notification-Id"] == n.id
    body = message.get_content()
    assert "Reason: CrashLoopBackOff" in body
    assert "severity critical" in body
    for line in EVIDENCE:
        assert line in body
    assert f"{GATEWAY}/v1/incidents/{n.alerts[0].correlationid}" in body


async def test_email_refused_starttls_fails_clearly_and_sends_nothing_in_clear(
    tls_context: ssl.SSLContext, client: httpx.AsyncClient
) -> None:
    mailbox = Mailbox()
    with smtp_server(mailbox) as port:  # no tls_context: the server does not offer STARTTLS
        outcome = await channel_for(
            client, _email(port, tls_insecure_skip_verify=True, auth_username="opsbus", auth_password=SMTP_PASSWORD)
        ).send(notification())
    assert not outcome.delivered
    assert outcome.error is not None and "STARTTLS" in outcome.error.upper(), outcome.error
    assert_clean(outcome, "smtp://127.0.0.1")
    assert mailbox.parsed() == []


async def test_email_self_signed_certificate_is_refused_when_verification_is_on(
    tls_context: ssl.SSLContext, client: httpx.AsyncClient
) -> None:
    mailbox = Mailbox()
    with smtp_server(mailbox, tls_context=tls_context, require_starttls=True) as port:
        outcome = await channel_for(client, _email(port)).send(notification())
    assert not outcome.delivered
    assert outcome.error is not None and "CERTIFICATE_VERIFY_FAILED" in outcome.error, outcome.error
    assert mailbox.parsed() == []


async def test_email_wrong_password_is_final_and_does_not_quote_it(
    tls_context: ssl.SSLContext, client: httpx.AsyncClient
) -> None:
    mailbox = Mailbox()
    with smtp_server(
        mailbox, tls_context=tls_context, require_starttls=True, authenticator=_authenticate, auth_required=True
    ) as port:
        outcome = await channel_for(
            client,
            _email(port, tls_insecure_skip_verify=True, auth_username="opsbus", auth_password=SMTP_PASSWORD + "x"),
        ).send(notification())
    assert not outcome.delivered and not outcome.retryable  # 535: retrying will not fix a wrong password
    assert outcome.error is not None and outcome.error.startswith("SMTP 535"), outcome.error
    assert_clean(outcome, "smtp://127.0.0.1")
    assert mailbox.parsed() == []


# --- email to a private relay: its certificate signed by a private CA given as ca_file --------------------
@dataclass(frozen=True)
class PrivateCa:
    ca_file: Path
    other_ca_file: Path
    server: ssl.SSLContext


def _certificate(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_name, issuer_key = issuer or (name, key)
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
    )
    if issuer is None:  # a CA
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True).add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
    else:  # the relay, for 127.0.0.1
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def private_ca(tmp_path_factory: pytest.TempPathFactory) -> PrivateCa:
    """A private CA, a relay certificate it signed, and an unrelated CA, all made here."""
    directory: Path = tmp_path_factory.mktemp("smtp-private-ca")
    pem = serialization.Encoding.PEM
    ca_key, other_key, relay_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca = _certificate("opsbus-test-private-ca", ca_key, None)
    other = _certificate("opsbus-test-other-ca", other_key, None)
    relay = _certificate("opsbus-test-relay", relay_key, (ca.subject, ca_key))
    (directory / "ca.pem").write_bytes(ca.public_bytes(pem))
    (directory / "other-ca.pem").write_bytes(other.public_bytes(pem))
    (directory / "relay.pem").write_bytes(relay.public_bytes(pem) + ca.public_bytes(pem))
    (directory / "relay.key").write_bytes(
        relay_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(directory / "relay.pem", directory / "relay.key")
    return PrivateCa(directory / "ca.pem", directory / "other-ca.pem", server)


async def test_email_to_a_private_relay_verifies_its_certificate_with_ca_file(
    private_ca: PrivateCa, client: httpx.AsyncClient
) -> None:
    mailbox = Mailbox()
    with smtp_server(
        mailbox,
        tls_context=private_ca.server,
        require_starttls=True,
        authenticator=_authenticate,
        auth_required=True,
    ) as port:
        trusting = _email(port, ca_file=str(private_ca.ca_file), auth_username="opsbus", auth_password=SMTP_PASSWORD)
        delivered = await channel_for(client, trusting).send(notification())
        # the same relay, verified against the system roots or an unrelated CA: refused, nothing sent
        system_roots = await channel_for(client, _email(port)).send(notification())
        wrong_ca = await channel_for(client, _email(port, ca_file=str(private_ca.other_ca_file))).send(notification())
    assert delivered == Outcome(True, None), delivered.error
    [(message, _, tls)] = mailbox.parsed()
    assert tls and message["Subject"].startswith("[FIRING:1] KubePodCrashLooping")
    for refused in (system_roots, wrong_ca):
        assert not refused.delivered
        assert refused.error is not None and "CERTIFICATE_VERIFY_FAILED" in refused.error, refused.error


def test_a_missing_or_invalid_ca_file_is_a_clear_configuration_error(tmp_path: Path, client: httpx.AsyncClient) -> None:
    not_pem = tmp_path / "not-a-ca.pem"
    not_pem.write_text("hello\n")
    for path, expected in (
        (tmp_path / "missing.pem", "no such file"),
        (not_pem, "not a PEM CA certificate"),
    ):
        with pytest.raises(ChannelConfigError) as caught:
            channel_for(client, _email(25, ca_file=str(path)))
        assert str(caught.value).startswith(f"email ca_file {path}: {expected}"), caught.value
    with pytest.raises(ValueError, match="cannot go with tls_insecure_skip_verify"):
        ReceiverConfig.model_validate(
            {"name": "team", **_email(25, ca_file=str(not_pem), tls_insecure_skip_verify=True)}
        )
