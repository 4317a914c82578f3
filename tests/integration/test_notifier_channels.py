"""Every notifier channel against a real local receiver on 127.0.0.1: the wire format a user's server sees.

The channels are the production ones, built from receiver configuration by `build_channels` exactly as the
service builds them, and sent a `Notification` made from the catalogue's example alert. The receivers are real
servers: Starlette on uvicorn standing in for Slack, Teams and PagerDuty; `asyncio.start_server` for a server
that never answers; aiosmtpd with STARTTLS and a self-signed certificate generated here for email. Nothing is
mocked: what is asserted is what went over the socket, and the `Outcome` the executor acts on (delivered,
retryable with Retry-After, final), including that no error text ever carries a webhook URL or a secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import email
import email.policy
import ipaddress
import json
import ssl
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from opsbus.common.events.examples import example_events
from opsbus.common.events.payloads import AlertFired, AlertResolved
from opsbus.common.testing.servers import free_port
from opsbus.notifier.channels import Channel, ChannelConfigError, Outcome, build_channels
from opsbus.notifier.domain.config import ReceiverConfig
from opsbus.notifier.domain.grouping import Notification, notification_id
from opsbus.notifier.domain.notices import Notice, notice_from
from opsbus.notifier.rendering import Links, Renderer

pytestmark = pytest.mark.integration

GATEWAY = "https://opsbus.example.com"
SLACK_PATH = "/services/T0001/B0002/slackTOKENsecret42"
TEAMS_PATH = "/webhookb2/aaaa-bbbb/IncomingWebhook/teamsTOKENsecret42/cccc"
PD_PATH = "/v2/enqueue"
PD_KEY = "R0UTINGKEYsecret0123456789abcdef"
SMTP_PASSWORD = "smtp-Passw0rd-secret"
EVIDENCE = [
    "[app previous] INFO starting checkout 1.42.0",
    "[app previous] ERROR config: STRIPE_API_BASE is not set",
    "[app previous] FATAL exiting with status 1",
]


# --- the notification -------------------------------------------------------------------------------
def _notice(event_type: str) -> Notice:
    notice = notice_from(example_events()[event_type])
    assert notice is not None
    return notice


def notification(status: str = "firing", seq: int = 1) -> Notification:
    notice = _notice(AlertFired.event_type if status == "firing" else AlertResolved.event_type)
    key = '0:{alertname="KubePodCrashLooping",namespace="payments"}'
    common = {k: v for k, v in notice.labels.items() if k != "event_type"}
    return Notification(
        id=notification_id(key, "e0", seq),
        group_key=key,
        epoch="e0",
        seq=seq,
        receiver="team",
        status=status,
        group_labels={"alertname": "KubePodCrashLooping", "namespace": "payments"},
        common_labels=common,
        alerts=(notice,),
        repeat=False,
    )


def renderer() -> Renderer:
    return Renderer(Links(gateway_url=GATEWAY, jaeger_url="https://jaeger.example.com"))


def channel_for(client: httpx.AsyncClient, receiver: dict[str, Any], *, timeout: float = 5.0) -> Channel:
    """The one channel of `receiver`, built as the service builds it."""
    [channel] = build_channels(
        ReceiverConfig.model_validate({"name": "team", **receiver}), renderer(), client, timeout=timeout
    ).values()
    return channel


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as c:
        yield c


# --- a real HTTP receiver: Starlette on uvicorn -----------------------------------------------------
@dataclass
class Hit:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Answer:
    status: int = 200
    body: str = "ok"
    headers: dict[str, str] = field(default_factory=dict)
    echo_path: bool = False  # answer "Cannot POST <path>", as Express and many proxies do
    echo_body: bool = False  # answer with the request body quoted, as some APIs do in validation errors


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class HttpReceiver:
    port: int
    hits: list[Hit] = field(default_factory=list)
    script: list[Answer] = field(default_factory=list)
    default: Answer = field(default_factory=Answer)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def endpoint(self, request: Request) -> Response:
        body = await request.body()
        self.hits.append(Hit(request.method, request.url.path, dict(request.headers), body))
        answer = self.script.pop(0) if self.script else self.default
        text = answer.body
        if answer.echo_path:
            text = f"Cannot POST {request.url.path}"
        if answer.echo_body:
            text = f"invalid event: {body.decode()}"
        return Response(text, status_code=answer.status, headers=answer.headers, media_type="text/plain")


@pytest.fixture
async def http_receiver() -> AsyncIterator[HttpReceiver]:
    receiver = HttpReceiver(port=free_port())
    app = Starlette(routes=[Route("/{path:path}", receiver.endpoint, methods=["POST"])])
    config = uvicorn.Config(
        app, host="127.0.0.1", port=receiver.port, log_config=None, access_log=False, lifespan="off", ws="none"
    )
    server = _QuietServer(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            await task
            raise RuntimeError("receiver did not start")
        await asyncio.sleep(0.01)
    yield receiver
    server.should_exit = True
    await task


# --- Slack ------------------------------------------------------------------------------------------
def _slack(receiver: HttpReceiver) -> dict[str, Any]:
    return {"slack_configs": [{"url": receiver.url(SLACK_PATH), "channel": "#oncall", "username": "opsbus"}]}


async def test_slack_block_kit_carries_alert_severity_reason_and_evidence(
    http_receiver: HttpReceiver, client: httpx.AsyncClient
) -> None:
    channel = channel_for(client, _slack(http_receiver))
    n = notification()
    outcome = await channel.send(n)

    assert outcome == Outcome(True, 200)
    [hit] = http_receiver.hits
    assert (hit.method, hit.path) == ("POST", SLACK_PATH)
    assert hit.headers["content-type"] == "application/json"
    body = hit.json()
    assert body["channel"] == "#oncall" and body["username"] == "opsbus"
    assert "KubePodCrashLooping" in body["text"]  # the notification fallback text
    blocks = body["blocks"]
    header, section = blocks[0], blocks[1]
    assert header["type"] == "header" and header["text"]["type"] == "plain_text"
    assert header["text"]["text"].startswith("[FIRING:1] KubePodCrashLooping")
    assert len(header["text"]["text"]) <= 150  # Slack rejects longer header text
    assert section["type"] == "section" and section["text"]["type"] == "mrkdwn"
    text = section["text"]["text"]
    assert len(text) <= 3000
    assert "is crash looping" in text
    assert "*Severity:* critical" in text
    assert "*Reason:* CrashLoopBackOff" in text
    for line in EVIDENCE:
        assert line in text
    assert "```" in text  # the evidence is a code block
    [actions] = [b for b in blocks if b["type"] == "actions"]
    urls = {e["text"]["text"]: e["url"] for e in actions["elements"]}
    assert urls["Incident"] == f"{GATEWAY}/v1/incidents/{n.alerts[0].correlationid}"
    assert urls["Runbook"] == "https://runbooks.example.com/KubePodCrashLooping"
    assert all(e["type"] == "button" for e in actions["elements"])


async def test_slack_429_is_retryable_after_the_delay_slack_asked(
    http_receiver: HttpReceiver, client: httpx.AsyncClient
) -> None:
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=120)
    http_receiver.script = [
        Answer(429, "rate_limited", {"Retry-After": "7"}),
        Answer(429, "rate_limited", {"Retry-After": later.strftime("%a, %d %b %Y %H:%M:%S GMT")}),
        Answer(503, "service unavailable"),
        Answer(404, "no_service"),
        Answer(403, "invalid_token"),
    ]
    channel = channel_for(client, _slack(http_receiver))
    n = notification()

    seconds = await channel.send(n)
    assert (seconds.delivered, seconds.status_code, seconds.retryable, seconds.retry_after) == (False, 429, True, 7.0)
    assert seconds.error is not None and seconds.error.startswith("HTTP 429")

    date = await channel.send(n)
    assert date.retryable and date.retry_after is not None and 110.0 <= date.retry_after <= 120.0

    unavailable = await channel.send(n)
    assert (unavailable.retryable, unavailable.retry_after) == (True, None)
    # a removed webhook or a revoked token will not get better: final, not retried
    for final in (await channel.send(n), await channel.send(n)):
        assert not final.delivered and not final.retryable
    assert len(http_receiver.hits) == 5


# --- Microsoft Teams --------------------------------------------------------------------------------
async def test_teams_sends_an_adaptive_card_in_a_message(
    http_receiver: HttpReceiver, client: httpx.AsyncClient
) -> None:
    http_receiver.default = Answer(202, "")  # Workflows answer 202 Accepted
    channel = channel_for(client, {"msteams_configs": [{"url": http_receiver.url(TEAMS_PATH)}]})
    n = notification()
    assert await channel.send(n) == Outcome(True, 202)

    [hit] = http_receiver.hits
    assert hit.path == TEAMS_PATH and hit.headers["content-type"] == "application/json"
    body = hit.json()
    assert body["type"] == "message"
    [attachment] = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["$schema"].startswith("http://adaptivecards.io/")
    assert card["version"] == "1.4"
    title, facts, text = card["body"]
    assert title["type"] == "TextBlock" and title["text"].startswith("[FIRING:1] KubePodCrashLooping")
    assert facts["type"] == "FactSet"
    assert {"title": "severity", "value": "critical"} in facts["facts"]
    assert text["type"] == "TextBlock" and text["wrap"] is True
    assert "Reason: CrashLoopBackOff" in text["text"]
    for line in EVIDENCE:
        assert line in text["text"]
    assert {
        "type": "Action.OpenUrl",
        "title": "Incident",
        "url": f"{GATEWAY}/v1/incidents/{n.alerts[0].correlationid}",
    } in card["actions"]


# --- PagerDuty --------------------------------------------------------------------------------------
async def test_pagerduty_trigger_then_resolve_with_one_dedup_key(
    http_receiver: HttpReceiver, client: httpx.AsyncClient
) -> None:
    http_receiver.default = Answer(202, '{"status":"success","message":"Event processed"}')
    channel = channel_for(client, {"pagerduty_configs": [{"routing_key": PD_KEY, "url": http_receiver.url(PD_PATH)}]})
    assert await channel.send(notification("firing", seq=1)) == Outcome(True, 202)
    assert await channel.send(notification("resolved", seq=2)) == Outcome(True, 202)

    trigger, resolve = (hit.json() for hit in http_receiver.hits)
    assert all(hit.path == PD_PATH for hit in http_receiver.hits)
    assert trigger["routing_key"] == resolve["routing_key"] == PD_KEY
    assert (trigger["event_action"], resolve["event_action"]) == ("trigger", "resolve")
    assert trigger["dedup_key"] == resolve["dedup_key"] != ""
    assert len(trigger["dedup_key"]) <= 255
    payload = trigger["payload"]
    assert payload["summary"].startswith("[FIRING:1] KubePodCrashLooping")
    assert len(payload["summary"]) <= 1024
    assert payload["severity"] == "critical"
    assert payload["source"] == "prod"
    assert payload["component"] == "checkout" and payload["group"] == "payments"
    assert payload["class"] == "KubePodCrashLooping"
    assert "STRIPE_API_BASE is not set" in payload["custom_details"]["text"]
    assert {"href": f"{GATEWAY}/v1/incidents/{notification().alerts[0].correlationid}", "text": "Incident"} in trigger[
        "links"
    ]
    assert "payload" not in resolve  # a resolve carries only the key and the action


async def test_pagerduty_severity_override_and_errors(http_receiver: HttpReceiver, client: httpx.AsyncClient) -> None:
    http_receiver.script = [
        Answer(202, "{}"),
        Answer(400, '{"status":"invalid event"}'),
        Answer(429, "", {"Retry-After": "3"}),
    ]
    channel = channel_for(
        client,
        {"pagerduty_configs": [{"routing_key": PD_KEY, "url": http_receiver.url(PD_PATH), "severity": "warning"}]},
    )
    n = notification()
    assert (await channel.send(n)).delivered
    assert http_receiver.hits[0].json()["payload"]["severity"] == "warning"
    invalid = await channel.send(n)
    assert (invalid.delivered, invalid.retryable, invalid.status_code) == (False, False, 400)
    throttled = await channel.send(n)
    assert (throttled.retryable, throttled.retry_after) == (True, 3.0)


# --- no secret in any error -------------------------------------------------------------------------
def _secrets(url: str) -> list[str]:
    return [url, SLACK_PATH, TEAMS_PATH, "slackTOKENsecret42", "teamsTOKENsecret42", PD_KEY, SMTP_PASSWORD]


def _assert_clean(outcome: Outcome, url: str) -> None:
    assert not outcome.delivered
    assert outcome.error
    for secret in _secrets(url):
        assert secret not in outcome.error, (secret, outcome.error)


@pytest.mark.parametrize("kind", ["slack", "msteams", "pagerduty", "webhook"])
async def test_no_error_message_carries_the_url_or_a_secret(
    kind: str, http_receiver: HttpReceiver, client: httpx.AsyncClient
) -> None:
    path = {"slack": SLACK_PATH, "msteams": TEAMS_PATH, "pagerduty": PD_PATH, "webhook": SLACK_PATH}[kind]

    def configure(url: str) -> dict[str, Any]:
        if kind == "pagerduty":
            return {"pagerduty_configs": [{"routing_key": PD_KEY, "url": url}]}
        if kind == "webhook":
            return {"webhook_configs": [{"url": url, "secret": PD_KEY}]}
        return {f"{kind}_configs": [{"url": url}]}

    url = http_receiver.url(path)
    channel = channel_for(client, configure(url))
    # a 404 page quoting the path (the secret part of a Slack or Teams URL), a 400 quoting the body (the routing key)
    http_receiver.script = [Answer(404, echo_path=True), Answer(400, echo_body=True)]
    for _ in range(2):
        outcome = await channel.send(notification())
        assert outcome.status_code in (404, 400)
        _assert_clean(outcome, url)

    # nothing listening on that port: connection refused
    closed = f"http://127.0.0.1:{free_port()}{path}"
    refused = await channel_for(client, configure(closed)).send(notification())
    assert refused.retryable
    _assert_clean(refused, closed)

    # a server that accepts and never answers: timeout, retryable
    release = asyncio.Event()
    handlers: list[asyncio.Task[Any]] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.extend(t for t in [asyncio.current_task()] if t is not None)
        await reader.read(65536)
        await release.wait()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    hanging = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}{path}"
    async with httpx.AsyncClient(timeout=0.3) as quick:
        timed_out = await channel_for(quick, configure(hanging)).send(notification())
    release.set()
    server.close()
    await server.wait_closed()
    await asyncio.gather(*handlers)
    assert handlers  # the request did reach the server
    assert timed_out.retryable and timed_out.error is not None and timed_out.error.startswith("timeout")
    _assert_clean(timed_out, hanging)


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
    _assert_clean(outcome, "smtp://127.0.0.1")
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
    _assert_clean(outcome, "smtp://127.0.0.1")
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


# --- a receiver's own templates ---------------------------------------------------------------------------
async def test_a_receivers_templates_shape_what_slack_and_the_webhook_receive(
    http_receiver: HttpReceiver, client: httpx.AsyncClient
) -> None:
    templates = {"title": "{{ n.common_labels.namespace }} on fire", "text": "{{ n.alerts[0].reason }} {{ fence }}"}
    hook = {"url": http_receiver.url("/hook")}
    channels = build_channels(
        ReceiverConfig.model_validate(
            {"name": "team", "templates": templates, "slack_configs": [hook], "webhook_configs": [hook]}
        ),
        renderer(),
        client,
    )
    for channel in (channels["slack/0"], channels["webhook/0"]):
        assert (await channel.send(notification())).delivered
    slack_hit, webhook_hit = (h.json() for h in http_receiver.hits)
    assert slack_hit["text"] == "payments on fire"
    assert slack_hit["blocks"][0]["text"]["text"] == "payments on fire"
    assert (webhook_hit["title"], webhook_hit["text"]) == ("payments on fire", "CrashLoopBackOff ```")
    assert webhook_hit["alerts"][0]["evidence"]["logLines"][-3:] == EVIDENCE  # the data is all still there
