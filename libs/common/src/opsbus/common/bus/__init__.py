"""The opsbus event bus on NATS JetStream: streams, pipelined publishing, durable pull consumers with typed
flow control and a dead-letter stream, trace propagation and metrics. See `client.Bus`."""

from opsbus.common.bus.accepting import family_payloads
from opsbus.common.bus.client import Bus
from opsbus.common.bus.clusters import clustered, for_cluster
from opsbus.common.bus.consuming import Consumer, ConsumerSpec, Delivery, Handler
from opsbus.common.bus.publishing import Publisher, PublishOptions

__all__ = [
    "Bus",
    "Consumer",
    "ConsumerSpec",
    "Delivery",
    "Handler",
    "PublishOptions",
    "Publisher",
    "clustered",
    "family_payloads",
    "for_cluster",
]
