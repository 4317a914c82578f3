"""Authentication and the per-caller rate limit, as FastAPI dependencies.

`Authorization: Bearer opsb_...` (or `X-API-Key: opsb_...`) is an API key; any other bearer token is
validated as an OIDC JWT. Failures are 401 with `WWW-Authenticate`, never a hint which part was wrong.
After authentication the caller's token bucket is charged (429 with Retry-After when empty). Handlers then
call `authorize()` with the role the operation needs and the namespace and cluster it touches.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from opsbus.gateway.context import GatewayContext
from opsbus.gateway.domain.access import Denied, Principal, Role
from opsbus.gateway.domain.ratelimit import RateLimiter
from opsbus.gateway.oidc import TokenError
from opsbus.gateway.problems import ApiProblem

_bearer = HTTPBearer(auto_error=False, description="An opsbus API key (`opsb_...`) or an OIDC access token (JWT).")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="An opsbus API key (`opsb_...`).")
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="opsbus"'}


# Dependencies are `async def` even when they do not await: FastAPI runs a plain `def` dependency in a worker
# thread, a hop per dependency per request for nothing.
async def context(request: Request) -> GatewayContext:
    ctx: GatewayContext = request.app.state.ctx
    return ctx


Ctx = Annotated[GatewayContext, Depends(context)]


async def request_id(request: Request) -> str:
    return str(getattr(request.state, "request_id", "") or "")


RequestId = Annotated[str, Depends(request_id)]


def unauthorized(detail: str) -> ApiProblem:
    return ApiProblem(401, detail, slug="unauthorized", headers=_CHALLENGE)


async def principal(
    ctx: Ctx,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
) -> Principal:
    token = bearer.credentials if bearer is not None else api_key
    if not token:
        raise unauthorized("authentication required: send `Authorization: Bearer <API key or token>`")
    who: Principal | None
    if token.startswith("opsb_"):
        who = await ctx.keys.authenticate(token)
        if who is None:
            raise unauthorized("the API key is unknown, expired or revoked")
    else:
        try:
            who = await ctx.jwt.verify(token)
        except TokenError as exc:
            raise unauthorized(str(exc)) from None
    verdict = ctx.limiter.check(who.label, time.monotonic())
    if not verdict.allowed:
        raise ApiProblem(
            429,
            f"rate limit of {ctx.limiter.rate:g} requests/s (burst {ctx.limiter.burst}) exceeded",
            slug="rate-limited",
            headers={"Retry-After": RateLimiter.retry_after_header(verdict)},
        )
    return who


Caller = Annotated[Principal, Depends(principal)]


def at_least(role: Role) -> object:
    """A dependency refusing callers below `role` before the handler runs (the handler still checks scope)."""

    async def check(who: Caller) -> Principal:
        if who.role < role:
            raise Denied(f"role {who.role} may not do this: it needs {role}")
        return who

    return Depends(check)


Viewer = Annotated[Principal, at_least(Role.VIEWER)]
Operator = Annotated[Principal, at_least(Role.OPERATOR)]
Admin = Annotated[Principal, at_least(Role.ADMIN)]

LastEventId = Annotated[str | None, Header(alias="Last-Event-ID", description="Resume after this sequence.")]
