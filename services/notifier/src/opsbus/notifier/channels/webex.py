"""Webex: a bot posts markdown to a room (`POST {url}/v1/messages` with `roomId` and `markdown`,
`Authorization: Bearer <bot token>`; https://developer.webex.com/docs/api/v1/messages/create-a-message).
200 is accepted; 429 carries Retry-After, retried; 5xx retried; other 4xx final (401 a bad token, 404 a room the
bot is not in). A message is at most 7,439 bytes."""

from __future__ import annotations

from typing import Any

import httpx

from opsbus.notifier.channels.base import HttpChannel
from opsbus.notifier.channels.chat import first_links, fit_bytes
from opsbus.notifier.domain.grouping import Notification
from opsbus.notifier.domain.integrations import WebexConfig
from opsbus.notifier.rendering import Links, Rendered, Renderer

MARKDOWN_LIMIT = 7000  # bytes, below Webex's 7,439 for the links


def body(n: Notification, rendered: Rendered, links: Links, room_id: str, words: dict[str, str]) -> dict[str, Any]:
    incident, trace = first_links(n, links)
    tail = " · ".join(f"[{words[k]}]({url})" for k, url in (("incident", incident), ("trace", trace)) if url)
    text = fit_bytes(f"**{rendered.title}**\n\n{rendered.text}", MARKDOWN_LIMIT)
    return {"roomId": room_id, "markdown": f"{text}\n\n{tail}".strip()}


def channel(config: WebexConfig, renderer: Renderer, client: httpx.AsyncClient) -> HttpChannel:
    token = config.bot_token.get_secret_value()

    def build(n: Notification) -> dict[str, Any]:
        return body(n, renderer.render(n), renderer.links, config.room_id, renderer.words)

    url = f"{config.url.rstrip('/')}/v1/messages"
    return HttpChannel("webex", client, url, build, headers={"Authorization": f"Bearer {token}"}, redact=[token])
