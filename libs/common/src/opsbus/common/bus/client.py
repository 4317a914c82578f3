"""`Bus`: one service's handle on NATS JetStream - connection, streams, publisher, consumers, shutdown.

Build it in `main()` with the service's settings, Prometheus registry and tracer provider; hand it to the
executor. `close()` is the ordered shutdown: stop pulling, finish in-flight handlers, flush publishes,
drain the connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from nats.aio.client import Client
from nats.js import JetStreamContext
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Tracer, get_tracer, get_tracer_provider
from prometheus_client import CollectorRegistry

from opsbus.common.bus.connection import connect
from opsbus.common.bus.consuming import Consumer, ConsumerSpec, Handler
from opsbus.common.bus.publishing import Publisher, PublishOptions
from opsbus.common.bus.streams import ensure_streams
from opsbus.common.settings import NatsSettings
from opsbus.common.telemetry.metrics import BusMetrics

log = logging.getLogger(__name__)


class Bus:
    def __init__(
        self,
        nc: Client,
        settings: NatsSettings,
        *,
        service: str,
        metrics: BusMetrics,
        tracer: Tracer,
        tracing: bool = True,
        clock: Callable[[], datetime],
        shutdown_grace: float,
    ) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream(
            timeout=settings.publish_timeout, publish_async_max_pending=settings.publish_max_in_flight * 2
        )
        self.settings = settings
        self.service = service
        self.metrics = metrics
        self.tracer = tracer
        self._span_tracer = tracer if tracing else None
        self._clock = clock
        self._grace = shutdown_grace
        self.publisher = Publisher(
            nc,
            metrics=metrics,
            tracer=self._span_tracer,
            options=PublishOptions(
                timeout=settings.publish_timeout,
                retries=settings.publish_retries,
                max_in_flight=settings.publish_max_in_flight,
            ),
        )
        self.consumers: list[Consumer] = []

    @classmethod
    async def connect(
        cls,
        settings: NatsSettings,
        *,
        service: str,
        registry: CollectorRegistry,
        tracer_provider: TracerProvider | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        shutdown_grace: float = 20.0,
        instance: str | None = None,
    ) -> Bus:
        nc = await connect(settings, name=f"opsbus-{service}" + (f"-{instance}" if instance else ""))
        tracer = tracer_provider.get_tracer("opsbus.bus") if tracer_provider else get_tracer("opsbus.bus")
        tracing = tracer_provider is not None or isinstance(get_tracer_provider(), TracerProvider)
        return cls(
            nc,
            settings,
            service=service,
            metrics=BusMetrics(registry),
            tracer=tracer,
            tracing=tracing,
            clock=clock,
            shutdown_grace=shutdown_grace,
        )

    async def ensure_streams(self) -> list[str]:
        return await ensure_streams(
            self.js,
            replicas=self.settings.stream_replicas,
            duplicate_window=self.settings.duplicate_window_seconds,
        )

    def consumer(self, spec: ConsumerSpec, handler: Handler) -> Consumer:
        """Declare a durable consumer; it starts with `start()`."""
        consumer = Consumer(
            self.nc,
            self.js,
            spec,
            handler,
            publisher=self.publisher,
            metrics=self.metrics,
            tracer=self._span_tracer,
            clock=self._clock,
            shutdown_grace=self._grace,
        )
        self.consumers.append(consumer)
        return consumer

    async def start(self) -> None:
        for consumer in self.consumers:
            await consumer.start()

    @property
    def connected(self) -> bool:
        return bool(self.nc.is_connected)

    async def close(self) -> None:
        """Ordered shutdown: consumers drain, publishes flush, then the connection drains.

        The consumers drain together: each may sit up to its fetch timeout in a pull before it sees the stop, so
        stopping them one after another made a service with many consumers (the gateway has one per read model)
        overrun its shutdown grace.
        """
        await asyncio.gather(*(consumer.stop() for consumer in self.consumers))
        try:
            await self.publisher.flush(timeout=self._grace)
        except TimeoutError:
            log.error("%d publishes still unacknowledged at shutdown", self.publisher.in_flight)
        if not self.nc.is_closed:
            await self.nc.flush()
            await self.nc.drain()
