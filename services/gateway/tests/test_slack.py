"""Slack interaction requests judged without I/O (`opsbus.gateway.domain.slack`): Slack's published example
signature verifies, anything else signed or timed wrongly is refused, a click names the decision and the step,
and the decided message keeps everything but its decision buttons."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from opsbus.common.api.chat import ACTION_APPROVE, ACTION_REJECT, step_value
from opsbus.gateway.domain import slack

# Slack's own example from "Verifying requests from Slack" (api.slack.com/authentication/verifying-requests-from-slack)
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
STAMP = "1531420618"
BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&"
    b"channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&"
    b"response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&"
    b"trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
EXPECTED = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"


def test_slacks_example_request_verifies() -> None:
    assert slack.signature(SECRET, STAMP, BODY) == EXPECTED
    slack.verify(SECRET, timestamp=STAMP, sent=EXPECTED, body=BODY, now=float(STAMP) + 299, max_age=300)


@pytest.mark.parametrize(
    ("timestamp", "sent", "body", "now", "why"),
    [
        (STAMP, EXPECTED, BODY + b"&x=1", float(STAMP), "does not match"),  # body changed
        (STAMP, EXPECTED.replace("v0=a", "v0=b"), BODY, float(STAMP), "does not match"),
        (STAMP, "v1=" + EXPECTED[3:], BODY, float(STAMP), "does not match"),
        (STAMP, EXPECTED, BODY, float(STAMP) + 301, "more than 300 s"),  # replayed later
        (STAMP, EXPECTED, BODY, float(STAMP) - 301, "more than 300 s"),  # from the future
        ("1531420618.5", EXPECTED, BODY, float(STAMP), "not a Unix time"),
        (None, EXPECTED, BODY, float(STAMP), "required"),
        (STAMP, None, BODY, float(STAMP), "required"),
    ],
)
def test_forged_stale_or_unsigned_requests_are_refused(
    timestamp: str | None, sent: str | None, body: bytes, now: float, why: str
) -> None:
    with pytest.raises(slack.SlackRequestRefused, match=why):
        slack.verify(SECRET, timestamp=timestamp, sent=sent, body=body, now=now, max_age=300)


def form(payload: object) -> bytes:
    return urlencode({"payload": json.dumps(payload)}).encode()


def click(action: str = ACTION_APPROVE, value: str = step_value("rcv-1:a", 2), **extra: object) -> dict[str, object]:
    return {
        "type": "block_actions",
        "user": {"id": "U1", "username": "alice"},
        "actions": [{"action_id": action, "value": value}],
        "response_url": "https://hooks.slack.com/actions/T1/1/x",
        **extra,
    }


def test_a_click_names_the_decision_the_step_and_who_clicked() -> None:
    c = slack.parse_click(form(click()))
    assert (c.user_id, c.user_name, c.approve, c.recovery_id, c.step) == ("U1", "alice", True, "rcv-1:a", 2)
    assert c.response_url == "https://hooks.slack.com/actions/T1/1/x"
    assert slack.parse_click(form(click(ACTION_REJECT))).verb == "reject"


@pytest.mark.parametrize(
    "body",
    [
        b"payload=%7Bnot-json",
        b"\xff\xfe",
        b"nothing=here",
        form([]),
        form(click() | {"type": "view_submission"}),
        form(click() | {"user": {}}),
        form(click() | {"actions": []}),
        form(click(action="something.else")),
        form(click(value="no-step")),
        form(click(value="rcv:0")),
        form(click(value="rcv:101")),
    ],
)
def test_a_signed_body_that_is_no_decision_is_malformed(body: bytes) -> None:
    with pytest.raises(slack.MalformedInteraction):
        slack.parse_click(body)


def test_the_decided_message_keeps_everything_but_its_decision_buttons() -> None:
    links = {"type": "actions", "elements": [{"type": "button", "url": "https://x/incident"}]}
    buttons = {"type": "actions", "elements": [{"type": "button", "action_id": ACTION_APPROVE, "value": "r:1"}]}
    section = {"type": "section", "text": {"type": "mrkdwn", "text": "planned"}}
    c = slack.parse_click(form(click(message={"text": "title", "blocks": [section, links, buttons]})))
    reply = slack.decided(c, "approved by alice")
    assert reply["replace_original"] is True and reply["text"] == "title"
    assert reply["blocks"][:2] == [section, links]
    assert reply["blocks"][2] == {"type": "context", "elements": [{"type": "mrkdwn", "text": "approved by alice"}]}
    assert slack.ephemeral("no") == {"response_type": "ephemeral", "replace_original": False, "text": "no"}
