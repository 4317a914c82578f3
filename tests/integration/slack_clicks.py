"""Slack's side of an Approve/Reject click, for the gateway's interaction endpoint: the form-encoded
`block_actions` payload Slack posts and its `X-Slack-Signature`, computed here from Slack's documented recipe
(not with the gateway's own code), and a stand-in for the click's `response_url` that records the message
updates the gateway posts back. Shared by the integration and the e2e tests."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from opsbus.common.testing.servers import free_port
from tests.integration.chat_providers import serving

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"  # a test app's signing secret
APPROVE, REJECT = "opsbus.recovery.approve", "opsbus.recovery.reject"


def click_body(user: str, action: str, recovery_id: str, step: int, *, response_url: str | None = None) -> bytes:
    """The body Slack posts when `user` clicks the button `action` of a notice for the step."""
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "team_id": "T0TEST"},
        "team": {"id": "T0TEST", "domain": "opsbus-test"},
        "api_app_id": "A0TEST",
        "container": {"type": "message", "message_ts": "1700000000.000100", "channel_id": "C0OPS"},
        "message": {
            "type": "message",
            "text": "[FIRING:1] RecoveryPlanned",
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": "*recovery planned*"}},
                {
                    "type": "actions",
                    "elements": [
                        {"type": "button", "action_id": APPROVE, "value": f"{recovery_id}:{step}"},
                        {"type": "button", "action_id": REJECT, "value": f"{recovery_id}:{step}"},
                    ],
                },
            ],
        },
        "actions": [{"type": "button", "action_id": action, "block_id": "b1", "value": f"{recovery_id}:{step}"}],
    }
    if response_url:
        payload["response_url"] = response_url
    return urlencode({"payload": json.dumps(payload)}).encode()


def signed(body: bytes, *, secret: str = SIGNING_SECRET, at: float | None = None) -> dict[str, str]:
    """Slack's headers for `body`: v0 HMAC-SHA256 of `v0:<timestamp>:<body>`."""
    stamp = str(int(time.time() if at is None else at))
    mac = hmac.new(secret.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={mac}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


def slack_settings(approvers: dict[str, dict[str, Any]], response_urls: ResponseUrls | None = None) -> dict[str, Any]:
    """The gateway's `slack` options for these tests."""
    options: dict[str, Any] = {"signing_secret": SIGNING_SECRET, "approvers": approvers}
    if response_urls is not None:
        options["response_url_prefix"] = response_urls.base
    return options


@dataclass
class ResponseUrls:
    """Slack's `response_url` stand-in: every message update the gateway posts, by path."""

    port: int
    posts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/actions/"

    def url(self, name: str) -> str:
        return self.base + name

    async def receive(self, request: Request) -> Response:
        self.posts.setdefault(request.path_params["name"], []).append(json.loads(await request.body()))
        return Response("ok")


async def response_urls() -> AsyncIterator[ResponseUrls]:
    urls = ResponseUrls(port=free_port())
    app = Starlette(routes=[Route("/actions/{name}", urls.receive, methods=["POST"])])
    async with serving(app, urls.port):
        yield urls
