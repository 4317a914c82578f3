"""A decision clicked in a chat app, decided through the recoveries' own path: what every chat endpoint shares
once it has judged the request authentic (`routes/slack.py`, `routes/feishu.py`).

The chat user is mapped to an opsbus approver (settings: identity, role, namespaces, clusters); an unmapped user,
or an approver whose role or scope may not decide the step, is refused and audited as denied by the gateway
(nothing was decided); a mapped one decides through `recoveries.decide` (the same role, scope and tenancy checks
as the API, the healer's one audit entry in the decision's transaction), the caller naming the chat and the chat
user id. A step that is no longer waiting (decided already, expired) decides nothing. The outcome is data the
endpoint turns into the chat's own reply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from opsbus.common.api.calling import Caller
from opsbus.common.events.payloads.audit import AuditOutcome
from opsbus.common.events.payloads.common import ResourceRef
from opsbus.common.rpc import RpcError
from opsbus.gateway.commands import actor_of
from opsbus.gateway.context import GatewayContext
from opsbus.gateway.domain.access import Denied, Principal, Role, Scope
from opsbus.gateway.problems import ApiProblem
from opsbus.gateway.routes.recoveries import decide
from opsbus.gateway.settings import SlackApprover


@dataclass(frozen=True, slots=True)
class ChatClick:
    channel: str  # `slack`, `feishu`: recorded as the decision's channel
    chat: str  # how people name it: `Slack`, `Feishu`
    user_id: str  # the chat's id of the person
    user_name: str
    approve: bool
    recovery_id: str
    step: int

    @property
    def verb(self) -> str:
        return "approve" if self.approve else "reject"


@dataclass(frozen=True, slots=True)
class ChatVerdict:
    outcome: Literal["decided", "refused", "not_waiting"]
    text: str
    identity: str | None = None


def principal_of(user: SlackApprover) -> Principal:
    scope = Scope.of(user.namespaces, user.clusters)
    return Principal(kind="user", id=user.identity, role=Role.parse(user.role), scope=scope, display_name=user.identity)


async def _refused(ctx: GatewayContext, who: Principal, click: ChatClick, rid: str, reason: str) -> ChatVerdict:
    """Audit a refused click (as the gateway: nothing was decided) and say why."""
    await ctx.commands.audit(
        who,
        action=f"recovery.{click.verb}",
        target=ResourceRef(kind="Recovery", name=click.recovery_id[:253]),
        reason=f"refused from {click.chat} ({click.user_id}): {reason}",
        request_id=rid,
        outcome=AuditOutcome.DENIED,
        details={
            "recovery_id": click.recovery_id,
            "step": click.step,
            "channel": click.channel,
            "channel_user": click.user_id,
        },
    )
    return ChatVerdict("refused", f"Not {click.verb}d: {reason}")


async def decide_from_chat(
    ctx: GatewayContext, click: ChatClick, user: SlackApprover | None, rid: str, *, mapping: str
) -> ChatVerdict:
    """Decide `click` for the approver `user` is mapped to (`mapping` names the setting, for the refusal)."""
    if user is None:
        stranger = Principal(
            kind="user", id=f"{click.channel}:{click.user_id}", role=Role.VIEWER, display_name=click.user_name
        )
        reason = f"{click.chat} user {click.user_id} is not an opsbus approver (ask an admin to map it in {mapping})"
        return await _refused(ctx, stranger, click, rid, reason)
    who = principal_of(user)
    caller = Caller(actor=actor_of(who), request_id=rid, channel=click.channel, channel_user=click.user_id)
    step = f"recovery {click.recovery_id} step {click.step}"
    try:
        answer = await decide(
            ctx, who, caller, recovery_id=click.recovery_id, step=click.step, approve=click.approve, text=None
        )
    except Denied as exc:
        reason = (
            f"no pending approval for {step} in your namespaces" if exc.hidden else f"{user.identity}: {exc.reason}"
        )
        return await _refused(ctx, who, click, rid, reason)
    except ApiProblem as exc:
        if exc.status != 404:
            raise
        return ChatVerdict("not_waiting", f"{step} is not waiting for a decision (already decided or expired).")
    except RpcError as exc:
        if exc.code not in (404, 409):
            raise
        return ChatVerdict("not_waiting", f"{step} is not waiting for a decision: {exc.description}")
    return ChatVerdict("decided", f"{step} {answer.status} by {user.identity}", user.identity)
