"""Authentication and the per-caller rate limit, as FastAPI dependencies.

`Authorization: Bearer opsb_...` (or `X-API-Key: opsb_...`) is an API key; a bearer token shaped like a JWT
is validated as an OIDC JWT. Failures are 401 with `WWW-Authenticate`. Every credential that is unknown,
malformed, expired or revoked gets the same detail, `INVALID_CREDENTIAL`: the answer tells a caller nothing
about which kinds of credential this gateway accepts (whether JWTs are enabled, what an API key looks like)
or which part was wrong. The precise reason is logged with the request id, for the operator who has it.
After authentication the caller's token bucket is charged (429 with Retry-After when empty). `Caller`,
`Viewer`, `Operator` and `Admin` do all of that in one dependency (the last three also refuse lower roles,
403); handlers then check the namespace and cluster the operation touches.

Authentication comes first, before anything about the request is judged. FastAPI solves dependencies before
it validates parameters and the body, but it parses a JSON body before any dependency runs, so a malformed
body would be answered 400/422 to anyone. Every dependency that authenticates is a `Gate`, and
`authenticate_before_validation` makes a request that failed validation pass its route's gate first: an
unauthenticated caller learns 401, never what the route expects.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import time
from collections.abc import Awaitable, Iterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader, HTTPBearer
from starlette.responses import Response

from opsbus.gateway.context import GatewayContext
from opsbus.gateway.domain import keys
from opsbus.gateway.domain.access import Denied, Principal, Role
from opsbus.gateway.domain.ratelimit import RateLimiter
from opsbus.gateway.oidc import TokenError
from opsbus.gateway.problems import ApiProblem
from opsbus.gateway.sessions import Session, cookie_name

_BEARER, _API_KEY = "HTTPBearer", "APIKeyHeader"  # the OpenAPI names of the two security schemes
_BEARER_DOC = "An opsbus API key (`opsb_...`) or an OIDC access token (JWT)."
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="An opsbus API key (`opsb_...`).")
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="opsbus"'}
_KEY_START = keys.KEY_PREFIX + "_"
_JWT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
INVALID_CREDENTIAL = (
    "the credential is not valid (unknown, malformed, expired or revoked); "
    "the gateway's log gives the reason under this request's id"
)
log = logging.getLogger("opsbus.gateway.auth")


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


def invalid_credential(request: Request, reason: str) -> ApiProblem:
    """The one 401 for a credential that is not valid; `reason` goes to the log only."""
    log.info("credential refused (request %s): %s", getattr(request.state, "request_id", "-"), reason)
    return unauthorized(INVALID_CREDENTIAL)


def _token(request: Request) -> tuple[str, bool] | None:
    """The credential and whether it came from `X-API-Key`: `Authorization: Bearer <token>` first (as
    `HTTPBearer` reads it), else `X-API-Key`."""
    authorization = request.headers.get("authorization")
    if authorization:
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return credentials.strip(), False
    key = (request.headers.get("x-api-key") or "").strip()
    return (key, True) if key else None


def is_jwt(token: str) -> bool:
    """Whether `token` is shaped like a JWT: three base64url parts, the first a JSON object naming `alg`."""
    if not _JWT.fullmatch(token):
        return False
    head = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (binascii.Error, ValueError):
        return False
    return isinstance(header, dict) and isinstance(header.get("alg"), str)


_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


def session_secret(request: Request) -> str | None:
    """The console's session cookie, if the request carries the one this host may set."""
    ctx: GatewayContext = request.app.state.ctx
    name = cookie_name(
        request.headers.get("host", ""), insecure_loopback=ctx.settings.gateway.console.insecure_loopback_cookie
    )
    return request.cookies.get(name)


async def signed_in(request: Request) -> tuple[Session, Principal] | None:
    """The console session of the request and who it speaks for; None without a session cookie.

    401 when the cookie names no live session or its API key is no longer usable; 403 when a mutating call
    does not echo the session's CSRF token in `X-CSRF-Token`."""
    ctx: GatewayContext = request.app.state.ctx
    secret = session_secret(request)
    if not secret:
        return None
    session = await ctx.sessions.find(secret)
    if session is None:
        raise unauthorized("invalid session credentials: expired or signed out, sign in again")
    if request.method not in _SAFE and not session.csrf_matches(request.headers.get("x-csrf-token")):
        raise ApiProblem(403, "CSRF token missing or wrong: send the session's `X-CSRF-Token`", slug="csrf")
    if session.key_prefix is None:
        return session, session.principal()
    who = await ctx.keys.current(session.key_prefix)
    if who is None:
        raise unauthorized("invalid session credentials: its API key is expired or revoked, sign in again")
    return session, who


