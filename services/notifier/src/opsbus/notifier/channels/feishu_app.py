"""Feishu/Lark (飞书) app bot: interactive cards sent through the open platform's message API, with Approve and
Reject buttons on a step waiting for approval. Feishu posts a card's clicks to the app's callback URL, never to
a custom bot, so the two-way approval needs this path (the gateway's `/v1/integrations/feishu/card-actions`
receives the clicks).

API (https://open.feishu.cn/document/server-docs/im-v1/message/create):
- `POST {api_url}/open-apis/auth/v3/tenant_access_token/internal` with `{"app_id", "app_secret"}` answers
  `{"code": 0, "tenant_access_token": "t-...", "expire": <seconds>}`. A token lives two hours; the endpoint hands
  out a new one once less than 30 minutes are left, so the token is cached and fetched again past that point
  (and at once when the API says it is invalid: codes 99991661, 99991663, 99991668).
- `POST {api_url}/open-apis/im/v1/messages?receive_id_type=chat_id` with `Authorization: Bearer <token>` and
  `{"receive_id": <chat_id>, "msg_type": "interactive", "content": <the card as a JSON string>, "uuid": ...}`;
  the `uuid` makes a retry of the same notification within an hour one message.
- Answers carry `code`/`msg`, on HTTP 200 and on 4xx alike. Rate limits: code 99991400 (HTTP 429, with
  `x-ogw-ratelimit-reset` seconds) and 230020 "frequency limit" are retried after that window (1 s when none
  is given); HTTP 5xx and timeouts are retried; any other code (230001 bad request, 230002 the bot is not in
  the chat, 230006 bot ability off, 99991672 no permission, a refused app secret) is final.

The app secret and the token are never logged nor put in an error: errors are redacted as in `channels.base`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from opsbus.common.api.chat import ACTION_APPROVE, ACTION_REJECT, step_value
from opsbus.notifier.channels import feishu
from opsbus.notifier.channels.base import Outcome, http_outcome, post, redact
from opsbus.notifier.domain.delivery import parse_retry_after
from opsbus.notifier.domain.grouping import Notification
from opsbus.notifier.domain.integrations import FeishuConfig
from opsbus.notifier.domain.notices import ApprovalAsk
from opsbus.notifier.rendering import Renderer

TOKEN_PATH = "/open-apis/auth/v3/tenant_access_token/internal"  # noqa: S105 - a path, not a secret
MESSAGES_PATH = "/open-apis/im/v1/messages"
RENEW_BEFORE = 1800.0  # Feishu hands out a new token once less than 30 minutes are left
TOKEN_INVALID = frozenset({99991661, 99991663, 99991668})
RATE_LIMITED = frozenset({99991400, 230020})
BUSY = frozenset({1, 99991401, 230050})  # internal errors and "server busy"
DECISION_WORDS = {
    "en": {"approve": "Approve", "reject": "Reject", "confirm": "Approve this step?", "until": "until"},
    "zh-CN": {"approve": "批准", "reject": "拒绝", "confirm": "批准此步骤？", "until": "截止"},  # noqa: RUF001 - Chinese punctuation
}


def decision_buttons(ask: ApprovalAsk, language: str) -> dict[str, Any]:
    """An `action` element with Approve and Reject: buttons with a `value` (and no URL), so Feishu posts the
    click to the app's callback; the value names the step as `opsbus.common.api.chat` says."""
    words = DECISION_WORDS.get(language, DECISION_WORDS["en"])
    step = step_value(ask.recovery_id, ask.step)
    until = ask.expires_at.strftime("%Y-%m-%d %H:%M UTC")
    confirm = {
        "title": {"tag": "plain_text", "content": words["confirm"]},
        "text": {"tag": "plain_text", "content": f"{ask.recovery_id} #{ask.step}"},
    }
    return {
        "tag": "action",
        "actions": [
            {
                "tag": "button",
                "text": {"tag": "plain_text", "content": f"{words['approve']} ({words['until']} {until})"},
                "type": "primary",
                "value": {"action": ACTION_APPROVE, "step": step},
                "confirm": confirm,
            },
            {
                "tag": "button",
                "text": {"tag": "plain_text", "content": words["reject"]},
                "type": "danger",
                "value": {"action": ACTION_REJECT, "step": step},
            },
        ],
    }


def card(n: Notification, renderer: Renderer) -> dict[str, Any]:
    """The custom bot's card (header, markdown, links) plus Approve/Reject on each step waiting for a person."""
    out = feishu.card(n, renderer.render(n, fence="```"), renderer.links, renderer.words)
    out["config"]["update_multi"] = True  # a shared card: the decision the gateway answers with shows to everyone
    asks = [a.approval for a in n.alerts if a.approval is not None and a.status == "firing"]
    out["elements"].extend(decision_buttons(ask, renderer.language) for ask in asks[:5])
    return out


def message(n: Notification, renderer: Renderer, chat_id: str) -> dict[str, Any]:
    """The body of `im/v1/messages`; `uuid` (at most 50 characters) is the same for every attempt of `n`."""
    return {
        "receive_id": chat_id,
        "msg_type": "interactive",
        "content": json.dumps(card(n, renderer), ensure_ascii=False, separators=(",", ":")),
        "uuid": hashlib.sha256(n.id.encode()).hexdigest()[:32],
    }


