"""The change timeline as a team subscribed to `change.recorded.<cluster>.<namespace>` sees it, for cluster tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from opsbus.common.bus import Bus
from opsbus.common.events import Envelope
from opsbus.common.events.payloads import ChangeRecorded


class ChangeLog:
    """Every `change.recorded` on the subjects subscribed, in arrival order."""

    def __init__(self) -> None:
        self.events: list[Envelope] = []

    async def on_message(self, msg: Any) -> None:
        self.events.append(Envelope.from_json(msg.data))

    def matching(self, match: Callable[[Envelope, ChangeRecorded], bool]) -> list[Envelope]:
        return [e for e in self.events if match(e, e.payload_as(ChangeRecorded))]

    async def wait(
        self, match: Callable[[Envelope, ChangeRecorded], bool], timeout: float, what: str = "a change"
    ) -> Envelope:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.matching(match)
            if found:
                return found[0]
            await asyncio.sleep(0.2)
        seen = [e.payload_as(ChangeRecorded).summary for e in self.events]
        pytest.fail(f"no change.recorded for {what} within {timeout:.0f}s; saw {seen}")


@asynccontextmanager
async def change_log(bus: Bus, *subjects: str) -> AsyncIterator[ChangeLog]:
    log = ChangeLog()
    subs = [await bus.nc.subscribe(s, cb=log.on_message) for s in subjects]
    try:
        yield log
    finally:
        for sub in subs:
            await sub.unsubscribe()
