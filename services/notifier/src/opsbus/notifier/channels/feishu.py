"""Feishu/Lark (飞书) custom bot: interactive cards with buttons to the incident and the trace.

API: `POST https://open.feishu.cn/open-apis/bot/v2/hook/<token>` (Lark: open.larksuite.com) with a JSON body
(https://open.feishu.cn/document/client-docs/bot-v3/add-custom-bot). With signature verification ("签名校验")
on, the body carries `timestamp` (seconds) and `sign` = base64(HMAC-SHA256 keyed by "<timestamp>\\n<secret>" over
an empty message); Feishu refuses a timestamp more than an hour off. Answers are `{"code": 0, "msg": "success"}`
(older deployments: `StatusCode`); a bot may send 5 messages a second and 100 a minute (code 11232 "frequency
limited" is retried after a second, HTTP 429 after its Retry-After), anything else (a signature mismatch 19021,
a keyword 19024 or IP 19022 refusal, a bad request 9499) is final.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

import httpx

from opsbus.notifier.channels.base import HttpChannel, Outcome, provider_code
from opsbus.notifier.channels.chat import first_links, fit_bytes
from opsbus.notifier.domain.grouping import Notification
from opsbus.notifier.domain.integrations import FeishuConfig
from opsbus.notifier.rendering import Links, Rendered, Renderer

TEXT_LIMIT = 18_000  # bytes of the card's markdown; a request may be 20 KB
RATE_LIMITED = {11232: 1.0}


def signature(secret: str, timestamp: int) -> str:
    return base64.b64encode(hmac.new(f"{timestamp}\n{secret}".encode(), b"", hashlib.sha256).digest()).decode()


def card(n: Notification, rendered: Rendered, links: Links, words: dict[str, str]) -> dict[str, Any]:
    incident, trace = first_links(n, links)
    buttons = [
        {"tag": "button", "text": {"tag": "plain_text", "content": words[k]}, "type": kind, "url": url}
        for k, url, kind in (("incident", incident, "primary"), ("trace", trace, "default"))
        if url
    ]
    elements: list[dict[str, Any]] = [{"tag": "markdown", "content": fit_bytes(rendered.text, TEXT_LIMIT)}]
    if buttons:
        elements.append({"tag": "action", "actions": buttons})
    return {
        "config": {"wide_screen_mode": True},
        "header": {
            "title": {"tag": "plain_text", "content": rendered.title},
            "template": "red" if n.status == "firing" else "green",
        },
        "elements": elements,
    }


def body(
    n: Notification,
    rendered: Rendered,
    links: Links,
    words: dict[str, str],
    *,
    secret: str | None,
    now: int | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {"msg_type": "interactive", "card": card(n, rendered, links, words)}
    if secret:
        stamp = int(time.time()) if now is None else now
        out = {"timestamp": str(stamp), "sign": signature(secret, stamp), **out}
    return out


def judge(response: httpx.Response) -> Outcome:
    try:
        answer = response.json()
    except ValueError:
        answer = None
    key, message = (
        ("StatusCode", "StatusMessage") if isinstance(answer, dict) and "code" not in answer else ("code", "msg")
    )
    return provider_code(response, code_key=key, message_key=message, rate_limited=RATE_LIMITED)


def channel(config: FeishuConfig, renderer: Renderer, client: httpx.AsyncClient) -> HttpChannel:
    assert config.url is not None  # an app bot (no URL) is `feishu_app`'s
    secret = config.secret.get_secret_value() if config.secret else None

    def build(n: Notification) -> dict[str, Any]:
        return body(n, renderer.render(n, fence="```"), renderer.links, renderer.words, secret=secret)

    return HttpChannel(
        "feishu", client, config.url.get_secret_value(), build, redact=[secret] if secret else [], judge=judge
    )
