"""Opsgenie Alert API v2: a notification group is one Opsgenie alert, keyed by its alias; the resolve closes it.

`POST {url}/v2/alerts` (create; an open alert with the same alias is deduplicated by Opsgenie) and
`POST {url}/v2/alerts/{alias}/close?identifierType=alias`, with `Authorization: GenieKey <key>`
(https://docs.opsgenie.com/docs/alert-api). Both answer 202 (processed asynchronously). 429 and 5xx are retried
(Retry-After when sent), other 4xx final (401/403 a refused key, 422 a bad body).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import quote

import httpx

from opsbus.notifier.channels.base import Outcome, judged, post, secret_parts
from opsbus.notifier.channels.chat import first_links
from opsbus.notifier.domain.grouping import Notification
from opsbus.notifier.domain.integrations import OpsgenieConfig
from opsbus.notifier.rendering import Links, Rendered, Renderer

PRIORITY = {"critical": "P1", "error": "P2", "warning": "P3", "info": "P5"}


def alias(n: Notification) -> str:
    """The Opsgenie alias of a notification group (stable across its notifications, at most 512 characters)."""
    return "opsbus-" + hashlib.sha256(f"{n.receiver}\x00{n.group_key}".encode()).hexdigest()[:40]


def create_body(n: Notification, rendered: Rendered, links: Links, config: OpsgenieConfig) -> dict[str, Any]:
    incident, trace = first_links(n, links)
    severity = n.alerts[0].severity or "warning"
    details = {k: v for k, v in {**n.common_labels, "incident": incident, "trace": trace}.items() if v}
    body: dict[str, Any] = {
        "message": rendered.title[:130],
        "alias": alias(n),
        "description": rendered.text[:15000],
        "priority": config.priority or PRIORITY.get(severity, "P3"),
        "tags": [f"{k}:{v}"[:50] for k, v in sorted(n.group_labels.items())][:20],
        "details": {k[:50]: str(v)[:500] for k, v in details.items()},
        "source": "opsbus",
        "entity": n.alerts[0].subject[:512],
    }
    if config.responders:
        body["responders"] = config.responders
    return body


class OpsgenieChannel:
    kind = "opsgenie"

    def __init__(self, config: OpsgenieConfig, renderer: Renderer, client: httpx.AsyncClient) -> None:
        self._config = config
        self._renderer = renderer
        self._client = client
        key = config.api_key.get_secret_value()
        self._headers = {"Authorization": f"GenieKey {key}", "Content-Type": "application/json"}
        self._secrets = secret_parts(config.url, [key])

    def request(self, n: Notification) -> tuple[str, dict[str, Any]]:
        base = self._config.url.rstrip("/")
        if n.status == "resolved":
            note = {"source": "opsbus", "note": self._renderer.render(n).title[:25000]}
            return f"{base}/v2/alerts/{quote(alias(n))}/close?identifierType=alias", note
        return f"{base}/v2/alerts", create_body(n, self._renderer.render(n), self._renderer.links, self._config)

    async def send(self, notification: Notification) -> Outcome:
        url, body = self.request(notification)
        content = json.dumps(body, separators=(",", ":")).encode()
        response = await post(self._client, url, content=content, headers=self._headers)
        return response if isinstance(response, Outcome) else judged(response, self._secrets, None)
