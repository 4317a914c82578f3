"""Feishu's side of an Approve/Reject click, for the gateway's card-action endpoint: the schema 2.0
`card.action.trigger` callback the open platform posts, encrypted with the app's Encrypt Key (SHA-256 of the key,
a random IV in front, AES-256-CBC, PKCS#7) and signed with `X-Lark-Signature` (hex SHA-256 of timestamp + nonce +
Encrypt Key + body), computed here from Feishu's documented recipe, not with the gateway's own code; and the
`url_verification` challenge. Shared by the integration tests (and the e2e tests, when they come)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import time
import uuid
from typing import Any

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

VERIFICATION_TOKEN = "vtFeishuTestApp0123456789"  # a test app's Verification Token
ENCRYPT_KEY = "ekFeishuTestAppEncryptKey42"  # a test app's Encrypt Key
APPROVE, REJECT = "opsbus.recovery.approve", "opsbus.recovery.reject"


def card_action(
    open_id: str, action: str, recovery_id: str, step: int, *, token: str = VERIFICATION_TOKEN, user_id: str = ""
) -> dict[str, Any]:
    """The callback Feishu posts when `open_id` clicks the button `action` of a card naming the step."""
    return {
        "schema": "2.0",
        "header": {
            "event_id": uuid.uuid4().hex,
            "token": token,
            "create_time": str(int(time.time() * 1_000_000)),
            "event_type": "card.action.trigger",
            "tenant_key": "2df73991750f175d",
            "app_id": "cli_a1b2c3d4e5f6",
        },
        "event": {
            "operator": {
                "tenant_key": "2df73991750f175d",
                "user_id": user_id or open_id.removeprefix("ou_"),
                "open_id": open_id,
                "union_id": "on_" + open_id.removeprefix("ou_"),
            },
            "token": "c-295ee57216a5dc9de90fefd0aadb4b1d7d5c39",
            "action": {"value": {"action": action, "step": f"{recovery_id}:{step}"}, "tag": "button"},
            "host": "im_message",
            "context": {"open_message_id": "om_x100b4c0f4c3bd8b0c5bd", "open_chat_id": "oc_opsbus0123456789"},
        },
    }


def challenge(token: str = VERIFICATION_TOKEN) -> dict[str, Any]:
    return {"challenge": "ajls384kdjx98XX", "token": token, "type": "url_verification"}


def body_of(payload: dict[str, Any], *, encrypt_key: str | None = ENCRYPT_KEY) -> bytes:
    """The request body: the JSON, or `{"encrypt": ...}` of it with the Encrypt Key."""
    plain = json.dumps(payload).encode()
    if encrypt_key is None:
        return plain
    padder = padding.PKCS7(128).padder()
    data = padder.update(plain) + padder.finalize()
    iv = os.urandom(16)
    encryptor = Cipher(algorithms.AES(hashlib.sha256(encrypt_key.encode()).digest()), modes.CBC(iv)).encryptor()
    encrypted = base64.b64encode(iv + encryptor.update(data) + encryptor.finalize()).decode()
    return json.dumps({"encrypt": encrypted}).encode()


def signed(body: bytes, *, key: str = ENCRYPT_KEY, at: float | None = None) -> dict[str, str]:
    """Feishu's headers for `body`: timestamp, a fresh nonce and the signature."""
    stamp, nonce = str(int(time.time() if at is None else at)), secrets.token_hex(8)
    return {
        "X-Lark-Request-Timestamp": stamp,
        "X-Lark-Request-Nonce": nonce,
        "X-Lark-Signature": hashlib.sha256((stamp + nonce + key).encode() + body).hexdigest(),
        "Content-Type": "application/json",
    }


def feishu_settings(approvers: dict[str, dict[str, Any]], *, encrypt: bool = True) -> dict[str, Any]:
    """The gateway's `feishu` options for these tests."""
    options: dict[str, Any] = {"verification_token": VERIFICATION_TOKEN, "approvers": approvers}
    if encrypt:
        options["encrypt_key"] = ENCRYPT_KEY
    return options
