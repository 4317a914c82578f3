"""How `create_app` wires FastAPI: routes flat on the app's router, request tracing only when exporting, and
both security schemes documented on every authenticated operation (pure: no server, no I/O)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry

from opsbus.gateway.app import create_app, telemetry_config
from opsbus.gateway.context import GatewayContext
from opsbus.gateway.settings import GatewaySettings

# the webhooks have their own auth: Alertmanager's credentials, the Zabbix media type's token, Slack's signature,
# Feishu's token and signature
UNAUTHENTICATED = {
    "/healthz",
    "/readyz",
    "/metrics",
    "/v1/alerts/alertmanager",
    "/v1/alerts/zabbix",
    "/v1/integrations/slack/interactions",
    "/v1/integrations/feishu/card-actions",
}
# Signing in is how a console gets a session: these take no credential scheme (POST /v1/session takes the key in
# its body; the OIDC pair is the provider's redirect flow).
SIGN_IN = {("post", "/v1/session"), ("get", "/v1/session/methods"), ("get", "/v1/session/oidc/login")}
SIGN_IN |= {("get", "/v1/session/oidc/callback")}
# The console's own session is read and ended with its cookie alone.
SESSION = {("get", "/v1/session"), ("delete", "/v1/session")}


def app(tracer_provider: TracerProvider | None = None) -> FastAPI:
    settings = GatewaySettings.model_validate({"environment": "test", "cluster": "prod"})
    ctx = SimpleNamespace(settings=settings, registry=CollectorRegistry(), tracer_provider=tracer_provider)
    return create_app(cast(GatewayContext, ctx))


def test_without_an_exporter_fastapi_records_no_spans_at_all() -> None:
    ctx = cast(GatewayContext, SimpleNamespace(tracer_provider=None))
    config = telemetry_config(ctx)
    assert config["tracing"] is False and config["metrics"] is False and config["logs"] is False
    assert config["tracer_provider"] is None


def test_with_an_exporter_each_request_is_one_server_span_of_that_provider() -> None:
    provider = TracerProvider()
    try:
        config = telemetry_config(cast(GatewayContext, SimpleNamespace(tracer_provider=provider)))
        assert config["tracing"] is True and config["tracer_provider"] is provider
        assert config["operation_spans"] is False
    finally:
        provider.shutdown()


def test_every_operation_is_a_route_of_the_app_itself() -> None:
    routes = app().router.routes
    paths = {r.path for r in routes if isinstance(r, APIRoute)}
    assert {"/v1/whoami", "/v1/audit", "/v1/deployments", "/v1/events/stream", "/healthz"} <= paths
    # nothing nested: no included sub-router for FastAPI to walk on each request
    others = {getattr(r, "path", "") for r in routes if not isinstance(r, APIRoute)}
    # FastAPI's own pages, then the console's built assets and its client-side routes (plain routes, not routers)
    assert others == {"/v1/openapi.json", "/v1/docs", "/docs/oauth2-redirect", "/assets/{name:path}", "/{path:path}"}


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return app().openapi()


def test_both_security_schemes_are_documented(spec: dict[str, Any]) -> None:
    schemes = spec["components"]["securitySchemes"]
    assert schemes["HTTPBearer"]["type"] == "http" and schemes["HTTPBearer"]["scheme"] == "bearer"
    assert schemes["APIKeyHeader"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "An opsbus API key (`opsb_...`).",
    }


def test_every_authenticated_operation_takes_either_scheme(spec: dict[str, Any]) -> None:
    checked = 0
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if path in UNAUTHENTICATED or (method, path) in SIGN_IN:
                assert "security" not in operation, (method, path)
                continue
            if (method, path) in SESSION:
                assert operation["security"] == [{"ConsoleSession": []}], (method, path)
                continue
            assert operation["security"] == [{"HTTPBearer": []}, {"APIKeyHeader": []}], (method, path)
            assert "401" in operation["responses"] and "403" in operation["responses"], (method, path)
            checked += 1
    assert checked >= 30
