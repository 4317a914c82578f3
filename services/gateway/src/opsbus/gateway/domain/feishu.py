"""Feishu/Lark card-action callbacks, judged without I/O: is the request Feishu's, is it new, and which decision
does it ask for.

The rules are Feishu's ("将回调发送至开发者服务器" / "接收回调", open.feishu.cn/document/.../callback-subscription):
- With an **Encrypt Key** set for the app, the body is `{"encrypt": "<base64>"}`: base64 of a 16-byte IV and the
  AES-256-CBC ciphertext (PKCS#7 padding) of the JSON, the key being SHA-256 of the Encrypt Key; and every
  request carries `X-Lark-Request-Timestamp`, `X-Lark-Request-Nonce` and `X-Lark-Signature`, the hex SHA-256 of
  timestamp + nonce + Encrypt Key + the raw body. A signature that does not match (constant-time compare) or a
  timestamp more than the allowed age from now is refused before the body is read.
- The **Verification Token** is in every body (`token` of the `url_verification` challenge, `header.token` of a
  schema 2.0 callback) and must be the app's.
- `url_verification` is answered with its `challenge` (Feishu's own SDK checks only the token on it).
- A click is the schema 2.0 `card.action.trigger` callback: `header.event_id` (unique per callback: a second
  request with it is a replay), `event.operator` (`open_id`, `user_id`), `event.action.value` (what the button
  carried: `{"action": ..., "step": "<recovery id>:<step>"}`, `opsbus.common.api.chat`) and
  `event.context.open_message_id`. The answer may carry a `toast` and a `card` (`{"type": "raw", "data": ...}`)
  that replaces the message.
This module never sees a decision's outcome; `routes/feishu.py` decides through the recoveries' own path.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from opsbus.common.api.chat import ACTION_APPROVE, DECISION_ACTIONS, parse_step_value

CARD_ACTION = "card.action.trigger"


class FeishuRequestRefused(Exception):
    """Not a request Feishu sent for this app just now (401): forged, stale, unsigned or with a wrong token."""


class ReplayedRequest(Exception):
    """A callback whose event id was already handled (409): a captured request sent again."""


class MalformedCallback(Exception):
    """Authentic, but not something this endpoint understands (400)."""


def signature(timestamp: str, nonce: str, encrypt_key: str, body: bytes) -> str:
    """The `X-Lark-Signature` Feishu sends with `body`."""
    return hashlib.sha256((timestamp + nonce + encrypt_key).encode() + body).hexdigest()


def check_age(timestamp: str | None, *, now: float, max_age: int) -> None:
    if not timestamp:
        raise FeishuRequestRefused("X-Lark-Request-Timestamp is required")
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise FeishuRequestRefused("X-Lark-Request-Timestamp is not a Unix time")
    if abs(now - int(timestamp)) > max_age:
        raise FeishuRequestRefused(f"the request's timestamp is more than {max_age} s from now: refused as a replay")


def verify(
    encrypt_key: str,
    *,
    timestamp: str | None,
    nonce: str | None,
    sent: str | None,
    body: bytes,
    now: float,
    max_age: int,
) -> None:
    """Raise `FeishuRequestRefused` unless `sent` is Feishu's signature of `body` at a `timestamp` near `now`."""
    if not timestamp or not nonce or not sent:
        raise FeishuRequestRefused("X-Lark-Request-Timestamp, X-Lark-Request-Nonce and X-Lark-Signature are required")
    check_age(timestamp, now=now, max_age=max_age)
    if not hmac.compare_digest(signature(timestamp, nonce, encrypt_key, body).encode(), sent.encode()):
        raise FeishuRequestRefused("X-Lark-Signature does not match the request: not signed with this app's key")


def encrypt(encrypt_key: str, plain: bytes, iv: bytes) -> str:
    """Feishu's encryption of `plain` (what the platform does; the tests use it to play Feishu)."""
    padder = padding.PKCS7(128).padder()
    data = padder.update(plain) + padder.finalize()
    key = hashlib.sha256(encrypt_key.encode()).digest()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return base64.b64encode(iv + encryptor.update(data) + encryptor.finalize()).decode()


def decrypt(encrypt_key: str, encrypted: str) -> bytes:
    """The JSON inside an `{"encrypt": ...}` body; `FeishuRequestRefused` when it was not encrypted with the key."""
    try:
        raw = base64.b64decode(encrypted, validate=True)
    except (binascii.Error, ValueError):
        raise FeishuRequestRefused("`encrypt` is not base64") from None
    if len(raw) < 32 or len(raw) % 16:
        raise FeishuRequestRefused("`encrypt` is not an IV and AES-256-CBC blocks")
    key = hashlib.sha256(encrypt_key.encode()).digest()
    decryptor = Cipher(algorithms.AES(key), modes.CBC(raw[:16])).decryptor()
    data = decryptor.update(raw[16:]) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(data) + unpadder.finalize()
    except ValueError:
        raise FeishuRequestRefused("`encrypt` does not decrypt with this app's Encrypt Key") from None


