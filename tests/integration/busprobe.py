"""A test-only event family (`test.happened.*` on stream TEST) so bus tests need no production payloads."""

from __future__ import annotations

from datetime import datetime, timedelta

from opsbus.common.bus import Bus
from opsbus.common.bus.streams import ensure_streams
from opsbus.common.events import Envelope, EventPayload, ObjectRef
from opsbus.common.events.catalog import DLQ, Family

TEST_FAMILY = Family("test", "TEST", timedelta(hours=1), ("happened",), ("tests",), ("tests",), "test events")


class Happened(EventPayload):
    event_type = "io.opsbus.test.happened.v1"
    n: int
    note: str = ""


def event(n: int, *, namespace: str = "ns1", time: datetime | None = None, event_id: str | None = None) -> Envelope:
    return Envelope.build(
        Happened(n=n),
        service="tests",
        cluster="dev",
        obj=ObjectRef(kind="Pod", namespace=namespace, name=f"pod-{n}"),
        time=time,
        event_id=event_id,
    )


async def provision(bus: Bus) -> None:
    await ensure_streams(bus.js, families=(TEST_FAMILY, DLQ))
