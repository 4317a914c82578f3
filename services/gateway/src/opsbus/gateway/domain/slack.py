"""Slack's interaction requests, judged without I/O: is the request Slack's, and which decision does it ask for.

Slack signs every request to an app's interactivity URL with the app's signing secret: `X-Slack-Signature` is
`v0=` and the hex HMAC-SHA256 of `v0:<X-Slack-Request-Timestamp>:<raw body>`. A request whose signature does
not match (compared in constant time), or whose timestamp is more than the allowed age from now, is refused
before its body is read: a forged request gets nothing, and a captured one cannot be replayed later. The body
is `payload=<JSON>`, form-encoded; a `block_actions` payload names the user who clicked, the button's action
and value (the step, `opsbus.common.api.chat`) and the `response_url` through which the message is updated.
This module never sees a decision's outcome; `routes/slack.py` decides through the recoveries' own path.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from opsbus.common.api.chat import ACTION_APPROVE, DECISION_ACTIONS, parse_step_value

VERSION = "v0"


class SlackRequestRefused(Exception):
    """Not a request Slack signed just now (401): forged, stale or unsigned."""


class MalformedInteraction(Exception):
    """Signed, but not a decision this gateway understands (400)."""


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The `X-Slack-Signature` Slack sends for `body` at `timestamp`."""
    base = f"{VERSION}:{timestamp}:".encode() + body
    return f"{VERSION}=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def verify(secret: str, *, timestamp: str | None, sent: str | None, body: bytes, now: float, max_age: int) -> None:
    """Raise `SlackRequestRefused` unless `sent` is Slack's signature of `body` at a `timestamp` near `now`."""
    if not timestamp or not sent:
        raise SlackRequestRefused("X-Slack-Request-Timestamp and X-Slack-Signature are required")
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise SlackRequestRefused("X-Slack-Request-Timestamp is not a Unix time")
    if abs(now - int(timestamp)) > max_age:
        raise SlackRequestRefused(f"the request's timestamp is more than {max_age} s from now: refused as a replay")
    if not hmac.compare_digest(signature(secret, timestamp, body).encode(), sent.encode()):
        raise SlackRequestRefused("X-Slack-Signature does not match the request: not signed by this app's secret")


@dataclass(frozen=True, slots=True)
class Click:
    """A person's click on an Approve or Reject button."""

    user_id: str
    user_name: str
    approve: bool
    recovery_id: str
    step: int
    response_url: str | None
    message: dict[str, Any] | None

    @property
    def verb(self) -> str:
        return "approve" if self.approve else "reject"


def parse_click(body: bytes) -> Click:
    """The decision a signed `block_actions` request asks for; `MalformedInteraction` for anything else."""
    try:
        fields = parse_qs(body.decode(), strict_parsing=True, max_num_fields=10)
        [raw] = fields["payload"]
        payload = json.loads(raw)
    except (UnicodeDecodeError, ValueError, KeyError) as exc:
        raise MalformedInteraction(f"the body is not a form with one `payload` JSON field ({exc})") from None
    if not isinstance(payload, dict) or payload.get("type") != "block_actions":
        raise MalformedInteraction("only `block_actions` interactions are handled")
    user, actions = payload.get("user"), payload.get("actions")
    if not isinstance(user, dict) or not isinstance(user.get("id"), str) or not user["id"]:
        raise MalformedInteraction("the payload names no user")
    if not isinstance(actions, list) or len(actions) != 1 or not isinstance(actions[0], dict):
        raise MalformedInteraction("the payload must carry exactly one action")
    action = actions[0]
    if action.get("action_id") not in DECISION_ACTIONS or not isinstance(action.get("value"), str):
        raise MalformedInteraction(f"unknown action {str(action.get('action_id'))[:80]!r}")
    try:
        recovery_id, step = parse_step_value(action["value"])
    except ValueError as exc:
        raise MalformedInteraction(str(exc)) from None
    response_url, message = payload.get("response_url"), payload.get("message")
    name = user.get("username") or user.get("name") or user["id"]
    return Click(
        user_id=user["id"][:253],
        user_name=str(name)[:253],
        approve=action["action_id"] == ACTION_APPROVE,
        recovery_id=recovery_id,
        step=step,
        response_url=response_url if isinstance(response_url, str) else None,
        message=message if isinstance(message, dict) else None,
    )


def ephemeral(text: str) -> dict[str, Any]:
    """A reply only the person who clicked sees; the message stays as it is (its buttons too)."""
    return {"response_type": "ephemeral", "replace_original": False, "text": text}


def decided(click: Click, text: str) -> dict[str, Any]:
    """The message again, its decision buttons replaced by a line saying who decided: nobody clicks twice."""
    original = click.message or {}
    blocks = [
        b
        for b in original.get("blocks", []) or []
        if isinstance(b, dict)
        and not (
            b.get("type") == "actions"
            and any(isinstance(e, dict) and e.get("action_id") in DECISION_ACTIONS for e in b.get("elements", []))
        )
    ]
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": text}]})
    return {"replace_original": True, "text": original.get("text") or text, "blocks": blocks}
