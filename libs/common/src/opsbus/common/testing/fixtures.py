"""pytest fixtures for real NATS and PostgreSQL, loaded by the repo's root conftest (`pytest_plugins`).

- `nats_url`: a private `nats-server -js` per test (fresh store), or `OPSBUS_TEST_NATS_URL` with every
  stream deleted first.
- `nats_server`: the private server object itself, for tests that restart or kill it.
- `postgres`: one private PostgreSQL per session; `database_url`: a fresh database per test, or
  `OPSBUS_TEST_DATABASE_URL`'s server with a fresh database per test.
- `registry`, `span_exporter`, `tracer_provider`: fresh per test, never global.
- `make_bus`: builds `Bus` instances wired to the above and closes them after the test.
- `prometheus_exporter`, `prometheus_server`, `start_prometheus`: a real Prometheus (Debian's package) scraping
  an in-process exporter the test controls, optionally over backfilled history (opsbus.common.testing.prometheus).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry
from sqlalchemy.engine import make_url

from opsbus.common.bus import Bus
from opsbus.common.settings import NatsSettings
from opsbus.common.testing.prometheus import Exporter
from opsbus.common.testing.prometheus import PrometheusServer as PromServer
from opsbus.common.testing.prometheus import prometheus_server as start_prometheus_server
from opsbus.common.testing.servers import NatsServer, PostgresServer
from opsbus.common.testing.servers import nats_server as start_nats
from opsbus.common.testing.servers import postgres_server as start_postgres

MakeBus = Callable[..., Awaitable[Bus]]
StartPrometheus = Callable[..., PromServer]


@pytest.fixture
def nats_server() -> Iterator[NatsServer]:
    with start_nats() as server:
        yield server


@pytest.fixture
async def nats_url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    external = os.environ.get("OPSBUS_TEST_NATS_URL")
    if external:
        import nats  # noqa: PLC0415

        nc = await nats.connect(external)
        js = nc.jetstream()
        for name in [s.config.name for s in await js.streams_info() if s.config.name]:
            await js.delete_stream(name)
        await nc.close()
        yield external
        return
    server: NatsServer = request.getfixturevalue("nats_server")
    yield server.url


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def span_exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer_provider(span_exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    yield provider
    provider.shutdown()


@pytest.fixture
async def make_bus(
    nats_url: str, registry: CollectorRegistry, tracer_provider: TracerProvider
) -> AsyncIterator[MakeBus]:
    buses: list[Bus] = []

    async def make(service: str = "test", *, registry_: CollectorRegistry | None = None, **nats: object) -> Bus:
        settings = NatsSettings.model_validate({"url": nats_url, **nats})
        bus = await Bus.connect(
            settings,
            service=service,
            registry=registry_ or (registry if not buses else CollectorRegistry()),
            tracer_provider=tracer_provider,
            shutdown_grace=5.0,
        )
        buses.append(bus)
        return bus

    yield make
    for bus in buses:
        if not bus.nc.is_closed:
            await bus.close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer | None]:
    if os.environ.get("OPSBUS_TEST_DATABASE_URL"):
        yield None
        return
    with start_postgres() as server:
        yield server


@pytest.fixture
async def database_url(postgres: PostgresServer | None) -> AsyncIterator[str]:
    """A fresh, empty database for this test (asyncpg URL); dropped afterwards."""
    import asyncpg  # noqa: PLC0415

    base = os.environ.get("OPSBUS_TEST_DATABASE_URL") or (postgres.url() if postgres else "")
    url = make_url(base)
    name = f"t_{uuid.uuid4().hex[:16]}"
    admin_dsn = url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    yield url.set(database=name).render_as_string(hide_password=False)
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(autouse=True)
async def _no_tasks_left_behind() -> AsyncIterator[None]:
    """Fail a test that leaves asyncio tasks running: they would leak into the next test."""
    before = set(asyncio.all_tasks())
    yield
    await asyncio.sleep(0)
    leftover = [t for t in asyncio.all_tasks() - before if not t.done() and t is not asyncio.current_task()]
    for task in leftover:
        task.cancel()
    if leftover:
        names = ", ".join(sorted(t.get_name() for t in leftover))
        pytest.fail(f"test left {len(leftover)} asyncio task(s) running: {names}")


# --- a real Prometheus (Debian's prometheus package), see opsbus.common.testing.prometheus ---------------


@pytest.fixture
def prometheus_exporter() -> Iterator[Exporter]:
    """A fresh registry served on 127.0.0.1 for the test to set gauges and counters on."""
    with Exporter() as exporter:
        yield exporter


@pytest.fixture
def start_prometheus() -> Iterator[StartPrometheus]:
    """`start_prometheus(targets=[...], history=<openmetrics text>)`: a real Prometheus, stopped at teardown."""
    with contextlib.ExitStack() as stack:

        def start(targets: Sequence[str] = (), *, history: str | None = None, retention: str = "30d") -> PromServer:
            return stack.enter_context(start_prometheus_server(targets, history=history, retention=retention))

        yield start


@pytest.fixture
def prometheus_server(prometheus_exporter: Exporter, start_prometheus: StartPrometheus) -> PromServer:
    """A real Prometheus scraping `prometheus_exporter` every second, its first scrape done."""
    return start_prometheus([prometheus_exporter.target])
