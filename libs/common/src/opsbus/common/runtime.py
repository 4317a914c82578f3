"""The service lifecycle every opsbus process shares: start, health and readiness, signals, ordered shutdown.

    async def setup(rt: Runtime) -> None:
        bus = await Bus.connect(rt.settings.nats, service=rt.name, registry=rt.registry, ...)
        rt.add_check("nats", lambda: bus.connected)
        rt.on_shutdown(bus.close)          # closers run last-registered-first
        bus.consumer(spec, handler); await bus.start()

    sys.exit(run_service("healer", settings, setup))

`/healthz` answers 200 while the event loop is alive (liveness). `/readyz` answers 200 only after `setup`
finished and while every readiness check passes, 503 with the failing checks otherwise (it turns 503 as soon
as shutdown begins, so load balancers stop sending work). `/metrics` exposes the injected registry.

On SIGTERM or SIGINT: readiness drops, then the closers run in reverse order of registration (consumers
stop pulling and finish in-flight work, publishes flush, connections close), each within the grace period,
and the process exits 0. A second signal exits at once with 130.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import signal
import socket
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar

import uvicorn
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from opsbus.common.settings import ServiceSettings
from opsbus.common.telemetry.metrics import render
from opsbus.common.telemetry.tracing import build_tracer_provider

if TYPE_CHECKING:  # imported where used: a service without a database (the watcher) never loads SQLAlchemy
    from opsbus.common.bus import Bus
    from opsbus.common.store import Database

log = logging.getLogger(__name__)

S = TypeVar("S", bound=ServiceSettings)
Check = Callable[[], bool | Awaitable[bool]]
Closer = Callable[[], Awaitable[object]]


class _EndpointServer(uvicorn.Server):
    """uvicorn without its signal capture: the runtime owns SIGTERM/SIGINT and decides the shutdown order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Runtime(Generic[S]):
    def __init__(
        self,
        name: str,
        settings: S,
        *,
        registry: CollectorRegistry | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self.instance = settings.instance or socket.gethostname()
        self.registry = registry or CollectorRegistry()
        self.tracer_provider = tracer_provider or build_tracer_provider(
            name, settings.telemetry, instance=self.instance
        )
        self._checks: dict[str, Check] = {}
        self._closers: list[tuple[str, Closer]] = []
        self._periodic: list[asyncio.Task[None]] = []
        self._ready = False
        self._stop = asyncio.Event()
        self._server: uvicorn.Server | None = None
        self._server_task: asyncio.Task[None] | None = None
        self.http_port: int | None = None

    # --- what setup() uses --------------------------------------------------------------------------
    def add_check(self, name: str, check: Check) -> None:
        """A readiness check: `/readyz` is 503 while any returns False or raises."""
        self._checks[name] = check

    def on_shutdown(self, closer: Closer, name: str | None = None) -> None:
        """Run `closer` at shutdown; closers run in reverse order of registration."""
        self._closers.append((name or str(getattr(closer, "__qualname__", "closer")), closer))

    def every(self, name: str, interval: float, job: Callable[[], Awaitable[object]]) -> None:
        """Run `job` every `interval` seconds until shutdown (retention purges, lag refresh, ...).

        A failing run is logged and retried at the next interval; it never stops the service. The loop is
        cancelled first at shutdown, before the closers run.
        """

        async def loop() -> None:
            while True:
                await asyncio.sleep(interval)
                try:
                    await job()
                except Exception:
                    log.exception("periodic job %s failed; next run in %.0fs", name, interval)

        self._periodic.append(asyncio.create_task(loop(), name=f"{self.name}:{name}"))

    async def open_database(self, migrations: str | Path, schema: str) -> Database:
        """The service's PostgreSQL pool, refused unless `schema` is at the head of `migrations`.

        Registered as the readiness check "database" and closed at shutdown (after everything set up later).
        """
        from opsbus.common.store import Database, check_schema_current  # noqa: PLC0415 - see TYPE_CHECKING above

        db = Database.from_settings(self.settings.database, application_name=f"opsbus-{self.name}")
        self.on_shutdown(db.close, "database")
        await check_schema_current(db.engine, migrations, schema, service=self.name)
        self.add_check("database", db.ping)
        return db

    async def open_bus(self) -> Bus:
        """The service's NATS connection with every stream ensured; readiness check "nats", closed at shutdown."""
        from opsbus.common.bus import Bus  # noqa: PLC0415 - see TYPE_CHECKING above

        bus = await Bus.connect(
            self.settings.nats,
            service=self.name,
            registry=self.registry,
            tracer_provider=self.tracer_provider,
            shutdown_grace=self.settings.shutdown_grace_seconds,
            instance=self.instance,
        )
        self.on_shutdown(bus.close, "bus")
        self.add_check("nats", lambda: bus.connected)
        await bus.ensure_streams()
        return bus

    def request_shutdown(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # --- health -------------------------------------------------------------------------------------
    async def readiness(self) -> dict[str, str]:
        """Failing checks and why; empty when ready."""
        failures: dict[str, str] = {}
        if not self._ready:
            failures["lifecycle"] = "shutting down" if self._stop.is_set() else "starting"
        # A snapshot: checks are awaited below, and set-up may register one meanwhile (a live dict iterated
        # across an await raised "dictionary changed size during iteration" at start-up).
        for name, check in list(self._checks.items()):
            try:
                result = check()
                if inspect.isawaitable(result):
                    result = await asyncio.wait_for(result, timeout=2.0)
                if not result:
                    failures[name] = "failing"
            except Exception as exc:
                failures[name] = f"error: {type(exc).__name__}"
        return failures

    def _app(self) -> Starlette:
        async def healthz(_: Request) -> Response:
            return JSONResponse({"status": "ok", "service": f"opsbus-{self.name}", "instance": self.instance})

        async def readyz(_: Request) -> Response:
            failures = await self.readiness()
            if failures:
                return JSONResponse({"status": "unavailable", "failing": failures}, status_code=503)
            return JSONResponse({"status": "ready", "checks": sorted(self._checks)})

        async def metrics(_: Request) -> Response:
            body, content_type = render(self.registry)
            return Response(body, media_type=content_type)

        return Starlette(routes=[Route("/healthz", healthz), Route("/readyz", readyz), Route("/metrics", metrics)])

    async def start_http(self) -> int:
        config = uvicorn.Config(
            self._app(),
            host=self.settings.http.host,
            port=self.settings.http.port,
            log_config=None,
            access_log=False,
            lifespan="off",
        )
        server = _EndpointServer(config)
        self._server = server
        self._server_task = asyncio.create_task(server.serve(), name=f"{self.name}:http")
        while not server.started:
            if self._server_task.done():
                await self._server_task  # raises the bind error
                raise RuntimeError("health endpoint stopped during startup")
            await asyncio.sleep(0.01)
        sockets = [s for srv in server.servers for s in srv.sockets]
        self.http_port = int(sockets[0].getsockname()[1])
        return self.http_port

    # --- lifecycle ----------------------------------------------------------------------------------
    async def run(self, setup: Callable[[Runtime[S]], Awaitable[None]], *, install_signals: bool = True) -> int:
        loop = asyncio.get_running_loop()
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            port = await self.start_http()
            log.info("opsbus-%s health endpoint on %s:%d", self.name, self.settings.http.host, port)
            await setup(self)
            self._ready = True
            log.info("opsbus-%s ready (instance %s)", self.name, self.instance)
            await self._stop.wait()
            return 0
        finally:
            self._ready = False
            await self._shutdown()
            if install_signals:
                for sig in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(sig)

    def _on_signal(self, sig: signal.Signals) -> None:
        if self._stop.is_set():
            log.warning("second %s: exiting now", sig.name)
            os._exit(130)
        log.info("%s received: shutting down", sig.name)
        self._stop.set()

    async def _shutdown(self) -> None:
        grace = self.settings.shutdown_grace_seconds
        for task in self._periodic:
            task.cancel()
        await asyncio.gather(*self._periodic, return_exceptions=True)
        for name, closer in reversed(self._closers):
            try:
                await asyncio.wait_for(closer(), timeout=grace)
            except TimeoutError:
                log.error("shutdown step %s did not finish within %.0fs", name, grace)
            except Exception:
                log.exception("shutdown step %s failed", name)
        if self._server is not None:
            self._server.should_exit = True
            if self._server_task is not None:
                with contextlib.suppress(Exception):
                    await self._server_task
        self.tracer_provider.shutdown()
        log.info("opsbus-%s stopped", self.name)


def run_service(
    name: str,
    settings: S,
    setup: Callable[[Runtime[S]], Awaitable[None]],
    *,
    registry: CollectorRegistry | None = None,
) -> int:
    """Entry point for `python -m opsbus.<name>`: configures logs and tracing, runs until a signal."""
    from opsbus.common.telemetry.logs import configure_logging  # noqa: PLC0415

    configure_logging(name, level=settings.telemetry.log_level, json=settings.telemetry.log_json)
    provider = build_tracer_provider(name, settings.telemetry, instance=settings.instance, install_global=True)
    runtime = Runtime(name, settings, registry=registry, tracer_provider=provider)
    return asyncio.run(runtime.run(setup))
