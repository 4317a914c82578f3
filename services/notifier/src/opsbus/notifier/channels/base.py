"""The channel contract: what every channel returns (`Outcome`), the `Channel` protocol, and the HTTP channel
most providers are: a JSON body POSTed to a URL that is itself a secret.

HTTP status first: 2xx is delivered; 429, 408, 5xx, timeouts and connection errors are retryable (with the
provider's Retry-After); other 4xx are final. Many chat providers (DingTalk, WeCom, Feishu, Telegram) answer
200 with an error code in the body: a channel passes `judge`, which reads that code and says whether it is a
success, a rate limit (retryable, with the provider's documented window) or final. Errors never carry the URL
or a secret: they are redacted, then truncated.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import httpx

from opsbus.notifier.domain.delivery import SIGNATURE_HEADER, TIMESTAMP_HEADER, parse_retry_after, sign
from opsbus.notifier.domain.grouping import Notification

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class Outcome:
    delivered: bool
    status_code: int | None = None
    retryable: bool = False
    retry_after: float | None = None
    error: str | None = None


class Channel(Protocol):
    """One integration of a receiver: sends a notification, says what happened."""

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


def http_outcome(response: httpx.Response, secrets: Iterable[str] = ()) -> Outcome:
    if 200 <= response.status_code < 300:
        return Outcome(True, response.status_code)
    retry_after = parse_retry_after(response.headers.get("Retry-After"), time.time())
    retryable = response.status_code in RETRYABLE_STATUS or response.status_code >= 500
    # a receiver may quote the request (a 404 page with the path, a 400 with the body): redact, then truncate
    text = redact(response.text, secrets)[:200].replace("\n", " ")
    return Outcome(False, response.status_code, retryable, retry_after, f"HTTP {response.status_code}: {text}")


Judge = Callable[[httpx.Response], Outcome]


class HttpChannel:
    """POSTs a JSON body built by `build` to a URL that is a secret (or to the URL `sign_url` makes of it per
    request, for providers that sign in the query string); `judge` reads a 2xx answer's body when the provider
    reports errors there."""

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
        sign_url: Callable[[str], str] | None = None,
        judge: Judge | None = None,
    ) -> None:
        self.kind = kind
        self._client = client
        self._url = url
        self._build = build
        self._headers = dict(headers or {})
        self._secret = secret
        self._sign_url = sign_url
        self._judge = judge
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
        url = self._sign_url(self._url) if self._sign_url else self._url
        response = await post(self._client, url, content=body, headers=headers)
        if isinstance(response, Outcome):
            return response
        return judged(response, self._secrets, self._judge)


def judged(response: httpx.Response, secrets: Iterable[str], judge: Judge | None) -> Outcome:
    """The outcome of an answer: its HTTP status, then (for a 2xx) what `judge` reads in its body."""
    outcome = http_outcome(response, secrets)
    if outcome.delivered and judge is not None:
        verdict = judge(response)
        if not verdict.delivered and verdict.error:
            error = redact(verdict.error, secrets)[:300]
            verdict = Outcome(False, verdict.status_code, verdict.retryable, verdict.retry_after, error)
        return verdict
    return outcome


async def post(client: httpx.AsyncClient, url: str, **request: Any) -> httpx.Response | Outcome:
    """POST, or the retryable outcome of a timeout or a connection failure (described without the URL)."""
    try:
        return await client.post(url, **request)
    except httpx.TimeoutException as exc:
        return Outcome(False, None, True, None, f"timeout ({type(exc).__name__})")
    except httpx.HTTPError as exc:  # the message may quote the URL: keep only the type
        return Outcome(False, None, True, None, f"connection failed ({type(exc).__name__})")


def provider_code(
    response: httpx.Response,
    *,
    code_key: str,
    message_key: str,
    ok: Iterable[int] = (0,),
    rate_limited: Mapping[int, float] = {},
    busy: Iterable[int] = (),
) -> Outcome:
    """The outcome of a 2xx answer that carries the provider's own error code (`{"errcode": 0, "errmsg": "ok"}`):
    `ok` codes are delivered; `rate_limited` codes are retryable after the provider's documented window (seconds)
    unless it sent Retry-After; `busy` codes (the provider's "system busy, try again") retryable; any other code is
    final, with the provider's message."""
    try:
        body = response.json()
    except ValueError:
        return Outcome(False, response.status_code, False, None, "answer is not JSON: not the provider's API?")
    if not isinstance(body, dict) or not isinstance(body.get(code_key), int):
        return Outcome(False, response.status_code, False, None, f"answer has no {code_key}: not the provider's API?")
    code: int = body[code_key]
    if code in set(ok):
        return Outcome(True, response.status_code)
    message = str(body.get(message_key) or "")[:200]
    error = f"{code_key} {code}: {message}"
    if code in rate_limited:
        after = parse_retry_after(response.headers.get("Retry-After"), time.time())
        after = rate_limited[code] if after is None else after
        return Outcome(False, response.status_code, True, after, error)
    return Outcome(False, response.status_code, code in set(busy), None, error)


def http_client(timeout: float) -> httpx.AsyncClient:
    """The client every HTTP channel shares: no redirects (a signed body must not be carried elsewhere), and quiet:
    httpx logs each request's URL at INFO and here a URL is a secret, so httpx and httpcore log warnings only."""
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return httpx.AsyncClient(timeout=timeout, follow_redirects=False)
