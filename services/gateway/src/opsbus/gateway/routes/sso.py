"""`/v1/session/oidc/*`: "Sign in with SSO", the console's OIDC sign-in with the gateway as backend-for-frontend.

`GET /v1/session/methods` (public) tells the sign-in page which ways are offered. `login` sends the browser to
the identity provider with state, nonce and a PKCE challenge, sealing them in a short-lived signed HttpOnly
cookie (SameSite=Lax: it must come back on the provider's top-level redirect). `callback` checks the state,
exchanges the code, validates the ID token (JWKS signature, issuer, audience = client id, nonce) and maps its
claims to a role and namespaces exactly as for bearer JWTs; then it opens the same server-side session as an
API-key sign-in and lands the browser in the console. A refused callback is a 400 problem and an audited
failed sign-in; MFA and the like are the provider's to enforce (`gateway.oidc.acr_values`).
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field

from opsbus.common.events.payloads.audit import AuditOutcome
from opsbus.gateway.auth import Ctx, RequestId
from opsbus.gateway.context import GatewayContext
from opsbus.gateway.domain.access import Principal, Role
from opsbus.gateway.oidc import TokenError
from opsbus.gateway.problems import PROBLEM_RESPONSES, ApiProblem
from opsbus.gateway.routes.session import entry, give_cookie, session_cookie
from opsbus.gateway.sessions import COOKIE
from opsbus.gateway.sso import FLOW_SECONDS, FlowError, OidcClient, ProviderUnavailable

router = APIRouter(prefix="/v1/session", tags=["session"], responses=PROBLEM_RESPONSES)

CALLBACK = "/v1/session/oidc/callback"


class SignInMethods(BaseModel):
    api_key: bool = Field(description="Sign-in with an API key (always offered).")
    oidc: bool = Field(description="Sign-in with the identity provider (SSO) is configured.")


def _flow_cookie(request: Request, ctx: GatewayContext) -> str:
    return "__Host-opsbus_oidc" if session_cookie(request, ctx) == COOKIE else "opsbus_oidc"


def _redirect_uri(request: Request, ctx: GatewayContext) -> str:
    base = ctx.settings.gateway.public_url or str(request.base_url)
    return base.rstrip("/") + CALLBACK


def _sso(ctx: GatewayContext) -> OidcClient:
    if ctx.sso is None:
        raise ApiProblem(404, "SSO sign-in is not configured on this gateway (gateway.oidc.client_id)")
    return ctx.sso


@router.get("/methods", summary="How one may sign in to the console (public)")
async def methods(*, ctx: Ctx) -> SignInMethods:
    return SignInMethods(api_key=True, oidc=ctx.sso is not None)


@router.get("/oidc/login", status_code=302, summary="Sign in with SSO: go to the identity provider")
async def login(*, request: Request, ctx: Ctx, next: str | None = None) -> Response:
    sso = _sso(ctx)
    try:
        url, flow = await sso.start(_redirect_uri(request, ctx), next)
    except ProviderUnavailable as exc:
        raise ApiProblem(502, str(exc), slug="identity-provider") from exc
    response = RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})
    name = _flow_cookie(request, ctx)
    response.set_cookie(
        name,
        sso.seal.seal(flow),
        max_age=FLOW_SECONDS,
        path="/",
        secure=name != "opsbus_oidc",
        httponly=True,
        samesite="lax",
    )
    return response


async def _refuse(ctx: GatewayContext, request: Request, rid: str, status: int, why: str) -> ApiProblem:
    client = request.client.host if request.client else "unknown"
    stranger = Principal(kind="user", id="unknown", role=Role.VIEWER)
    reason = f"console SSO sign-in refused from {client}: {why}"
    await ctx.sessions.refused(
        entry(ctx, stranger, "console.signin", "refused", reason=reason, rid=rid, outcome=AuditOutcome.DENIED)
    )
    return ApiProblem(status, f"SSO sign-in refused: {why}", slug="sso-refused")


@router.get("/oidc/callback", summary="The identity provider's redirect back: opens a console session")
async def callback(
    *,
    request: Request,
    ctx: Ctx,
    rid: RequestId,
    state: str | None = None,
    code: str | None = None,
    error: str | None = None,
) -> Response:
    sso = _sso(ctx)
    name = _flow_cookie(request, ctx)
    redirect_uri = _redirect_uri(request, ctx)
    try:
        flow = sso.seal.open(request.cookies.get(name))
        if error is not None:
            raise FlowError(f"the identity provider answered {error[:64]!r}")
        if state is None or not _same(state, flow.state):
            raise FlowError("the state does not match this browser's sign-in")
        if not code:
            raise FlowError("the identity provider sent no code")
        id_token = await sso.finish(redirect_uri, flow, code)
        claims = await ctx.jwt.id_token_claims(id_token, audience=sso.settings.client_id or "", nonce=flow.nonce)
    except ProviderUnavailable as exc:
        raise ApiProblem(502, str(exc), slug="identity-provider") from exc
    except (FlowError, TokenError) as exc:
        raise await _refuse(ctx, request, rid, 400, str(exc)) from exc
    try:
        who = ctx.jwt.principal(claims)
    except TokenError as exc:
        raise await _refuse(ctx, request, rid, 403, str(exc)) from exc
    client = request.client.host if request.client else "unknown"
    session, secret = await ctx.sessions.open(
        who,
        key_prefix=None,
        audit=lambda s: entry(ctx, who, "console.signin", s.id, reason=f"signed in with SSO from {client}", rid=rid),
    )
    response = RedirectResponse(flow.next, status_code=303)
    give_cookie(request, response, ctx, session, secret)
    response.delete_cookie(name, path="/", secure=name != "opsbus_oidc", httponly=True, samesite="lax")
    return response


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
