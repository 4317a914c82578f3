"""Everything a request handler may use, built once by `service.setup` (or a test) and put on the app."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from opentelemetry.trace import TracerProvider
from prometheus_client import CollectorRegistry

from opsbus.gateway.commands import Commands, Services
from opsbus.gateway.domain.ratelimit import RateLimiter
from opsbus.gateway.history import EventHistory
from opsbus.gateway.keystore import KeyStore
from opsbus.gateway.oidc import JwtVerifier
from opsbus.gateway.readmodel import ReadModel
from opsbus.gateway.sessions import SessionStore
from opsbus.gateway.settings import GatewaySettings
from opsbus.gateway.sso import OidcClient
from opsbus.gateway.streaming import EventStreams
from opsbus.gateway.timeline import Timeline


@dataclass
class GatewayContext:
    settings: GatewaySettings
    keys: KeyStore
    jwt: JwtVerifier
    limiter: RateLimiter
    reads: ReadModel
    commands: Commands
    services: Services
    streams: EventStreams
    history: EventHistory
    registry: CollectorRegistry
    readiness: Callable[[], Awaitable[dict[str, str]]]
    timeline: Timeline
    sessions: SessionStore
    # set only when traces are exported: then every request is one server span (see app.telemetry_config)
    tracer_provider: TracerProvider | None = None
    # set only when OIDC sign-in is configured (`gateway.oidc.sign_in_enabled`): the console offers SSO
    sso: OidcClient | None = None
