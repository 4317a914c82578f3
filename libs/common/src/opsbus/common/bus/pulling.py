"""Pulling a durable consumer's messages: a batch of what the stream holds now, never a wait for a batch to fill.

nats-py's `fetch(n)` waits for n messages or its timeout, so a lone event on an idle consumer sat out the whole
fetch timeout; consumers whose latency mattered pulled one message per round trip instead (`batch=1`), and
paid a pull request, and nats-py's per-message `wait_for` task, for every event. A pull here is:

1. what is already in the subscription's queue (late deliveries of an earlier request);
2. a `no_wait` request for the rest: the server answers at once with what it has, then `404 No Messages`;
3. only when that brought nothing, a lingering request for one message, returned as soon as it arrives.

So a backlog comes in full batches, one round trip each, and a lone event is handed on the moment it lands.
Waiting costs one timer per pull, not one task per message. Messages are read from nats-py's subscription
queue directly (its `PullSubscription` internals, as `fetch` reads them); this module decides nothing about
a message beyond whether it is one or a status.
"""

from __future__ import annotations

import asyncio
import json

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import APIError

STATUS = "Status"
HEARTBEAT = "100"  # idle heartbeat or flow control: not the end of a request
ENDS = frozenset({"404", "408", "409"})  # no messages, request expired, a conflict (leader change, limits)


class Puller:
    """Batched pulls on one bound pull subscription."""

    def __init__(self, sub: JetStreamContext.PullSubscription) -> None:
        self._nc = sub._nc
        self._inner = sub._sub
        self._queue: asyncio.Queue[Msg] = sub._sub._pending_queue
        self._next = sub._nms
        self._deliver = sub._deliver

    async def pull(self, batch: int, timeout: float) -> list[Msg]:
        """Up to `batch` messages: those available now, or else the first to arrive within `timeout`; [] if none."""
        msgs: list[Msg] = []
        self._take_queued(msgs, batch)
        if len(msgs) < batch:
            await self._request({"batch": batch - len(msgs), "no_wait": True})
            await self._collect(msgs, batch - len(msgs), timeout)
        if not msgs:
            expires = max(int(timeout * 1_000_000_000) - 100_000, 1_000_000)  # ends on the server first
            await self._request({"batch": 1, "expires": expires})
            await self._collect(msgs, 1, timeout)
        return msgs

    def _take_queued(self, msgs: list[Msg], batch: int) -> None:
        queue = self._queue
        while len(msgs) < batch and not queue.empty():
            msg = queue.get_nowait()
            self._inner._pending_size -= len(msg.data)
            if not (msg.headers and STATUS in msg.headers):  # a status here answered an earlier request
                msgs.append(msg)

    async def _request(self, request: dict[str, object]) -> None:
        await self._nc.publish(self._next, json.dumps(request).encode(), self._deliver)

    async def _collect(self, msgs: list[Msg], want: int, timeout: float) -> None:
        """Read the answer to one request: `want` messages, or fewer and the status that ends it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        queue = self._queue
        got = 0
        while got < want:
            if queue.empty():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return
                try:
                    msg = await asyncio.wait_for(queue.get(), remaining)
                except TimeoutError:
                    return
            else:
                msg = queue.get_nowait()
            self._inner._pending_size -= len(msg.data)
            status = msg.headers.get(STATUS) if msg.headers else None
            if status is None:
                msgs.append(msg)
                got += 1
            elif status in ENDS:
                return
            elif status != HEARTBEAT:
                raise APIError.from_msg(msg)
