"""Prometheus metrics: one `CollectorRegistry` per process, created in `main()` and injected.

`BusMetrics` holds the messaging metrics every service exposes; services add their domain metrics to the
same registry. Names follow Prometheus conventions (`_total`, `_seconds`) and pass `promtool check metrics`.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

HANDLER_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class BusMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.published = Counter(
            "opsbus_events_published_total",
            "Events published to JetStream, by event type and outcome (ok, duplicate, error).",
            ["type", "outcome"],
            registry=registry,
        )
        self.consumed = Counter(
            "opsbus_events_consumed_total",
            "Events handled by a consumer, by consumer, event type and outcome (ack, nak, term, skip).",
            ["consumer", "type", "outcome"],
            registry=registry,
        )
        self.handler_seconds = Histogram(
            "opsbus_handler_duration_seconds",
            "Time a handler took per event, by consumer and event type.",
            ["consumer", "type"],
            buckets=HANDLER_BUCKETS,
            registry=registry,
        )
        self.dead_lettered = Counter(
            "opsbus_dlq_messages_total",
            "Messages copied to the dead-letter stream, by consumer.",
            ["consumer"],
            registry=registry,
        )
        self.consumer_pending = Gauge(
            "opsbus_consumer_pending_messages",
            "Messages in the stream not yet delivered to this durable consumer (num_pending).",
            ["consumer"],
            registry=registry,
        )
        self.consumer_ack_pending = Gauge(
            "opsbus_consumer_ack_pending_messages",
            "Messages delivered to this durable consumer and not yet acknowledged.",
            ["consumer"],
            registry=registry,
        )
        self.publish_in_flight = Gauge(
            "opsbus_publish_in_flight",
            "Async publishes awaiting a JetStream acknowledgement.",
            registry=registry,
        )


def render(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The exposition body and content type for `/metrics`."""
    return generate_latest(registry), CONTENT_TYPE_LATEST
