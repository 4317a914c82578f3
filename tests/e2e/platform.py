"""What an e2e test sees of the running platform, only from the outside: the streams on the bus, the gateway's API,
the webhook receiver, Jaeger's query API and the cluster.

Events are read from JetStream by sequence (`STREAM.MSG.GET`), incrementally and with no consumer state, so the view
survives a nats-server restart in the middle of a scenario.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.js.errors import NotFoundError

from opsbus.common.events import Envelope
from opsbus.demo.jaeger import services_in
from opsbus.demo.seeding import WebhookReceiver
from opsbus.demo.stack import Stack
from tests.cluster.kube import Cluster

STREAMS = ("ALERT", "RECOVERY", "DEPLOY", "NOTIFY", "DIAGNOSIS")
T = TypeVar("T")


@dataclass
class Platform:
    stack: Stack
    gateway: httpx.AsyncClient
    webhook: WebhookReceiver
    kube: Cluster
    namespace: str
    events: list[Envelope] = field(default_factory=list)
    _nc: NatsClient | None = None
    _next_seq: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STREAMS, 1))

    async def connect(self) -> None:
        self._nc = await nats.connect(
            self.stack.nats.url, max_reconnect_attempts=-1, reconnect_time_wait=0.2, connect_timeout=5
        )

    async def close(self) -> None:
        if self._nc is not None:
            await self._nc.close()

    # --- the bus ---------------------------------------------------------------------------------------
    async def dead_lettered(self) -> int:
        """Messages in the DLQ stream (0 when no service ever dead-lettered anything)."""
        assert self._nc is not None
        try:
            return int((await self._nc.jetstream(timeout=5.0).stream_info("DLQ")).state.messages)
        except NotFoundError:
            return 0

    async def refresh(self) -> list[Envelope]:
        """Read what the streams gained since the last call; a bus that is down leaves the view as it was."""
        assert self._nc is not None
        js = self._nc.jetstream(timeout=2.0)
        for stream in STREAMS:
            try:
                last = (await js.stream_info(stream)).state.last_seq
            except Exception:  # stream not made yet, or nats-server restarting: try again later
                continue
            while self._next_seq[stream] <= last:
                seq = self._next_seq[stream]
                try:
                    raw = await js.get_msg(stream, seq)
                except NotFoundError:
                    pass  # removed (limits) or a gap left by a deduplicated publish
                except Exception:  # the bus went away mid-read: resume from here next time
                    break
                else:
                    assert raw.data is not None
                    self.events.append(Envelope.from_json(raw.data))
                self._next_seq[stream] = seq + 1
        return self.events

    def of(self, event_type: str, **where: str) -> list[Envelope]:
        """Events of a type (`alert.fired`) whose payload has these top-level or label values."""
        family, verb = event_type.split(".")
        return [
            e
            for e in self.events
            if e.family == family and e.verb == verb and all(_value(e, k) == v for k, v in where.items())
        ]

    async def wait_event(self, event_type: str, timeout: float = 60.0, **where: str) -> Envelope:
        async def found() -> Envelope | None:
            await self.refresh()
            hits = self.of(event_type, **where)
            return hits[0] if hits else None

        return await self.until(f"{event_type} {where}", found, timeout, self.seen)

    async def approval_asked(self, incident_id: str, timeout: float = 90.0) -> dict[str, Any]:
        """The payload of the incident's first `recovery.planned` that waits for approval."""

        async def asked() -> dict[str, Any] | None:
            await self.refresh()
            plans = [e for e in self.in_chain(incident_id) if e.verb == "planned" and e.data.get("approval")]
            return plans[0].data if plans else None

        return await self.until("a step waiting for approval", asked, timeout, self.seen)

    def seen(self) -> str:
        return "; ".join(f"{e.family}.{e.verb} {e.subject}" for e in self.events[-40:])

    def in_chain(self, correlation: str) -> list[Envelope]:
        return [e for e in self.events if e.correlationid == correlation or e.id == correlation]

    # --- gateway, webhook, Jaeger ---------------------------------------------------------------------
    async def api(self, path: str, **params: Any) -> Any:
        answer = await self.gateway.get(path, params=params)
        assert answer.status_code == 200, f"GET {path}: {answer.status_code} {answer.text}"
        return answer.json()

    def notifications(self, **labels: str) -> list[dict[str, Any]]:
        """Bodies the webhook received with an alert carrying these labels."""
        return [
            body
            for body in self.webhook.received()
            if any(all(a.get("labels", {}).get(k) == v for k, v in labels.items()) for a in body.get("alerts", []))
        ]

    async def wait_notified(self, alert_id: str, pod: str, timeout: float = 60.0) -> list[dict[str, Any]]:
        """Webhook bodies for this pod once one carries the alert (by event id) firing and a later one resolved.

        The group also carries the healer's recovery events, so one incident is several notifications (each group
        update, as Alertmanager sends); none may arrive twice (same notification id and sequence).
        """

        async def complete() -> list[dict[str, Any]] | None:
            bodies = self.notifications(pod=pod)
            carried = any(a.get("eventId") == alert_id for b in bodies for a in b.get("alerts", []))
            return bodies if carried and any(b["status"] == "resolved" for b in bodies) else None

        bodies = await self.until(
            f"notifications of {alert_id}", complete, timeout, lambda: str(self.notifications(pod=pod))
        )
        keys = [(b.get("notificationId"), b.get("sequence")) for b in bodies]
        assert len(keys) == len(set(keys)), f"a notification was delivered twice: {keys}"
        return bodies

    async def trace_services(self, trace_id: str) -> set[str]:
        trace = await asyncio.to_thread(self.stack.jaeger.trace, trace_id)
        return services_in(trace) if trace else set()

    async def wait_trace(self, trace_id: str, services: set[str], timeout: float = 60.0) -> set[str]:
        """Poll Jaeger until the trace holds spans of all these services (export is batched, every few seconds)."""
        last: set[str] = set()

        async def complete() -> set[str] | None:
            nonlocal last
            last = await self.trace_services(trace_id)
            return last if services <= last else None

        return await self.until(f"trace {trace_id} spanning {sorted(services)}", complete, timeout, lambda: str(last))

    # --- waiting ---------------------------------------------------------------------------------------
    async def until(
        self, what: str, probe: Callable[[], Awaitable[T | None]], timeout: float, detail: Callable[[], str]
    ) -> T:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(httpx.HTTPError):
                result = await probe()
                if result is not None and result is not False:
                    return result
            if time.monotonic() > deadline:
                pytest.fail(f"waited {timeout:.0f}s for {what}; seen: {detail()}")
            await asyncio.sleep(0.25)


def _value(event: Envelope, key: str) -> Any:
    if key == "correlation_id":
        return event.correlationid
    if key in event.data:
        return event.data[key]
    labels = event.data.get("labels") or {}
    return labels.get(key)


def trace_id_of(event: Envelope) -> str:
    assert event.traceparent, f"{event.type} {event.id} carries no traceparent"
    return event.traceparent.split("-")[1]
