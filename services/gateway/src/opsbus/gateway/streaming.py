"""Server-Sent Events of bus events: one ephemeral ordered JetStream consumer per client, filtered by the
caller's grant (server side: the pattern narrowed to the caller's scope by `domain.scopes`) and checked again
per message here, resumable from a stream sequence, bounded.

* Frames are built, never copied: each stored message is decoded and its CloudEvent re-serialised as one JSON
  line (`domain.entries`), so no publisher can forge a frame. A message that is not a CloudEvent becomes
  `event: undecodable` with the stream sequence as its id and a reason, none of its bytes.

* `id:` of each SSE event is the JetStream stream sequence, so a client that reconnects with
  `Last-Event-ID: N` continues at N+1: nothing published meanwhile is lost (within the stream's retention).
  Without it, the stream starts with new events.
* Each client has a bounded queue. When the client reads slower than events arrive and the queue fills, the
  client is dropped: the stream ends with an `event: dropped` frame, its consumer is deleted, and the
  client reconnects with its Last-Event-ID. Nothing buffers without bound.
* A comment line (`: heartbeat`) is sent when nothing happened for `heartbeat` seconds, so proxies keep the
  connection open and clients notice a dead one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from prometheus_client import CollectorRegistry, Counter, Gauge

from opsbus.gateway.domain.access import Principal
from opsbus.gateway.domain.entries import decode
from opsbus.gateway.domain.scopes import Grant, in_scope

log = logging.getLogger(__name__)


class TooManyClientsError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class StreamOptions:
    heartbeat: float = 15.0
    queue: int = 1000
    max_clients: int = 500


def frame(seq: int, data: bytes) -> bytes:
    """One SSE frame for the stored message `data` at stream sequence `seq`, whatever `data` holds."""
    entry = decode(data)
    line = entry.line if entry.event is not None else json.dumps({"sequence": seq, "reason": entry.reason}).encode()
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (seq, entry.name.encode(), line)


class EventStreams:
    def __init__(self, js: JetStreamContext, *, options: StreamOptions, registry: CollectorRegistry) -> None:
        self.js = js
        self.options = options
        self.clients = 0
        self._clients_gauge = Gauge(
            "opsbus_gateway_sse_clients", "Server-Sent Events clients connected.", registry=registry
        )
        self._sent = Counter("opsbus_gateway_sse_events_total", "Events sent to SSE clients.", registry=registry)
        self._dropped = Counter(
            "opsbus_gateway_sse_dropped_total", "SSE clients dropped for reading too slowly.", registry=registry
        )

    def admit(self) -> None:
        if self.clients >= self.options.max_clients:
            raise TooManyClientsError(f"{self.clients} stream clients already connected")

    async def stream(self, grant: Grant, principal: Principal, last_event_id: int | None) -> AsyncIterator[bytes]:
        """The SSE body: yields frames until the client goes away or is dropped."""
        self.admit()
        queue: asyncio.Queue[Msg] = asyncio.Queue(maxsize=self.options.queue)
        overflow = asyncio.Event()

        async def on_message(msg: Msg) -> None:
            if overflow.is_set():
                return
            try:
                queue.put_nowait(msg)
            except asyncio.QueueFull:
                overflow.set()

        if last_event_id is not None:
            config = ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=last_event_id + 1,
                inactive_threshold=60.0,
            )
        else:
            config = ConsumerConfig(deliver_policy=DeliverPolicy.NEW, inactive_threshold=60.0)
        if len(grant.filters) > 1:
            config.filter_subjects = list(grant.filters)
        psub = await self.js.subscribe(
            grant.filters[0],
            stream=grant.stream,
            cb=on_message,
            ordered_consumer=True,
            idle_heartbeat=5.0,
            config=config,
        )
        self.clients += 1
        self._clients_gauge.inc()
        try:
            yield b": connected to " + grant.pattern.encode() + b"\nretry: 2000\n\n"
            while True:
                get = asyncio.ensure_future(queue.get())
                dropped = asyncio.ensure_future(overflow.wait())
                try:
                    done, _ = await asyncio.wait(
                        {get, dropped}, timeout=self.options.heartbeat, return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    for task in (get, dropped):
                        if not task.done():
                            task.cancel()
                            with contextlib.suppress(asyncio.CancelledError):
                                await task
                if get in done:
                    msg = get.result()
                    if not in_scope(principal.scope, msg.subject):
                        continue
                    self._sent.inc()
                    yield frame(msg.metadata.sequence.stream, msg.data)
                elif overflow.is_set() and queue.empty():
                    self._dropped.inc()
                    reason = {"reason": "the client read too slowly; reconnect with Last-Event-ID"}
                    yield b"event: dropped\ndata: " + json.dumps(reason).encode() + b"\n\n"
                    return
                elif not done:
                    yield b": heartbeat\n\n"
        finally:
            self.clients -= 1
            self._clients_gauge.dec()
            with contextlib.suppress(Exception):
                await psub.unsubscribe()
