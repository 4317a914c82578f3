"""`/v1/session`: the web console's sign-in, with the gateway as its backend-for-frontend.

`POST /v1/session` takes an API key once and answers with an HttpOnly, Secure, SameSite=Strict cookie; the
browser never keeps the key. The answer (and `GET /v1/session`) carries the CSRF token that every mutating
call made with the cookie must send as `X-CSRF-Token`. `DELETE /v1/session` signs out. Every sign-in, failed
sign-in and sign-out is an audit entry written in the transaction of the session's row (`SessionStore`).

A failed sign-in is charged to the client's address in the rate limiter, so guessing costs time as well as
being hopeless (a key's secret has 256 bits)."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.security import APIKeyCookie
from pydantic import BaseModel, Field

from opsbus.common.events import Envelope
from opsbus.common.events.payloads.audit import AuditOutcome
from opsbus.common.events.payloads.common import ResourceRef
from opsbus.gateway.auth import INVALID_CREDENTIAL, Ctx, Gate, RequestId, signed_in, unauthorized
from opsbus.gateway.context import GatewayContext
from opsbus.gateway.domain import keys
from opsbus.gateway.domain.access import Principal, Role
from opsbus.gateway.domain.ratelimit import RateLimiter
from opsbus.gateway.problems import PROBLEM_RESPONSES, ApiProblem
from opsbus.gateway.routes.keys import Identity, identity
from opsbus.gateway.sessions import COOKIE, Session, cookie_name

router = APIRouter(prefix="/v1/session", tags=["session"], responses=PROBLEM_RESPONSES)


class SignIn(BaseModel):
    api_key: str = Field(min_length=1, max_length=200, description="An opsbus API key (`opsb_...`); not kept.")


class SessionView(BaseModel):
    identity: Identity
    csrf_token: str = Field(description="Send as `X-CSRF-Token` on every mutating call made with the cookie.")
    expires_at: datetime
    jaeger_url: str | None = Field(description="Jaeger's UI, for links to an incident's trace; null if unknown.")


class _SignedIn(Gate, APIKeyCookie):  # type: ignore[misc]
    """A console session cookie is required (documented as the cookie security scheme)."""

    def __init__(self) -> None:
        super().__init__(name=COOKIE, auto_error=False, scheme_name="ConsoleSession")

    async def admit(self, request: Request) -> tuple[Session, Principal]:
        found = await signed_in(request)
        if found is None:
            raise unauthorized("authentication required: sign in to the console (no session cookie)")
        return found


SignedIn = Annotated[tuple[Session, Principal], Depends(_SignedIn())]


def _view(ctx: GatewayContext, session: Session, who: Principal) -> SessionView:
    return SessionView(
        identity=identity(who),
        csrf_token=session.csrf,
        expires_at=session.expires_at,
        jaeger_url=ctx.settings.gateway.console.jaeger_url,
    )


def entry(ctx: GatewayContext, who: Principal, action: str, name: str, *, reason: str, rid: str, **kw: Any) -> Envelope:
    target = ResourceRef(kind="ConsoleSession", name=name)
    return ctx.commands.entry(who, action=action, target=target, reason=reason, request_id=rid, **kw)


def session_cookie(request: Request, ctx: GatewayContext) -> str:
    loopback = ctx.settings.gateway.console.insecure_loopback_cookie
    return cookie_name(request.headers.get("host", ""), insecure_loopback=loopback)


def give_cookie(request: Request, response: Response, ctx: GatewayContext, session: Session, secret: str) -> None:
    """The session cookie: HttpOnly, SameSite=Strict, Secure (`__Host-`) unless loopback development."""
    name = session_cookie(request, ctx)
    response.set_cookie(
        name,
        secret,
        max_age=int((session.expires_at - session.created_at).total_seconds()),
        path="/",
        secure=name == COOKIE,
        httponly=True,
        samesite="strict",
    )
    response.headers["Cache-Control"] = "no-store"


@router.post("", status_code=status.HTTP_201_CREATED, summary="Sign in to the console with an API key")
async def sign_in(*, body: SignIn, request: Request, response: Response, ctx: Ctx, rid: RequestId) -> SessionView:
    client = request.client.host if request.client else "unknown"
    parsed = keys.parse(body.api_key.strip())
    who = await ctx.keys.authenticate(body.api_key.strip()) if parsed is not None else None
    if who is None or parsed is None:
        verdict = ctx.limiter.check(f"signin:{client}", time.monotonic())
        stranger = Principal(kind="apikey", id=parsed[0] if parsed else "unknown", role=Role.VIEWER)
        reason = f"console sign-in refused from {client}: unknown, expired or revoked API key"
        await ctx.sessions.refused(
            entry(ctx, stranger, "console.signin", "refused", reason=reason, rid=rid, outcome=AuditOutcome.DENIED)
        )
        if not verdict.allowed:
            headers = {"Retry-After": RateLimiter.retry_after_header(verdict)}
            raise ApiProblem(429, "too many failed sign-ins", slug="rate-limited", headers=headers)
        raise unauthorized(INVALID_CREDENTIAL)
    session, secret = await ctx.sessions.open(
        who,
        key_prefix=parsed[0],
        audit=lambda s: entry(ctx, who, "console.signin", s.id, reason=f"signed in from {client}", rid=rid),
    )
    give_cookie(request, response, ctx, session, secret)
    return _view(ctx, session, who)


@router.get("", summary="The console session: who you are signed in as, and its CSRF token")
async def current(*, signed: SignedIn, response: Response, ctx: Ctx) -> SessionView:
    response.headers["Cache-Control"] = "no-store"
    return _view(ctx, *signed)


@router.delete("", status_code=status.HTTP_204_NO_CONTENT, summary="Sign out of the console (needs X-CSRF-Token)")
async def sign_out(*, signed: SignedIn, request: Request, ctx: Ctx, rid: RequestId) -> Response:
    session, who = signed
    secret = request.cookies.get(session_cookie(request, ctx), "")
    await ctx.sessions.close(
        secret, session, audit=lambda s: entry(ctx, who, "console.signout", s.id, reason="signed out", rid=rid)
    )
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    name = session_cookie(request, ctx)
    response.delete_cookie(name, path="/", secure=name == COOKIE, httponly=True, samesite="strict")
    return response
