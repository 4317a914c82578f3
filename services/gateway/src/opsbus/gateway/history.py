"""Past events from the JetStream streams, one page at a time, paginated by stream sequence.

A page is read through a short-lived ephemeral pull consumer (no acks, in memory, deleted at the end) whose
filter subjects are the caller's grant (`domain.scopes`: the pattern narrowed to the caller's namespaces and
clusters), so the server only delivers what the caller may see; every event is still checked with `in_scope()`.
A page ends when it is full, the stream has nothing more that matches, or `scan_limit` events were read: the
answer says the last sequence read (`next_after`) and whether more may follow, so a client resumes exactly
where it stopped.
This module never writes to a stream.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from opsbus.gateway.domain.access import Principal
from opsbus.gateway.domain.entries import decode
from opsbus.gateway.domain.scopes import Grant, in_scope

log = logging.getLogger(__name__)
_BATCH = 256


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    grant: Grant
    after: int | None  # a stream sequence: start after it
    since: datetime | None  # else: the first event at or after this time
    limit: int


@dataclass(frozen=True, slots=True)
class PastEvent:
    sequence: int
    subject: str
    time: datetime
    event: dict[str, Any] | None  # the CloudEvent; None when the stored message is not one (entries.decode)


@dataclass(frozen=True, slots=True)
class HistoryPage:
    events: list[PastEvent]
    next_after: int | None
    more: bool


class EventHistory:
    def __init__(self, js: JetStreamContext, *, scan_limit: int = 5000, timeout: float = 5.0) -> None:
        self.js = js
        self.scan_limit = scan_limit
        self.timeout = timeout

    async def page(self, query: HistoryQuery, principal: Principal) -> HistoryPage:
        filters = list(query.grant.filters)
        stream = query.grant.stream
        try:
            await self.js.stream_info(stream)
        except NotFoundError:
            return HistoryPage(events=[], next_after=query.after, more=False)
        config = ConsumerConfig(
            ack_policy=AckPolicy.NONE,
            mem_storage=True,
            inactive_threshold=30.0,
            max_deliver=1,
            filter_subjects=filters if len(filters) > 1 else None,
            **_start(query),
        )
        psub = await self.js.pull_subscribe(filters[0], stream=stream, config=config)
        try:
            return await self._read(psub, query, principal)
        finally:
            with contextlib.suppress(Exception):
                name = (await psub.consumer_info()).name
                await psub.unsubscribe()
                await self.js.delete_consumer(stream, name)

    async def _read(self, psub: JetStreamContext.PullSubscription, query: HistoryQuery, who: Principal) -> HistoryPage:
        pending = (await psub.consumer_info()).num_pending or 0
        events: list[PastEvent] = []
        last = query.after
        scanned = 0
        while pending > 0 and len(events) < query.limit and scanned < self.scan_limit:
            want = min(_BATCH, pending, self.scan_limit - scanned)
            try:
                msgs = await psub.fetch(want, timeout=self.timeout)
            except NatsTimeoutError:
                break
            for msg in msgs:
                meta = msg.metadata
                scanned += 1
                pending = meta.num_pending
                if in_scope(who.scope, msg.subject):
                    events.append(PastEvent(meta.sequence.stream, msg.subject, meta.timestamp, decode(msg.data).event))
                last = meta.sequence.stream
                if len(events) >= query.limit:
                    break
        return HistoryPage(events=events, next_after=last, more=pending > 0)


def _start(query: HistoryQuery) -> dict[str, Any]:
    if query.after is not None:
        return {"deliver_policy": DeliverPolicy.BY_START_SEQUENCE, "opt_start_seq": query.after + 1}
    if query.since is not None:
        return {"deliver_policy": DeliverPolicy.BY_START_TIME, "opt_start_time": query.since}
    return {"deliver_policy": DeliverPolicy.ALL}