def check_token(expected: str, sent: object) -> None:
    if not isinstance(sent, str) or not hmac.compare_digest(expected.encode(), sent.encode()):
        raise FeishuRequestRefused("the verification token is not this app's")


@dataclass(frozen=True, slots=True)
class Challenge:
    """Feishu checking the callback URL: answer `{"challenge": ...}`."""

    challenge: str
    token: object


@dataclass(frozen=True, slots=True)
class Click:
    """A person's click on an Approve or Reject button of a card."""

    event_id: str
    token: object
    open_id: str
    user_id: str | None
    approve: bool
    recovery_id: str
    step: int
    message_id: str | None

    @property
    def verb(self) -> str:
        return "approve" if self.approve else "reject"


def _object(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedCallback(f"the callback has no {what} object")
    return value


def parse(plain: bytes) -> Challenge | Click:
    """The challenge or the decision a (decrypted) body asks for; `MalformedCallback` for anything else."""
    try:
        body = json.loads(plain)
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedCallback(f"the body is not JSON ({exc})") from None
    body = _object(body, "JSON")
    if body.get("type") == "url_verification":
        if not isinstance(body.get("challenge"), str) or not body["challenge"]:
            raise MalformedCallback("url_verification without a challenge")
        return Challenge(challenge=body["challenge"][:512], token=body.get("token"))
    if body.get("schema") != "2.0":
        raise MalformedCallback("only schema 2.0 callbacks (card.action.trigger) are handled")
    header, event = _object(body.get("header"), "header"), _object(body.get("event"), "event")
    if header.get("event_type") != CARD_ACTION:
        raise MalformedCallback(f"only {CARD_ACTION} callbacks are handled")
    event_id = header.get("event_id")
    if not isinstance(event_id, str) or not event_id or len(event_id) > 128:
        raise MalformedCallback("the callback has no event_id")
    operator, action = _object(event.get("operator"), "operator"), _object(event.get("action"), "action")
    open_id, user_id = operator.get("open_id"), operator.get("user_id")
    if not isinstance(open_id, str) or not open_id:
        raise MalformedCallback("the callback names no operator open_id")
    value = action.get("value")
    if (
        not isinstance(value, dict)
        or value.get("action") not in DECISION_ACTIONS
        or not isinstance(value.get("step"), str)
    ):
        raise MalformedCallback("the clicked element is not an opsbus Approve/Reject button")
    try:
        recovery_id, step = parse_step_value(value["step"])
    except ValueError as exc:
        raise MalformedCallback(str(exc)) from None
    context = event.get("context")
    message_id = context.get("open_message_id") if isinstance(context, dict) else None
    return Click(
        event_id=event_id,
        token=header.get("token"),
        open_id=open_id[:253],
        user_id=user_id[:253] if isinstance(user_id, str) and user_id else None,
        approve=value["action"] == ACTION_APPROVE,
        recovery_id=recovery_id,
        step=step,
        message_id=message_id if isinstance(message_id, str) else None,
    )


class SeenEvents:
    """Event ids handled within the last `keep` seconds (longer than the timestamp window, so a replay is either
    too old or remembered), at most `limit` of them. Per gateway replica: across replicas a replayed click finds
    its step already decided, so nothing is decided twice either way."""

    def __init__(self, keep: float, limit: int = 10_000) -> None:
        self._keep = keep
        self._limit = limit
        self._seen: OrderedDict[str, float] = OrderedDict()

    def first_time(self, event_id: str, now: float) -> bool:
        """Record `event_id`; False when it was already seen."""
        while self._seen and (next(iter(self._seen.values())) < now - self._keep or len(self._seen) >= self._limit):
            self._seen.popitem(last=False)
        if event_id in self._seen:
            return False
        self._seen[event_id] = now
        return True


def toast(kind: str, text: str) -> dict[str, Any]:
    """A short message only the person who clicked sees; the card stays as it is."""
    return {"toast": {"type": kind, "content": text[:500]}}


def decided(click: Click, text: str) -> dict[str, Any]:
    """A toast and the card replaced by one without buttons saying who decided: nobody clicks twice."""
    card = {
        "config": {"wide_screen_mode": True, "update_multi": True},
        "header": {
            "title": {"tag": "plain_text", "content": f"Recovery step {click.verb}d"},
            "template": "green" if click.approve else "grey",
        },
        "elements": [{"tag": "markdown", "content": text}],
    }
    return {**toast("success", text), "card": {"type": "raw", "data": card}}