async def authenticate(request: Request) -> Principal:
    """Who is calling, after charging their rate limit: 401 without a valid credential, 429 when over the limit.
    An `Authorization`/`X-API-Key` credential wins over a console session cookie."""
    ctx: GatewayContext = request.app.state.ctx
    credential = _token(request)
    who: Principal | None
    if credential is None:
        found = await signed_in(request)
        if found is None:
            raise unauthorized("authentication required: send `Authorization: Bearer <API key or token>`")
        request.state.session = found[0]
        return _charged(ctx, found[1])
    token, from_key_header = credential
    if from_key_header or token.startswith(_KEY_START):
        if keys.parse(token) is None:
            raise invalid_credential(request, f"not an opsbus API key (`{_KEY_START}...`)")
        who = await ctx.keys.authenticate(token)
        if who is None:
            raise invalid_credential(request, "API key unknown, expired or revoked")
    elif not is_jwt(token):
        raise invalid_credential(request, f"bearer token neither an opsbus API key (`{_KEY_START}...`) nor a JWT")
    else:
        try:
            who = await ctx.jwt.verify(token)
        except TokenError as exc:
            raise invalid_credential(request, f"JWT refused: {exc}") from None
    return _charged(ctx, who)


def _charged(ctx: GatewayContext, who: Principal) -> Principal:
    verdict = ctx.limiter.check(who.label, time.monotonic())
    if not verdict.allowed:
        raise ApiProblem(
            429,
            f"rate limit of {ctx.limiter.rate:g} requests/s (burst {ctx.limiter.burst}) exceeded",
            slug="rate-limited",
            headers={"Retry-After": RateLimiter.retry_after_header(verdict)},
        )
    return who


class Gate:
    """A dependency that decides whether the caller may use the route at all (credentials, role).

    Subclasses implement `admit`; calling the gate records on the request that it ran, so
    `authenticate_before_validation` runs it only when FastAPI refused the request before it could.
    """

    async def __call__(self, request: Request) -> Any:
        request.state.gated = True
        return await self.admit(request)

    async def admit(self, request: Request) -> Any:
        raise NotImplementedError


def _gates(dependant: Dependant) -> Iterator[Gate]:
    for dependency in dependant.dependencies:
        if isinstance(dependency.call, Gate):
            yield dependency.call
        yield from _gates(dependency)


def authenticate_before_validation(app: FastAPI) -> None:
    """Answer a request that failed validation only after its route's gate admitted the caller."""
    shown = app.exception_handlers[RequestValidationError]

    async def invalid(request: Request, exc: Exception) -> Response:
        route = request.scope.get("route")
        if isinstance(route, APIRoute) and not getattr(request.state, "gated", False):
            for gate in _gates(route.dependant):
                try:
                    await gate(request)
                except (ApiProblem, Denied) as refused:
                    return await _answer(app.exception_handlers[type(refused)](request, refused))
        return await _answer(shown(request, exc))

    app.add_exception_handler(RequestValidationError, invalid)


async def _answer(result: Response | Awaitable[Response]) -> Response:
    return result if isinstance(result, Response) else await result


# HTTPBearer's own __call__ returns the credentials; the gate's (first in the MRO) returns the principal.
class _Authenticated(Gate, HTTPBearer):  # type: ignore[misc]
    """One dependency doing all of authentication, the rate limit and the role check.

    A chain of small dependencies (bearer scheme, API-key scheme, context, principal, role) cost FastAPI a
    resolution step each on every request. Subclassing `HTTPBearer` keeps the bearer scheme in the OpenAPI
    document; `document_api_key_scheme` adds `X-API-Key` as the alternative. Each role has one instance, so
    FastAPI's per-request dependency cache still runs this once per request.
    """

    def __init__(self, least: Role | None) -> None:
        super().__init__(auto_error=False, scheme_name=_BEARER, description=_BEARER_DOC)
        self.least = least

    async def admit(self, request: Request) -> Principal:
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


CALLER, VIEWER = _Authenticated(None), _Authenticated(Role.VIEWER)  # also routes/fastpath.py's gates
Caller = Annotated[Principal, Depends(CALLER)]
Viewer = Annotated[Principal, Depends(VIEWER)]
Operator = Annotated[Principal, Depends(_Authenticated(Role.OPERATOR))]
Admin = Annotated[Principal, Depends(_Authenticated(Role.ADMIN))]

LastEventId = Annotated[str | None, Header(alias="Last-Event-ID", description="Resume after this sequence.")]
