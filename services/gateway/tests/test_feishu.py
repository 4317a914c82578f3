"""Feishu card-action callbacks judged without I/O (`opsbus.gateway.domain.feishu`): Feishu's documented
decryption example decrypts, the signature follows Feishu's recipe (hex SHA-256 of timestamp + nonce + Encrypt
Key + body) and anything signed, timed or keyed wrongly is refused, a click names the decision and the step,
and an event id is accepted once."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from opsbus.common.api.chat import ACTION_APPROVE, ACTION_REJECT, step_value
from opsbus.gateway.domain import feishu

# Feishu's own test vector ("Encrypt Key 加密配置示例", open.feishu.cn/document/uAjLw4CM/ukTMukTMukTM/
# event-subscription-guide/event-subscription-configure-/request-url-configuration-case)
DOC_KEY, DOC_ENCRYPTED, DOC_PLAIN = "test key", "P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=", b"hello world"
KEY, STAMP, NONCE = "kR4lXq8sEncryptKey", "1700000000", "d7c1f0a9"
BODY = b'{"encrypt":"abc"}'


def test_feishus_documented_example_decrypts() -> None:
    assert feishu.decrypt(DOC_KEY, DOC_ENCRYPTED) == DOC_PLAIN
    with pytest.raises(feishu.FeishuRequestRefused, match="does not decrypt"):
        feishu.decrypt("another key", DOC_ENCRYPTED)
    for broken in ("not base64!", "AAAA"):
        with pytest.raises(feishu.FeishuRequestRefused):
            feishu.decrypt(DOC_KEY, broken)


def test_what_we_encrypt_decrypts_and_a_fresh_iv_changes_the_text() -> None:
    plain = json.dumps({"type": "url_verification", "challenge": "c"}).encode()
    one, two = feishu.encrypt(KEY, plain, b"\x01" * 16), feishu.encrypt(KEY, plain, b"\x02" * 16)
    assert one != two
    assert feishu.decrypt(KEY, one) == feishu.decrypt(KEY, two) == plain


def test_the_signature_is_sha256_of_timestamp_nonce_key_and_body() -> None:
    expected = hashlib.sha256(f"{STAMP}{NONCE}{KEY}".encode() + BODY).hexdigest()
    assert feishu.signature(STAMP, NONCE, KEY, BODY) == expected
    feishu.verify(KEY, timestamp=STAMP, nonce=NONCE, sent=expected, body=BODY, now=float(STAMP) + 299, max_age=300)


GOOD = feishu.signature(STAMP, NONCE, KEY, BODY)


@pytest.mark.parametrize(
    ("timestamp", "nonce", "sent", "body", "now", "why"),
    [
        (STAMP, NONCE, GOOD, BODY + b" ", float(STAMP), "does not match"),  # body changed
        (STAMP, "other", GOOD, BODY, float(STAMP), "does not match"),  # nonce changed
        (STAMP, NONCE, feishu.signature(STAMP, NONCE, "not-the-key", BODY), BODY, float(STAMP), "does not match"),
        (STAMP, NONCE, GOOD, BODY, float(STAMP) + 301, "more than 300 s"),  # replayed later
        (STAMP, NONCE, GOOD, BODY, float(STAMP) - 301, "more than 300 s"),  # from the future
        ("1700000000.5", NONCE, GOOD, BODY, float(STAMP), "not a Unix time"),
        (None, NONCE, GOOD, BODY, float(STAMP), "required"),
        (STAMP, None, GOOD, BODY, float(STAMP), "required"),
        (STAMP, NONCE, None, BODY, float(STAMP), "required"),
    ],
)
def test_forged_stale_or_unsigned_requests_are_refused(
    timestamp: str | None, nonce: str | None, sent: str | None, body: bytes, now: float, why: str
) -> None:
    with pytest.raises(feishu.FeishuRequestRefused, match=why):
        feishu.verify(KEY, timestamp=timestamp, nonce=nonce, sent=sent, body=body, now=now, max_age=300)


def callback(action: str = ACTION_APPROVE, value: Any = None, **header: Any) -> bytes:
    body = {
        "schema": "2.0",
        "header": {
            "event_id": "f7984f25108f8137722bb63cee927e66",
            "token": "vt",
            "create_time": "1700000000000000",
            "event_type": "card.action.trigger",
            "tenant_key": "tk",
            "app_id": "cli_a",
            **header,
        },
        "event": {
            "operator": {"tenant_key": "tk", "user_id": "e33ggbyz", "open_id": "ou_alice", "union_id": "on_a"},
            "token": "c-update-token",
            "action": {"value": value or {"action": action, "step": step_value("rcv-1:a", 2)}, "tag": "button"},
            "host": "im_message",
            "context": {"open_message_id": "om_1", "open_chat_id": "oc_ops"},
        },
    }
    return json.dumps(body).encode()


def test_a_click_names_the_person_the_decision_and_the_step() -> None:
    click = feishu.parse(callback(ACTION_REJECT))
    assert isinstance(click, feishu.Click)
    assert (click.open_id, click.user_id, click.approve, click.recovery_id, click.step) == (
        "ou_alice",
        "e33ggbyz",
        False,
        "rcv-1:a",
        2,
    )
    assert (click.event_id, click.token, click.message_id) == ("f7984f25108f8137722bb63cee927e66", "vt", "om_1")
    feishu.check_token("vt", click.token)
    with pytest.raises(feishu.FeishuRequestRefused, match="not this app's"):
        feishu.check_token("other", click.token)


def test_the_url_check_is_a_challenge() -> None:
    challenge = feishu.parse(b'{"challenge": "ajls384kdjx98XX", "token": "vt", "type": "url_verification"}')
    assert challenge == feishu.Challenge("ajls384kdjx98XX", "vt")


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1]",
        json.dumps({"schema": "1.0"}).encode(),
        callback(event_type="im.message.receive_v1"),
        callback(event_id=""),
        callback(value={"action": "open.something", "step": "rcv-1:2"}),
        callback(value={"action": ACTION_APPROVE, "step": "no step"}),
        b'{"type": "url_verification"}',
    ],
)
def test_anything_else_is_malformed(body: bytes) -> None:
    with pytest.raises(feishu.MalformedCallback):
        feishu.parse(body)


def test_an_event_id_is_taken_once_within_the_window() -> None:
    seen = feishu.SeenEvents(keep=600, limit=3)
    assert seen.first_time("e1", 0.0)
    assert not seen.first_time("e1", 10.0)
    assert seen.first_time("e2", 10.0)
    assert seen.first_time("e1", 700.0)  # long past the timestamp window: the timestamp refuses it instead
    for n in range(5):  # bounded: the oldest go first
        seen.first_time(f"x{n}", 701.0)
    assert seen.first_time("e2", 702.0)


def test_a_decision_replaces_the_card_without_buttons() -> None:
    click = feishu.parse(callback())
    assert isinstance(click, feishu.Click)
    answer = feishu.decided(click, "approved by alice")
    assert answer["toast"] == {"type": "success", "content": "approved by alice"}
    card = answer["card"]
    assert card["type"] == "raw" and card["data"]["header"]["title"]["content"] == "Recovery step approved"
    assert all(e["tag"] != "action" for e in card["data"]["elements"])
