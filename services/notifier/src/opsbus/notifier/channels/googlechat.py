"""Google Chat incoming webhook: a text message in Chat's own formatting (`*bold*`, `<url|label>` links).

`POST https://chat.googleapis.com/v1/spaces/<space>/messages?key=...&token=...`
(https://developers.google.com/workspace/chat/quickstart/webhooks). 200 is accepted; 429 and 5xx retried; other
4xx final. The URL's key and token are secrets. A message's text is at most 4,096 characters.
"""

from __future__ import annotations

from typing import Any

import httpx

from opsbus.notifier.channels.base import HttpChannel
from opsbus.notifier.channels.chat import first_links
from opsbus.notifier.domain.grouping import Notification
from opsbus.notifier.domain.integrations import GoogleChatConfig
from opsbus.notifier.rendering import Links, Rendered, Renderer

TEXT_LIMIT = 4096


def body(n: Notification, rendered: Rendered, links: Links, words: dict[str, str]) -> dict[str, Any]:
    incident, trace = first_links(n, links)
    tail = " · ".join(f"<{url}|{words[k]}>" for k, url in (("incident", incident), ("trace", trace)) if url)
    head = f"*{rendered.title}*\n"
    room = TEXT_LIMIT - len(head) - len(tail) - 3
    text = rendered.text if len(rendered.text) <= room else rendered.text[: room - 2] + "\n…"
    return {"text": f"{head}{text}\n{tail}".strip()}


def channel(config: GoogleChatConfig, renderer: Renderer, client: httpx.AsyncClient) -> HttpChannel:
    def build(n: Notification) -> dict[str, Any]:
        return body(n, renderer.render(n), renderer.links, renderer.words)

    return HttpChannel("googlechat", client, config.url.get_secret_value(), build)
