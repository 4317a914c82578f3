"""Arrival order per key for handlers that run concurrently: `KeyedOrder.turn(keys)` lets a task in once every
earlier task that shares one of its keys has finished, so events of one alert (fired, then resolved) and of one
group are applied in the order they were consumed, while unrelated events proceed in parallel.

The order is the order in which tasks *enter* `turn` (the bus consumer starts one task per message in stream
order, and the notifier calls `turn` before its first await). Each task waits only for tasks that entered
before it, so there is no deadlock, whatever the keys.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable


class KeyedOrder:
    def __init__(self) -> None:
        self._tails: dict[str, asyncio.Future[None]] = {}

    def __len__(self) -> int:
        """Keys with a task holding or waiting for their turn (0 when idle: nothing is kept)."""
        return len(self._tails)

    @contextlib.asynccontextmanager
    async def turn(self, keys: Iterable[str]) -> AsyncIterator[None]:
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        wanted = set(keys)
        before = {self._tails[k] for k in wanted if k in self._tails}
        for key in wanted:  # taken before the first await: later tasks wait for this one
            self._tails[key] = mine
        try:
            if before:
                await asyncio.wait(before)  # not cancelled with us: earlier tasks keep their own fate
            yield
        finally:
            # cancelled while waiting: later tasks must still wait for the earlier ones, so finish only then
            self._finish_after({f for f in before if not f.done()}, mine, wanted)

    def _finish_after(self, pending: set[asyncio.Future[None]], mine: asyncio.Future[None], keys: set[str]) -> None:
        if pending:
            pending.pop().add_done_callback(lambda _: self._finish_after(pending, mine, keys))
            return
        mine.set_result(None)
        for key in keys:
            if self._tails.get(key) is mine:
                del self._tails[key]
