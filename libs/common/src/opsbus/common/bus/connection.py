"""Connecting to NATS: authenticated, reconnecting forever by default, with every state change logged.

A service keeps one connection for publishing, consuming and request-reply. Reconnects are transparent to
callers: pending JetStream publishes time out and are retried with the same `Nats-Msg-Id`.
"""

from __future__ import annotations

import logging
from typing import Any

import nats
from nats.aio.client import Client

from opsbus.common.errors import TransientError
from opsbus.common.settings import NatsSettings

log = logging.getLogger(__name__)


async def connect(settings: NatsSettings, *, name: str) -> Client:
    """Connect to the servers in `settings`; raises `TransientError` if none answers in time."""

    async def on_error(exc: Exception) -> None:
        log.warning("nats error: %s", exc)

    async def on_disconnected() -> None:
        if not (client.is_closed or client.is_draining):
            log.warning("nats disconnected; reconnecting")

    async def on_reconnected() -> None:
        log.info("nats reconnected to %s", client.connected_url.netloc if client.connected_url else "?")

    async def on_closed() -> None:
        log.info("nats connection closed")

    options: dict[str, Any] = {
        "servers": settings.servers,
        "name": name,
        "connect_timeout": settings.connect_timeout,
        "reconnect_time_wait": settings.reconnect_wait,
        "max_reconnect_attempts": settings.max_reconnect_attempts,
        "allow_reconnect": True,
        "error_cb": on_error,
        "disconnected_cb": on_disconnected,
        "reconnected_cb": on_reconnected,
        "closed_cb": on_closed,
        "pending_size": 64 * 1024 * 1024,
    }
    if settings.user:
        options["user"] = settings.user
        options["password"] = settings.password.get_secret_value() if settings.password else None
    if settings.nkey_seed_file:
        options["nkeys_seed"] = settings.nkey_seed_file
    client = Client()
    try:
        await client.connect(**options)
    except (OSError, nats.errors.NoServersError, TimeoutError) as exc:
        raise TransientError(f"cannot reach NATS at {', '.join(settings.servers)}: {exc}") from exc
    return client
