"""`POST /v1/integrations/feishu/card-actions`: Approve and Reject clicks on the notifier's Feishu/Lark app-bot
cards (the app's callback request URL, "将回调发送至开发者服务器").

The request is judged before anything is decided (`domain/feishu.py`): with the app's Encrypt Key configured,
`X-Lark-Signature` over timestamp, nonce, key and raw body is checked first and the body decrypted; the
Verification Token in the body must be the app's; the request timestamp must be within `max_age_seconds`; a
callback whose `event_id` was already handled is a replay. Forged, unsigned or stale requests get 401 (so does
every request while no verification token is configured), a replay 409, an authentic body that is no decision
400, all problem+json. Feishu's URL check (`url_verification`) is answered with its challenge.

A click is then decided as every chat click is (`routes/chat_decisions.py`): the Feishu user (open_id, else
user_id) mapped through `gateway.feishu.approvers`, the decision through `recoveries.decide`, audited with
`channel: feishu` and the open_id. The answer is 200 in Feishu's callback shape: a toast for a refusal (audited
as denied) or a step no longer waiting, and for a decision a toast plus the card replaced by who decided.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from opsbus.gateway.auth import Ctx, RequestId, unauthorized
from opsbus.gateway.domain import feishu
from opsbus.gateway.problems import PROBLEM_RESPONSES, ApiProblem
from opsbus.gateway.routes.chat_decisions import ChatClick, decide_from_chat

CHANNEL = "feishu"
router = APIRouter(tags=["integrations"], responses=PROBLEM_RESPONSES)

_HEADERS = (
    ("X-Lark-Request-Timestamp", "Unix time Feishu sent the request at; refused beyond max_age_seconds."),
    ("X-Lark-Request-Nonce", "Random string Feishu signs with the timestamp."),
    ("X-Lark-Signature", "Hex SHA-256 of timestamp + nonce + Encrypt Key + raw body (required with an Encrypt Key)."),
)
_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "description": "A schema 2.0 `card.action.trigger` callback, `url_verification`, or "
                    '`{"encrypt": ...}` (either of them encrypted with the Encrypt Key).',
                }
            }
        },
    },
    "parameters": [
        {"name": h, "in": "header", "required": False, "schema": {"type": "string"}, "description": d}
        for h, d in _HEADERS
    ],
}


class FeishuAnswer(BaseModel):
    """Feishu's callback answer: the challenge of a URL check, or what the person who clicked sees."""

    model_config = ConfigDict(extra="forbid")

    challenge: str | None = Field(default=None, description="`url_verification`: the challenge, echoed.")
    toast: dict[str, str] | None = Field(default=None, description="`{type: success|info|error, content}`.")
    card: dict[str, Any] | None = Field(default=None, description="`{type: raw, data: <card>}` replacing the card.")


def _plain(body: bytes, encrypt_key: str | None) -> bytes:
    """The callback's JSON: the body, or what its `encrypt` field decrypts to."""
    try:
        outer = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise feishu.MalformedCallback("the body is not JSON") from None
    if not isinstance(outer, dict) or "encrypt" not in outer:
        return body
    if encrypt_key is None or not isinstance(outer["encrypt"], str):
        raise feishu.MalformedCallback("an encrypted callback, but no encrypt_key is configured to read it")
    return feishu.decrypt(encrypt_key, outer["encrypt"])


def _seen(request: Request, keep: float) -> feishu.SeenEvents:
    seen = getattr(request.app.state, "feishu_seen_events", None)
    if not isinstance(seen, feishu.SeenEvents):
        seen = feishu.SeenEvents(keep)
        request.app.state.feishu_seen_events = seen
    return seen


@router.post(
    "/v1/integrations/feishu/card-actions",
    summary="Feishu/Lark card actions: Approve/Reject clicks on recovery cards (verified per Feishu's rules)",
    openapi_extra=_BODY,
    response_model_exclude_none=True,
)
async def feishu_card_actions(request: Request, ctx: Ctx, rid: RequestId) -> FeishuAnswer:
    settings = ctx.settings.gateway.feishu
    if settings.verification_token is None:  # as Slack's endpoint without a signing secret: nothing gets in
        raise unauthorized("Feishu card actions have no verification token configured, so they accept no credentials")
    key = settings.encrypt_key.get_secret_value() if settings.encrypt_key else None
    headers = request.headers
    stamp, nonce, sent = (headers.get(h) for h, _ in _HEADERS)
    now = ctx.commands.clock().timestamp()
    body = await request.body()
    try:
        signed = bool(stamp and nonce and sent)
        if key is not None and signed:  # judged before the body is read
            feishu.verify(
                key, timestamp=stamp, nonce=nonce, sent=sent, body=body, now=now, max_age=settings.max_age_seconds
            )
        parsed = feishu.parse(_plain(body, key))
        feishu.check_token(settings.verification_token.get_secret_value(), parsed.token)
        if isinstance(parsed, feishu.Challenge):
            return FeishuAnswer(challenge=parsed.challenge)
        if key is not None and not signed:
            raise feishu.FeishuRequestRefused(
                "X-Lark-Request-Timestamp, X-Lark-Request-Nonce and X-Lark-Signature are required"
            )
        feishu.check_age(stamp, now=now, max_age=settings.max_age_seconds)
        if not _seen(request, 2.0 * settings.max_age_seconds).first_time(parsed.event_id, now):
            raise feishu.ReplayedRequest(f"event {parsed.event_id} was already handled: refused as a replay")
    except feishu.FeishuRequestRefused as exc:
        raise unauthorized(f"invalid Feishu request credentials: {exc}") from None
    except feishu.ReplayedRequest as exc:
        raise ApiProblem(409, str(exc), slug="conflict") from None
    except feishu.MalformedCallback as exc:
        raise ApiProblem(400, str(exc), slug="bad-request") from None
    approvers = settings.approvers
    user = approvers.get(parsed.open_id) or (approvers.get(parsed.user_id) if parsed.user_id else None)
    name = parsed.user_id or parsed.open_id
    click = ChatClick(CHANNEL, "Feishu", parsed.open_id, name, parsed.approve, parsed.recovery_id, parsed.step)
    verdict = await decide_from_chat(ctx, click, user, rid, mapping="gateway.feishu.approvers")
    if verdict.outcome == "refused":
        return FeishuAnswer(**feishu.toast("error", verdict.text))
    if verdict.outcome == "not_waiting":
        return FeishuAnswer(**feishu.toast("info", verdict.text))
    icon = "✅" if parsed.approve else "❌"
    return FeishuAnswer(**feishu.decided(parsed, f"{icon} {verdict.text} (<at id={parsed.open_id}></at>) from Feishu"))
