"""Telegram Bot API `sendMessage` to a chat, as HTML (the only markup whose escaping is simple and complete).

`POST {url}/bot<token>/sendMessage` with `chat_id`, `text` (at most 4,096 characters), `parse_mode: HTML`
(https://core.telegram.org/bots/api#sendmessage). Answers `{"ok": true, ...}`; a flood wait is HTTP 429 with
`parameters.retry_after` (seconds) in the body, retried after it; 5xx retried; other errors final (400 "chat not
found", 401 a bad token, 403 the bot was removed from the chat). The token is in the URL path: never logged.
"""

from __future__ import annotations

import html
import json
from typing import Any

import httpx

from opsbus.notifier.channels.base import Outcome, judged, post, secret_parts
from opsbus.notifier.channels.chat import first_links
from opsbus.notifier.domain.grouping import Notification
from opsbus.notifier.domain.integrations import TelegramConfig
from opsbus.notifier.rendering import Links, Rendered, Renderer

TEXT_LIMIT = 4096


def body(n: Notification, rendered: Rendered, links: Links, chat_id: str, words: dict[str, str]) -> dict[str, Any]:
    incident, trace = first_links(n, links)
    tail = " · ".join(
        f'<a href="{html.escape(url)}">{html.escape(words[k])}</a>'
        for k, url in (("incident", incident), ("trace", trace))
        if url
    )
    head = f"<b>{html.escape(rendered.title)}</b>\n"
    room = TEXT_LIMIT - len(head) - len(tail) - 2
    text = html.escape(rendered.text)
    if len(text) > room:
        text = html.escape(rendered.text[: room - 40]) + "\n…"
    return {
        "chat_id": chat_id,
        "text": f"{head}{text}\n{tail}".strip(),
        "parse_mode": "HTML",
        "disable_web_page_preview": True,
    }


def judge(response: httpx.Response) -> Outcome:
    answer = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
    if isinstance(answer, dict) and answer.get("ok") is True:
        return Outcome(True, response.status_code)
    return Outcome(False, response.status_code, False, None, f"not ok: {str(answer)[:200]}")


class TelegramChannel:
    kind = "telegram"

    def __init__(self, config: TelegramConfig, renderer: Renderer, client: httpx.AsyncClient) -> None:
        token = config.bot_token.get_secret_value()
        self._url = f"{config.url.rstrip('/')}/bot{token}/sendMessage"
        self._config = config
        self._renderer = renderer
        self._client = client
        self._secrets = secret_parts(self._url, [token])

    async def send(self, notification: Notification) -> Outcome:
        r = self._renderer
        payload = body(notification, r.render(notification, fence=""), r.links, self._config.chat_id, r.words)
        content = json.dumps(payload, separators=(",", ":")).encode()
        response = await post(self._client, self._url, content=content, headers={"Content-Type": "application/json"})
        if isinstance(response, Outcome):
            return response
        outcome = judged(response, self._secrets, judge)
        if response.status_code == 429 and outcome.retry_after is None:
            try:
                wait = float(response.json()["parameters"]["retry_after"])
            except (ValueError, KeyError, TypeError):
                return outcome
            return Outcome(False, 429, True, wait, outcome.error)
        return outcome
