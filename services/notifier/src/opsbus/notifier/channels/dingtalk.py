"""DingTalk (钉钉) custom robot: markdown or ActionCard messages to a group.

API: `POST https://oapi.dingtalk.com/robot/send?access_token=...` with a JSON body
(https://open.dingtalk.com/document/orgapp/custom-robot-access). With a signing secret (security setting
"加签"), each request carries `timestamp` (ms) and `sign` = base64(HMAC-SHA256(secret, "<timestamp>\\n<secret>"))
in the query string; DingTalk refuses a timestamp more than an hour off. Answers are HTTP 200 with
`{"errcode": 0, "errmsg": "ok"}`; a robot may send 20 messages a minute (errcode 130101 "send too fast" is
retried after a minute), -1 means "system busy" (retried); anything else (a wrong token 300001, a signature,
keyword or IP refusal 310000, a bad body 40035) is final.

ActionCard messages carry buttons to the incident and the trace; DingTalk cannot @ people from an ActionCard, so
a robot configured to @ members sends markdown.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any
from urllib.parse import quote_plus

import httpx

from opsbus.notifier.channels.base import HttpChannel, Outcome, provider_code
from opsbus.notifier.channels.chat import first_links, fit_bytes, markdown_lines
from opsbus.notifier.domain.grouping import Notification
from opsbus.notifier.domain.integrations import DingTalkConfig
from opsbus.notifier.rendering import Links, Rendered, Renderer

TEXT_LIMIT = 18_000  # bytes; DingTalk documents 20,000 for a message
RATE_LIMITED = {130101: 60.0}
BUSY = (-1,)


def signature(secret: str, timestamp_ms: int) -> str:
    """DingTalk's `sign` query parameter (URL-encoded)."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest))


def signed(url: str, secret: str, now_ms: int | None = None) -> str:
    stamp = int(time.time() * 1000) if now_ms is None else now_ms
    return f"{url}{'&' if '?' in url else '?'}timestamp={stamp}&sign={signature(secret, stamp)}"


def body(
    n: Notification, rendered: Rendered, links: Links, config: DingTalkConfig, words: dict[str, str]
) -> dict[str, Any]:
    """The robot message: an ActionCard with links when configured and possible, else markdown with @-mentions."""
    text = f"#### {rendered.title}\n\n{markdown_lines(rendered.text)}"
    incident, trace = first_links(n, links)
    mentions = config.at_mobiles or config.at_user_ids or config.at_all
    if config.message_type == "action_card" and (incident or trace) and not mentions:
        buttons = [
            {"title": words[k], "actionURL": url} for k, url in (("incident", incident), ("trace", trace)) if url
        ]
        return {
            "msgtype": "actionCard",
            "actionCard": {
                "title": rendered.title,
                "text": fit_bytes(text, TEXT_LIMIT),
                "btnOrientation": "1",
                "btns": buttons,
            },
        }
    # DingTalk highlights a mention only when the text names it
    tags = " ".join([*(f"@{m}" for m in config.at_mobiles), *(f"@{u}" for u in config.at_user_ids)])
    return {
        "msgtype": "markdown",
        "markdown": {"title": rendered.title, "text": fit_bytes(text, TEXT_LIMIT) + (f"\n\n{tags}" if tags else "")},
        "at": {"atMobiles": config.at_mobiles, "atUserIds": config.at_user_ids, "isAtAll": config.at_all},
    }


def judge(response: httpx.Response) -> Outcome:
    return provider_code(response, code_key="errcode", message_key="errmsg", rate_limited=RATE_LIMITED, busy=BUSY)


def channel(config: DingTalkConfig, renderer: Renderer, client: httpx.AsyncClient) -> HttpChannel:
    secret = config.secret.get_secret_value() if config.secret else None

    def build(n: Notification) -> dict[str, Any]:
        return body(n, renderer.render(n, fence=""), renderer.links, config, renderer.words)

    return HttpChannel(
        "dingtalk",
        client,
        config.url.get_secret_value(),
        build,
        redact=[secret] if secret else [],
        sign_url=(lambda url: signed(url, secret)) if secret else None,
        judge=judge,
    )
