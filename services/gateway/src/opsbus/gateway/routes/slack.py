"""`POST /v1/integrations/slack/interactions`: Approve and Reject clicks on the notifier's Slack notices.

Slack posts each click to the app's interactivity request URL, signed with the app's signing secret. The
request is judged before anything else (`domain/slack.py`): unsigned, forged or stale requests get 401 (so
does every request while no signing secret is configured), a signed body that is no decision 400, both
problem+json. The Slack user is then mapped to an opsbus approver (`gateway.slack.approvers`: identity, role,
namespaces, clusters); the decision goes through the recoveries' own path (`recoveries.decide`: the same role,
scope and tenancy checks, the healer's one audit entry in the decision's transaction), the caller naming the
chat (`slack`) and the Slack user id. A click Slack signed is always answered 200, as Slack wants, with the
text the person sees: a refusal (an unknown Slack user, a role or namespace that may not decide; both audited
as denied by the gateway) or a step that is no longer waiting (a second click: nothing is decided twice) is an
ephemeral reply; a decision replaces the message's buttons with who decided. Slack ignores the answer's body
for block actions, so the same reply also goes to the click's `response_url` after the answer, only when that
URL is Slack's (`response_url_prefix`).
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
from fastapi import APIRouter, BackgroundTasks, Request
from pydantic import BaseModel, ConfigDict, Field

from opsbus.gateway.auth import Ctx, RequestId, unauthorized
from opsbus.gateway.context import GatewayContext
from opsbus.gateway.domain import slack
from opsbus.gateway.problems import PROBLEM_RESPONSES, ApiProblem
from opsbus.gateway.routes.chat_decisions import ChatClick, decide_from_chat

CHANNEL = "slack"
log = logging.getLogger(__name__)
router = APIRouter(tags=["integrations"], responses=PROBLEM_RESPONSES)

_FORM = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["payload"],
                    "properties": {"payload": {"type": "string", "description": "Slack's interaction JSON."}},
                }
            }
        },
    },
    "parameters": [
        {"name": h, "in": "header", "required": True, "schema": {"type": "string"}, "description": d}
        for h, d in (
            ("X-Slack-Request-Timestamp", "Unix time Slack sent the request at; refused beyond max_age_seconds."),
            ("X-Slack-Signature", "`v0=` HMAC-SHA256 of `v0:<timestamp>:<body>` with the app's signing secret."),
        )
    ],
}


class SlackReply(BaseModel):
    """What the person who clicked sees (Slack's message-response shape)."""

    model_config = ConfigDict(extra="forbid")

    text: str
    replace_original: bool = Field(description="True: the message is replaced (its buttons gone).")
    response_type: str | None = Field(default=None, description="`ephemeral`: only the person who clicked sees it.")
    blocks: list[dict[str, Any]] | None = None


async def _decide(ctx: GatewayContext, click: slack.Click, rid: str) -> SlackReply:
    user = ctx.settings.gateway.slack.approvers.get(click.user_id)
    chat = ChatClick(CHANNEL, "Slack", click.user_id, click.user_name, click.approve, click.recovery_id, click.step)
    verdict = await decide_from_chat(ctx, chat, user, rid, mapping="gateway.slack.approvers")
    if verdict.outcome == "refused":
        return SlackReply(**slack.ephemeral(f":no_entry: {verdict.text}"))
    if verdict.outcome == "not_waiting":
        return SlackReply(**slack.ephemeral(verdict.text))
    icon = ":white_check_mark:" if click.approve else ":x:"
    return SlackReply(**slack.decided(click, f"{icon} {verdict.text} (<@{click.user_id}>) from Slack"))


async def _update_message(url: str, reply: SlackReply) -> None:
    """Post the reply to the click's `response_url` (the answer's own body is ignored for block actions)."""
    try:
        async with httpx.AsyncClient(timeout=5.0) as client:
            response = await client.post(url, json=reply.model_dump(exclude_none=True))
        if response.status_code >= 300:
            log.warning("Slack refused the message update: HTTP %s", response.status_code)
    except httpx.HTTPError as exc:
        log.warning("Slack message update failed: %s", type(exc).__name__)


@router.post(
    "/v1/integrations/slack/interactions",
    summary="Slack interactivity: Approve/Reject clicks on recovery notices (signed by Slack)",
    openapi_extra=_FORM,
    response_model_exclude_none=True,
)
async def slack_interactions(request: Request, ctx: Ctx, rid: RequestId, tasks: BackgroundTasks) -> SlackReply:
    settings = ctx.settings.gateway.slack
    if settings.signing_secret is None:  # as the Alertmanager receiver without credentials: nothing gets in
        raise unauthorized("Slack interactivity has no signing secret configured, so it accepts no credentials")
    body = await request.body()
    try:
        slack.verify(
            settings.signing_secret.get_secret_value(),
            timestamp=request.headers.get("x-slack-request-timestamp"),
            sent=request.headers.get("x-slack-signature"),
            body=body,
            now=ctx.commands.clock().timestamp(),
            max_age=settings.max_age_seconds,
        )
        click = slack.parse_click(body)
    except slack.SlackRequestRefused as exc:
        raise unauthorized(f"invalid Slack request credentials: {exc}") from None
    except slack.MalformedInteraction as exc:
        raise ApiProblem(400, str(exc), slug="bad-request") from None
    reply = await _decide(ctx, click, rid)
    if click.response_url and click.response_url.startswith(settings.response_url_prefix):
        tasks.add_task(_update_message, click.response_url, reply)
    return reply
