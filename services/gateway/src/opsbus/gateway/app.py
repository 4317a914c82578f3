"""The FastAPI application: `/v1` routes, the web console at `/` (console_assets.py), problem+json errors, the
request-id/body-limit/metrics middleware, CORS only when origins are configured. `create_app(ctx)` is all a
test needs to serve the real gateway.

Two choices here are for throughput (bench/gateway_load.py, docs/benchmarks.md):

* The routes of every module sit directly on the app's router. `include_router` would put each module behind
  a lazily resolved sub-router that FastAPI walks twice per request (match, then handle), re-checking every
  route's version on the way: about a seventh of the CPU of `GET /v1/whoami`. Each is a `QuickRoute`, which
  turns a path away by its literal part before the regular expression (the same share again).
* FastAPI's own OpenTelemetry instrumentation records one server span per request, and only when the gateway
  exports traces (`ctx.tracer_provider` set, i.e. `telemetry.otlp_endpoint` configured). Without an exporter
  the spans went nowhere and cost about a quarter of the CPU per request. Per-operation spans (dependency
  solving, endpoint, serialisation) are off either way: the server span is the request's trace, and events
  published while it is current carry it (`traceparent`), which links the request to the incident's trace.
  Without an exporter, GatewayMiddleware still makes a caller's `traceparent` current, so the events a
  request publishes stay in the caller's trace even though the gateway adds no span of its own.
* `GET /v1/whoami` and `GET /v1/audit` are answered by `routes/fastpath.py` before the router, with the same
  gates, validation, scope checks and errors, without FastAPI's per-request dependency solving and response
  model (the routes stay FastAPI's for the OpenAPI document).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute
from fastapi.telemetry import TelemetryConfig
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

from opsbus.gateway.auth import authenticate_before_validation, document_api_key_scheme
from opsbus.gateway.console_assets import console_routes
from opsbus.gateway.context import GatewayContext
from opsbus.gateway.middleware import GatewayMiddleware
from opsbus.gateway.problems import install
from opsbus.gateway.routes import (
    alerts,
    audit_export,
    changes,
    deployments,
    events,
    feishu,
    keys,
    live,
    notifications,
    receiver_secrets,
    recommendations,
    recoveries,
    session,
    slack,
    sso,
    system,
    trail,
    users,
    zabbix,
)
from opsbus.gateway.routes.fastpath import FastReads, fast_routes

DESCRIPTION = """
The front door of opsbus for other systems, teams and operators.

**Authentication**: `Authorization: Bearer <token>` with an opsbus API key (`opsb_...`, or in `X-API-Key`) or
an OIDC access token (JWT). **Authorization**: roles `viewer` < `operator` < `admin`, each limited to
namespaces and clusters; you never see or touch objects outside your scope.

**Errors** are RFC 9457 `application/problem+json`; validation errors (422) list JSON pointers to the
fields at fault. Too many requests: 429 with `Retry-After`. A service behind the gateway not answering:
503 with `Retry-After`.
"""


ROUTERS: tuple[APIRouter, ...] = (
    system.router,
    keys.router,
    deployments.router,
    recoveries.router,
    recommendations.router,
    notifications.router,
    receiver_secrets.router,
    trail.router,
    audit_export.router,
    changes.router,
    alerts.router,
    events.router,
    keys.whoami_router,
    session.router,
    users.router,
    sso.router,
    live.router,
    feishu.router,
    slack.router,
    zabbix.router,
)


def telemetry_config(ctx: GatewayContext) -> TelemetryConfig:
    """One server span per request when traces are exported; nothing at all (not even unsampled spans) when not."""
    exporting = ctx.tracer_provider is not None
    return {
        "tracer_provider": ctx.tracer_provider,
        "tracing": exporting,
        "operation_spans": False,
        "metrics": False,  # request metrics are Prometheus's (GatewayMiddleware), not OpenTelemetry's
        "logs": False,
        "auto_configure": False,
    }


class QuickRoute(APIRoute):
    """An `APIRoute` that turns away a request whose path cannot be its own before asking its regular expression.

    Starlette tries the routes in order, and every `matches` that fails still resolved the route path and ran
    the regular expression: `GET /v1/whoami`, the 48th route, paid for 47 (a seventh of its CPU). A route's
    path up to its first parameter is a literal every path it matches contains, so a path without it is
    `Match.NONE` at once; any other path is judged by `APIRoute.matches` as before (order, 405s unchanged).
    """

    literal: str

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http" and self.literal not in scope["path"]:
            return Match.NONE, {}
        return super().matches(scope)


def quick(route: APIRoute) -> QuickRoute:
    route.__class__ = QuickRoute  # the same route (endpoint, dependencies, OpenAPI), its `matches` overridden
    assert isinstance(route, QuickRoute)
    route.literal = route.path.split("{", 1)[0]
    return route


def flat_routes() -> list[BaseRoute]:
    """Every module's routes, each complete in itself (path, dependencies, the router's problem responses)."""
    routes: list[BaseRoute] = []
    for router in ROUTERS:
        for route in router.routes:
            if not isinstance(route, APIRoute):
                raise TypeError(f"{route!r} in a gateway router is not an APIRoute")
            routes.append(quick(route))
    return routes


def create_app(ctx: GatewayContext) -> FastAPI:
    app = FastAPI(
        title="opsbus gateway",
        version="0.1.0",
        description=DESCRIPTION,
        openapi_url="/v1/openapi.json",
        docs_url="/v1/docs",
        redoc_url=None,
        routes=flat_routes(),
        telemetry=telemetry_config(ctx),
    )
    app.state.ctx = ctx
    app.router.routes.extend(console_routes(ctx.settings.gateway.console.assets_dir))  # after the API's
    install(app, retry_after=ctx.settings.gateway.retry_after_seconds)
    authenticate_before_validation(app)  # after install: it wraps install's validation handler
    document_api_key_scheme(app)
    # innermost of the middleware: the fast reads get the request id, metrics, CORS and the body limit too
    app.add_middleware(FastReads, routes=fast_routes(app.router.routes), handlers=app.exception_handlers)
    if ctx.settings.gateway.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=ctx.settings.gateway.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-API-Key", "Last-Event-ID", "X-Request-Id"],
        )
    options: dict[str, Any] = {
        "max_body": ctx.settings.gateway.max_body_bytes,
        "registry": ctx.registry,
        "carry_trace": ctx.tracer_provider is None,  # FastAPI's server span does it when exporting
    }
    app.add_middleware(GatewayMiddleware, **options)
    return app
