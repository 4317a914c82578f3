"""Slack's side of an Approve/Reject click, for the gateway's interaction endpoint: the form-encoded
`block_actions` payload Slack posts and its `X-Slack-Signature`, computed here from Slack's documented recipe
(not with the gateway's own code), and a stand-in for Slack: the incoming webhook the notifier posts notices
to, and the clicks' `response_url` the gateway posts message updates to. Shared by the integration and the e2e
tests."""

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


def slack_settings(approvers: dict[str, dict[str, Any]], slack: SlackStandIn | None = None) -> dict[str, Any]:
    """The gateway's `slack` options for these tests."""
    options: dict[str, Any] = {"signing_secret": SIGNING_SECRET, "approvers": approvers}
    if slack is not None:
        options["response_url_prefix"] = slack.actions
    return options


@dataclass
class SlackStandIn:
    """Slack's side of the notices: an incoming webhook (`webhook`) recording the messages the notifier posts,
    and the clicks' `response_url`s recording the message updates the gateway posts, by name."""

    port: int
    messages: list[dict[str, Any]] = field(default_factory=list)
    posts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def webhook(self) -> str:
        return f"http://127.0.0.1:{self.port}/services/T0TEST/B0TEST/xoxwebhook"

    @property
    def actions(self) -> str:
        return f"http://127.0.0.1:{self.port}/actions/"

    def url(self, name: str) -> str:
        return self.actions + name

    async def message(self, request: Request) -> Response:
        body = json.loads(await request.body())
        if not isinstance(body, dict) or not body.get("text") or not isinstance(body.get("blocks"), list):
            return Response("invalid_blocks", status_code=400)  # Slack's answer to a message it cannot show
        self.messages.append(body)
        return Response("ok")

    async def receive(self, request: Request) -> Response:
        self.posts.setdefault(request.path_params["name"], []).append(json.loads(await request.body()))
        return Response("ok")


async def slack_stand_in() -> AsyncIterator[SlackStandIn]:
    slack = SlackStandIn(port=free_port())
    routes = [
        Route("/services/{path:path}", slack.message, methods=["POST"]),
        Route("/actions/{name}", slack.receive, methods=["POST"]),
    ]
    async with serving(Starlette(routes=routes), slack.port):
        yield slack
