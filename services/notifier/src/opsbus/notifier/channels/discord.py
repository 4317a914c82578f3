"""Discord channel webhook: one embed per notification (red firing, green resolved), mentions disabled.

`POST https://discord.com/api/webhooks/<id>/<token>` (https://discord.com/developers/docs/resources/webhook).
204 is accepted; 429 carries Retry-After (and `retry_after` in the body), retried; 5xx retried; other 4xx final
(404 a deleted webhook, 400 a bad body). An embed's title is at most 256 characters, its description 4,096.
"""

from __future__ import annotations

from typing import Any

import httpx

from opsbus.notifier.channels.base import HttpChannel
from opsbus.notifier.channels.chat import first_links
from opsbus.notifier.domain.grouping import Notification
from opsbus.notifier.domain.integrations import DiscordConfig
from opsbus.notifier.rendering import Links, Rendered, Renderer

RED, GREEN = 0xD93F0B, 0x2DA44E


def body(n: Notification, rendered: Rendered, links: Links, words: dict[str, str]) -> dict[str, Any]:
    incident, trace = first_links(n, links)
    embed: dict[str, Any] = {
        "title": rendered.title[:256],
        "description": rendered.text[:4096],
        "color": RED if n.status == "firing" else GREEN,
    }
    if incident:
        embed["url"] = incident
    if trace:
        embed["fields"] = [{"name": words["trace"], "value": trace[:1024]}]
    return {"username": "opsbus", "embeds": [embed], "allowed_mentions": {"parse": []}}


def channel(config: DiscordConfig, renderer: Renderer, client: httpx.AsyncClient) -> HttpChannel:
    def build(n: Notification) -> dict[str, Any]:
        return body(n, renderer.render(n), renderer.links, renderer.words)

    return HttpChannel("discord", client, config.url.get_secret_value(), build)
