"""Channels: send one rendered notification to one integration and say what happened, as data.

Every channel returns an `Outcome` (never raises for a delivery failure) that the executor turns into a
delivery-log row, a retry or a dead letter: 2xx is delivered; 429, 408, 5xx, timeouts and connection errors
are retryable (with the channel's Retry-After); other 4xx are final. Errors are described without the URL,
which is a secret for Slack, Teams and most webhooks: never log or publish `integration.url`.
"""

from __future__ import annotations

import json
import logging
import ssl
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import aiosmtplib
import httpx

from opsbus.notifier.domain.config import (
    EmailConfig,
    MsTeamsConfig,
    PagerDutyConfig,
    ReceiverConfig,
    SlackConfig,
    WebhookConfig,
)
from opsbus.notifier.domain.delivery import SIGNATURE_HEADER, TIMESTAMP_HEADER, parse_retry_after, sign
from opsbus.notifier.domain.grouping import Notification
from opsbus.notifier.rendering import (
    Links,
    Renderer,
    email_message,
    pagerduty_body,
    slack_body,
    teams_body,
    webhook_body,
)

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class Outcome:
    delivered: bool
    status_code: int | None = None
    retryable: bool = False
    retry_after: float | None = None
    error: str | None = None


class Channel(Protocol):
    kind: str

    async def send(self, notification: Notification) -> Outcome: ...


def secret_parts(url: str, extra: Iterable[str] = ()) -> tuple[str, ...]:
    """What must never appear in an error: the URL, its path and query, every token-like path segment (the secret
    of a Slack or Teams URL), and `extra` (a routing key, a signing key), longest first so none is left in part."""
    parts = urlsplit(url)
    found = {url, parts.path, parts.query, unquote(parts.path), *extra}
    found.update(segment for segment in parts.path.split("/") if len(segment) >= 8)
    return tuple(sorted((p for p in found if p and p != "/"), key=len, reverse=True))


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "<redacted>")
    return text


def _http_outcome(response: httpx.Response, secrets: Iterable[str] = ()) -> Outcome:
    if 200 <= response.status_code < 300:
        return Outcome(True, response.status_code)
    retry_after = parse_retry_after(response.headers.get("Retry-After"), time.time())
    retryable = response.status_code in RETRYABLE_STATUS or response.status_code >= 500
    # a receiver may quote the request (a 404 page with the path, a 400 with the body): redact, then truncate
    text = redact(response.text, secrets)[:200].replace("\n", " ")
    return Outcome(False, response.status_code, retryable, retry_after, f"HTTP {response.status_code}: {text}")


