"""Authentication and the per-caller rate limit, as FastAPI dependencies.

`Authorization: Bearer opsb_...` (or `X-API-Key: opsb_...`) is an API key; any other bearer token is
validated as an OIDC JWT. Failures are 401 with `WWW-Authenticate`, never a hint which part was wrong.
After authentication the caller's token bucket is charged (429 with Retry-After when empty). `Caller`,
`Viewer`, `Operator` and `Admin` do all of that in one dependency (the last three also refuse lower roles,
403); handlers then check the namespace and cluster the operation touches.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Request
from fastapi.security import APIKeyHeader, HTTPBearer

from opsbus.gateway.context import GatewayContext
from opsbus.gateway.domain.access import Denied, Principal, Role
from opsbus.gateway.domain.ratelimit import RateLimiter
from opsbus.gateway.oidc import TokenError
from opsbus.gateway.problems import ApiProblem

_BEARER, _API_KEY = "HTTPBearer", "APIKeyHeader"  # the OpenAPI names of the two security schemes
_BEARER_DOC = "An opsbus API key (`opsb_...`) or an OIDC access token (JWT)."
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


def _token(request: Request) -> str | None:
    """The credential: `Authorization: Bearer <token>` first (as `HTTPBearer` reads it), else `X-API-Key`."""
    authorization = request.headers.get("authorization")
    if authorization:
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return credentials.strip()
    return request.headers.get("x-api-key") or None


async def authenticate(request: Request) -> Principal:
    """Who is calling, after charging their rate limit: 401 without a valid credential, 429 when over the limit."""
    ctx: GatewayContext = request.app.state.ctx
    token = _token(request)
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


class _Authenticated(HTTPBearer):
    """One dependency doing all of authentication, the rate limit and the role check.

    A chain of small dependencies (bearer scheme, API-key scheme, context, principal, role) cost FastAPI a
    resolution step each on every request. Subclassing `HTTPBearer` keeps the bearer scheme in the OpenAPI
    document; `document_api_key_scheme` adds `X-API-Key` as the alternative. Each role has one instance, so
    FastAPI's per-request dependency cache still runs this once per request.
    """

    def __init__(self, least: Role | None) -> None:
        super().__init__(auto_error=False, scheme_name=_BEARER, description=_BEARER_DOC)
        self.least = least

    async def __call__(self, request: Request) -> Principal:  # type: ignore[override]
        who = await authenticate(request)
        if self.least is not None and who.role < self.least:
            raise Denied(f"role {who.role} may not do this: it needs {self.least}")
        return who


def document_api_key_scheme(app: FastAPI) -> None:
    """Every operation that takes a bearer credential also takes `X-API-Key`; say so in the OpenAPI document."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = generate()
        schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        if _BEARER in schemes:
            schemes[_API_KEY] = _api_key.model.model_dump(mode="json", by_alias=True, exclude_none=True)
        for operation in (op for item in schema.get("paths", {}).values() for op in item.values()):
            security = operation.get("security") if isinstance(operation, dict) else None
            if security and {_BEARER: []} in security and {_API_KEY: []} not in security:
                security.append({_API_KEY: []})
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


Caller = Annotated[Principal, Depends(_Authenticated(None))]
Viewer = Annotated[Principal, Depends(_Authenticated(Role.VIEWER))]
Operator = Annotated[Principal, Depends(_Authenticated(Role.OPERATOR))]
Admin = Annotated[Principal, Depends(_Authenticated(Role.ADMIN))]

LastEventId = Annotated[str | None, Header(alias="Last-Event-ID", description="Resume after this sequence.")]
