"""Runs the real gateway (runtime, setup, uvicorn on 127.0.0.1:0) against the test NATS and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry

from opsbus.common.runtime import Runtime
from opsbus.gateway.domain.access import ALL, Role
from opsbus.gateway.service import Gateway, build
from opsbus.gateway.settings import GatewaySettings


@dataclass
class GatewayStack:
    database_url: str
    nats_url: str
    running: list[tuple[Runtime[GatewaySettings], asyncio.Task[int]]] = field(default_factory=list)
    gateway: Gateway | None = None
    url: str = ""

    async def start(
        self, *, tracer_provider: TracerProvider | None = None, telemetry: dict[str, Any] | None = None, **options: Any
    ) -> Gateway:
        settings = GatewaySettings(
            environment="test",
            cluster="prod",
            instance="g0",
            nats={"url": self.nats_url},
            database={"url": self.database_url, "pool_size": 5},
            http={"port": 0},
            shutdown_grace_seconds=5.0,
            telemetry=telemetry or {},
            gateway={"port": 0, "rpc_timeout_seconds": 1.0, "sse_heartbeat_seconds": 1.0, **options},
        )
        rt: Runtime[GatewaySettings] = Runtime(
            "gateway", settings, registry=CollectorRegistry(), tracer_provider=tracer_provider
        )
        made: asyncio.Future[Gateway] = asyncio.get_running_loop().create_future()

        async def wire(runtime: Runtime[GatewaySettings]) -> None:
            made.set_result(await build(runtime))

        task = asyncio.create_task(rt.run(wire, install_signals=False), name="gateway")
        self.running.append((rt, task))
        waiting: list[asyncio.Future[Any]] = [made, task]
        done, _ = await asyncio.wait(waiting, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        if made not in done:
            raise RuntimeError(f"gateway did not start: {task.exception() if task.done() else 'timeout'}")
        self.gateway = made.result()
        self.url = f"http://127.0.0.1:{self.gateway.port}"
        for _ in range(500):
            if not await rt.readiness():
                break
            await asyncio.sleep(0.02)
        return self.gateway

    async def key(
        self, role: str = "admin", namespaces: list[str] | None = None, clusters: list[str] | None = None, **kw: Any
    ) -> str:
        assert self.gateway is not None
        _, token = await self.gateway.ctx.keys.create(
            name=f"test-{role}",
            role=Role.parse(role),
            namespaces=namespaces or [ALL],
            clusters=clusters or [ALL],
            created_by="test",
            **kw,
        )
        return token

    def client(self, token: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=10.0)

    async def stop_all(self) -> None:
        for rt, task in self.running:
            if not task.done():
                rt.request_shutdown()
                assert await task == 0


async def gateway_stack(database_url: str, nats_url: str) -> AsyncIterator[GatewayStack]:
    from opsbus.common.settings import DatabaseSettings  # noqa: PLC0415
    from opsbus.common.store import upgrade  # noqa: PLC0415
    from opsbus.gateway import store  # noqa: PLC0415

    await upgrade(DatabaseSettings.model_validate({"url": database_url}), store.MIGRATIONS, store.SCHEMA)
    stack = GatewayStack(database_url, nats_url)
    yield stack
    await stack.stop_all()
