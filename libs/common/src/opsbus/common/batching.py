"""Group commit: the items handed in while a batch is being written are written together, in the next one.

The bus hands a handler one event per call, several at once (the consumer's concurrency). Written one
transaction each, a burst costs a commit and the reads around it per event (the healer's planning lock and
history read per alert, the analyzer's open-incident read per change); written together, one per batch.
Each caller waits for the batch that holds its item and gets that batch's outcome: when the batch's work
fails, every caller in it raises, so each of their messages is nak'ed and redelivered (nothing is lost, and
the work is idempotent). A lone item is written at once: no timer, no added latency when the bus is quiet.
This module knows nothing of events or databases.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class GroupCommit(Generic[T]):
    def __init__(
        self, work: Callable[[Sequence[T]], Awaitable[None]], *, max_batch: int = 256, name: str = "group-commit"
    ) -> None:
        self._work = work
        self._max = max_batch
        self._name = name
        self._queue: list[tuple[T, asyncio.Future[None]]] = []
        self._runner: asyncio.Task[None] | None = None

    async def submit(self, item: T) -> None:
        """Hand in one item; returns when the batch holding it is written, raises when that batch failed."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((item, done))
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._drain(), name=self._name)
        await done

    async def _drain(self) -> None:
        await asyncio.sleep(0)  # handlers started in the same turn of the loop join this first batch
        while self._queue:
            batch, self._queue = self._queue[: self._max], self._queue[self._max :]
            waiting = [(item, done) for item, done in batch if not done.cancelled()]
            if not waiting:
                continue
            try:
                await self._work([item for item, _ in waiting])
            except asyncio.CancelledError:
                for _, done in waiting:
                    if not done.done():
                        done.cancel()
                raise
            except Exception as exc:  # every caller of the batch raises it: each message is retried
                for _, done in waiting:
                    if not done.done():
                        done.set_exception(exc)
            else:
                for _, done in waiting:
                    if not done.done():
                        done.set_result(None)

    async def close(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