def _code(response: httpx.Response) -> tuple[int, str] | None:
    try:
        answer = response.json()
    except ValueError:
        return None
    if not isinstance(answer, dict) or not isinstance(answer.get("code"), int):
        return None
    return answer["code"], str(answer.get("msg") or "")[:200]


def judge(response: httpx.Response, secrets: tuple[str, ...]) -> Outcome:
    """The outcome of an open-platform answer: by its `code` when it has one (on 2xx and 4xx alike), else by
    its HTTP status."""
    found = _code(response)
    if found is None:
        outcome = http_outcome(response, secrets)
        if outcome.delivered:  # a 2xx that is not the API's JSON
            return Outcome(False, response.status_code, False, None, "answer has no code: not Feishu's API?")
        return outcome
    code, text = found
    if code == 0:
        return Outcome(True, response.status_code)
    error = redact(f"code {code}: {text}", secrets)
    if code in RATE_LIMITED or response.status_code == 429:
        now = time.time()
        reset = response.headers.get("x-ogw-ratelimit-reset")
        after = parse_retry_after(response.headers.get("Retry-After") or reset, now)
        return Outcome(False, response.status_code, True, 1.0 if after is None else after, error)
    retryable = code in BUSY or code in TOKEN_INVALID or response.status_code >= 500
    return Outcome(False, response.status_code, retryable, None, error)


@dataclass
class _Token:
    value: str
    renew_at: float


class TenantToken:
    """The app's `tenant_access_token`, fetched once and shared by every send until it is due for renewal (or
    the API refuses it); one fetch at a time. `clock` is monotonic seconds (injected in tests)."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        url: str,
        app_id: str,
        app_secret: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._url = url
        self._credentials = {"app_id": app_id, "app_secret": app_secret}
        self._clock = clock
        self._token: _Token | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0

    @property
    def secrets(self) -> tuple[str, ...]:
        current = (self._token.value,) if self._token else ()
        return (self._credentials["app_secret"], *current)

    def forget(self, value: str) -> None:
        if self._token is not None and self._token.value == value:
            self._token = None

    async def get(self) -> str | Outcome:
        """The token, or the outcome that says why none could be had (the send fails with it)."""
        async with self._lock:
            now = self._clock()
            if self._token is not None and now < self._token.renew_at:
                return self._token.value
            self.fetches += 1
            body = json.dumps(self._credentials).encode()
            headers = {"Content-Type": "application/json; charset=utf-8"}
            response = await post(self._client, self._url, content=body, headers=headers)
            if isinstance(response, Outcome):
                return response
            outcome = judge(response, self.secrets)
            if not outcome.delivered:
                return Outcome(
                    False,
                    outcome.status_code,
                    outcome.retryable,
                    outcome.retry_after,
                    f"tenant_access_token: {outcome.error}",
                )
            answer = response.json()
            token, expire = answer.get("tenant_access_token"), answer.get("expire")
            if not isinstance(token, str) or not token or not isinstance(expire, int) or expire <= 0:
                return Outcome(False, response.status_code, False, None, "tenant_access_token: answer has no token")
            # renew once Feishu would hand out a new one (under 30 minutes left), or half-way for short lives
            self._token = _Token(token, now + max(expire - RENEW_BEFORE, expire / 2))
            return token


class FeishuAppChannel:
    kind = "feishu"

    def __init__(
        self,
        config: FeishuConfig,
        renderer: Renderer,
        client: httpx.AsyncClient,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # the config's validator guarantees all three
        assert config.app_id is not None
        assert config.app_secret is not None
        assert config.chat_id is not None
        base = config.api_url.rstrip("/")
        self._chat_id = config.chat_id
        self._renderer = renderer
        self._client = client
        self._url = f"{base}{MESSAGES_PATH}?receive_id_type=chat_id"
        self.token = TenantToken(client, base + TOKEN_PATH, config.app_id, config.app_secret.get_secret_value(), clock)

    async def send(self, notification: Notification) -> Outcome:
        body = json.dumps(message(notification, self._renderer, self._chat_id), separators=(",", ":")).encode()
        outcome = Outcome(False, None, True, None, "not sent")
        for _ in range(2):  # a token the API no longer takes is forgotten and fetched again, once
            token = await self.token.get()
            if isinstance(token, Outcome):
                return token
            headers = {
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json; charset=utf-8",
                "User-Agent": "opsbus-notifier",
            }
            response = await post(self._client, self._url, content=body, headers=headers)
            if isinstance(response, Outcome):
                return response
            outcome = judge(response, self.token.secrets)
            found = _code(response)
            if found is None or found[0] not in TOKEN_INVALID:
                return outcome
            self.token.forget(token)
        return outcome


def channel(config: FeishuConfig, renderer: Renderer, client: httpx.AsyncClient) -> FeishuAppChannel:
    return FeishuAppChannel(config, renderer, client)