class HttpChannel:
    """POSTs a JSON body built by `build` to a URL that is a secret."""

    def __init__(
        self,
        kind: str,
        client: httpx.AsyncClient,
        url: str,
        build: Any,
        *,
        headers: Mapping[str, str] | None = None,
        secret: bytes | None = None,
        redact: Iterable[str] = (),
    ) -> None:
        self.kind = kind
        self._client = client
        self._url = url
        self._build = build
        self._headers = dict(headers or {})
        self._secret = secret
        self._secrets = secret_parts(url, [*redact, *([secret.decode(errors="replace")] if secret else [])])

    async def send(self, notification: Notification) -> Outcome:
        body = json.dumps(self._build(notification), separators=(",", ":"), default=str).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "opsbus-notifier",
            "X-Opsbus-Notification-Id": notification.id,
            **self._headers,
        }
        if self._secret is not None:
            stamp = int(time.time())
            headers[TIMESTAMP_HEADER] = str(stamp)
            headers[SIGNATURE_HEADER] = sign(self._secret, stamp, body)
        try:
            response = await self._client.post(self._url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            return Outcome(False, None, True, None, f"timeout ({type(exc).__name__})")
        except httpx.HTTPError as exc:  # the message may quote the URL: keep only the type
            return Outcome(False, None, True, None, f"connection failed ({type(exc).__name__})")
        return _http_outcome(response, self._secrets)


class EmailChannel:
    kind = "email"

    def __init__(self, config: EmailConfig, renderer: Renderer, timeout: float) -> None:
        self._config = config
        self._renderer = renderer
        self._timeout = timeout
        self._tls: ssl.SSLContext | None = None
        if config.ca_file:
            self._tls = tls_context_from(config.ca_file)

    async def send(self, notification: Notification) -> Outcome:
        cfg = self._config
        host, _, port = cfg.smarthost.rpartition(":")
        message = email_message(
            notification, self._renderer.render(notification, fence=""), sender=cfg.sender, to=cfg.to
        )
        try:
            await aiosmtplib.send(
                message,
                hostname=host,
                port=int(port),
                start_tls=True if cfg.require_tls else None,
                validate_certs=not cfg.tls_insecure_skip_verify,
                tls_context=self._tls,
                username=cfg.auth_username,
                password=cfg.auth_password.get_secret_value() if cfg.auth_password else None,
                timeout=self._timeout,
            )
        except aiosmtplib.SMTPResponseException as exc:
            retryable = 400 <= exc.code < 500
            return Outcome(False, None, retryable, None, f"SMTP {exc.code}: {exc.message[:200]}")
        except (aiosmtplib.SMTPException, OSError) as exc:
            return Outcome(False, None, True, None, f"SMTP failed ({type(exc).__name__}: {str(exc)[:200]})")
        return Outcome(True, None)


class ChannelConfigError(ValueError):
    """An integration cannot be built from its configuration (a file it names is missing or invalid)."""


def tls_context_from(ca_file: str) -> ssl.SSLContext:
    """A verifying TLS client context trusting only the CAs in `ca_file` (PEM); `ChannelConfigError` naming the
    file and what is wrong with it (missing, unreadable, not PEM certificates)."""
    try:
        return ssl.create_default_context(cafile=ca_file)
    except FileNotFoundError:
        raise ChannelConfigError(f"email ca_file {ca_file}: no such file") from None
    except PermissionError:
        raise ChannelConfigError(f"email ca_file {ca_file}: not readable by the notifier") from None
    except ssl.SSLError as exc:
        raise ChannelConfigError(f"email ca_file {ca_file}: not a PEM CA certificate ({exc.reason})") from None
    except OSError as exc:
        raise ChannelConfigError(f"email ca_file {ca_file}: {exc.strerror}") from None


def http_client(timeout: float) -> httpx.AsyncClient:
    """The client every HTTP channel shares: no redirects (a signed body must not be carried elsewhere), and quiet:
    httpx logs each request's URL at INFO and here a URL is a secret, so httpx and httpcore log warnings only."""
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return httpx.AsyncClient(timeout=timeout, follow_redirects=False)


def build_channels(
    receiver: ReceiverConfig, renderer: Renderer, client: httpx.AsyncClient, *, timeout: float = 10.0
) -> dict[str, Channel]:
    """`<kind>/<index>` -> channel, for every integration of `receiver` (rendered with its own templates)."""
    renderer = renderer.for_receiver(receiver.templates)
    links: Links = renderer.links
    out: dict[str, Channel] = {}
    for kind, index, config in receiver.integrations():
        name = f"{kind}/{index}"
        if isinstance(config, WebhookConfig):
            secret = config.secret.get_secret_value().encode() if config.secret else None

            def build_webhook(n: Notification) -> dict[str, Any]:
                return webhook_body(n, renderer.render(n), links)

            out[name] = HttpChannel(
                kind, client, config.url.get_secret_value(), build_webhook, headers=config.headers, secret=secret
            )
        elif isinstance(config, SlackConfig):
            cfg_s = config

            def build_slack(n: Notification, cfg_s: SlackConfig = cfg_s) -> dict[str, Any]:
                return slack_body(n, renderer.render(n), links, channel=cfg_s.channel, username=cfg_s.username)

            out[name] = HttpChannel(kind, client, config.url.get_secret_value(), build_slack)
        elif isinstance(config, MsTeamsConfig):

            def build_teams(n: Notification) -> dict[str, Any]:
                return teams_body(n, renderer.render(n), links)

            out[name] = HttpChannel(kind, client, config.url.get_secret_value(), build_teams)
        elif isinstance(config, PagerDutyConfig):
            cfg_p = config

            def build_pd(n: Notification, cfg_p: PagerDutyConfig = cfg_p) -> dict[str, Any]:
                return pagerduty_body(
                    n,
                    renderer.render(n),
                    links,
                    routing_key=cfg_p.routing_key.get_secret_value(),
                    severity=cfg_p.severity,
                )

            out[name] = HttpChannel(
                kind, client, config.url.get_secret_value(), build_pd, redact=[config.routing_key.get_secret_value()]
            )
        elif isinstance(config, EmailConfig):
            out[name] = EmailChannel(config, renderer, timeout)
    return out
