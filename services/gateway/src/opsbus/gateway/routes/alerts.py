"""`POST /v1/alerts/alertmanager`: Alertmanager's webhook (payload version 4) -> `alert.fired`/`alert.resolved`.

It has its own credentials (Alertmanager's `http_config`: `authorization` bearer token or `basic_auth`),
configured in `OPSBUS_GATEWAY__ALERTMANAGER__*`; with none configured every call is refused. They are checked
by a `Gate` before the body is read or validated, so an unauthenticated sender gets 401 whatever it sends,
never a hint of what the receiver expects. The answer is
200 only after JetStream stored every event, so Alertmanager's retry covers any failure (503 until NATS is
back); ids are deterministic, so a retried notification is deduplicated by the stream.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from opsbus.common.errors import TransientError
from opsbus.common.events import Envelope
from opsbus.common.rpc import ServiceUnavailableError
from opsbus.gateway.auth import INVALID_CREDENTIAL, Ctx, Gate, unauthorized
from opsbus.gateway.context import GatewayContext
from opsbus.gateway.domain.alertmanager import AlertmanagerWebhook, MappingError, to_events
from opsbus.gateway.problems import PROBLEM_RESPONSES, ApiProblem, ProblemError
from opsbus.gateway.settings import AlertmanagerSettings

router = APIRouter(tags=["alerts"], responses=PROBLEM_RESPONSES)


class Accepted(BaseModel):
    accepted: int
    fired: int
    resolved: int
    event_ids: list[str]


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def check_credentials(settings: AlertmanagerSettings, authorization: str | None) -> None:
    if settings.bearer_token is None and (settings.username is None or settings.password is None):
        raise unauthorized("the Alertmanager receiver has no credentials configured, so it accepts nothing")
    if not authorization:
        raise unauthorized("credentials required")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and settings.bearer_token is not None:
        if _same(value.strip(), settings.bearer_token.get_secret_value()):
            return
    elif scheme.lower() == "basic" and settings.username and settings.password is not None:
        try:
            user, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise unauthorized(INVALID_CREDENTIAL) from None
        if _same(user, settings.username) & _same(password, settings.password.get_secret_value()):
            return
    raise unauthorized(INVALID_CREDENTIAL)


class _AlertmanagerCredentials(Gate):
    async def admit(self, request: Request) -> None:
        check_credentials(request.app.state.ctx.settings.gateway.alertmanager, request.headers.get("authorization"))


Alertmanager = Annotated[None, Depends(_AlertmanagerCredentials())]


@router.post("/v1/alerts/alertmanager", summary="Alertmanager webhook receiver (payload version 4)")
async def alertmanager(*, sender: Alertmanager, body: AlertmanagerWebhook, ctx: Ctx) -> Accepted:
    return await accept(ctx, lambda now: to_events(body, default_cluster=ctx.settings.cluster, now=now))


async def accept(ctx: GatewayContext, mapping: Callable[[datetime], list[Envelope]]) -> Accepted:
    """Map a receiver's payload to alert events and publish them: 422 when it cannot map (nothing is published),
    503 until JetStream stored every event, 200 with their ids after."""
    try:
        events = mapping(datetime.now(UTC))
    except MappingError as exc:
        errors = [ProblemError(pointer="#" + p.pointer, detail=p.detail) for p in exc.problems]
        raise ApiProblem(422, "some alerts cannot become opsbus events", slug="validation", errors=errors) from None
    try:
        await ctx.commands.publish_alerts(events)
    except TransientError as exc:
        raise ServiceUnavailableError(f"the event bus did not acknowledge: {exc}") from exc
    fired = sum(1 for e in events if e.verb == "fired")
    return Accepted(accepted=len(events), fired=fired, resolved=len(events) - fired, event_ids=[e.id for e in events])
