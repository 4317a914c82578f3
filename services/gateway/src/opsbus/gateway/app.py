"""The FastAPI application: `/v1` routes, problem+json errors, the request-id/body-limit/metrics middleware,
CORS only when origins are configured. `create_app(ctx)` is all a test needs to serve the real gateway."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from opsbus.gateway.context import GatewayContext
from opsbus.gateway.middleware import GatewayMiddleware
from opsbus.gateway.problems import install
from opsbus.gateway.routes import (
    alerts,
    deployments,
    events,
    keys,
    notifications,
    recommendations,
    recoveries,
    system,
    trail,
)

DESCRIPTION = """
The front door of opsbus for other systems, teams and operators.

**Authentication**: `Authorization: Bearer <token>` with an opsbus API key (`opsb_...`, or in `X-API-Key`) or
an OIDC access token (JWT). **Authorization**: roles `viewer` < `operator` < `admin`, each limited to
namespaces and clusters; you never see or touch objects outside your scope.

**Errors** are RFC 9457 `application/problem+json`; validation errors (422) list JSON pointers to the
fields at fault. Too many requests: 429 with `Retry-After`. A service behind the gateway not answering:
503 with `Retry-After`.
"""


def create_app(ctx: GatewayContext) -> FastAPI:
    app = FastAPI(
        title="opsbus gateway",
        version="0.1.0",
        description=DESCRIPTION,
        openapi_url="/v1/openapi.json",
        docs_url="/v1/docs",
        redoc_url=None,
    )
    app.state.ctx = ctx
    install(app, retry_after=ctx.settings.gateway.retry_after_seconds)
    for module in (system, keys, deployments, recoveries, recommendations, notifications, trail, alerts, events):
        app.include_router(module.router)
    app.include_router(keys.whoami_router)
    if ctx.settings.gateway.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=ctx.settings.gateway.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-API-Key", "Last-Event-ID", "X-Request-Id"],
        )
    options: dict[str, Any] = {"max_body": ctx.settings.gateway.max_body_bytes, "registry": ctx.registry}
    app.add_middleware(GatewayMiddleware, **options)
    return app
