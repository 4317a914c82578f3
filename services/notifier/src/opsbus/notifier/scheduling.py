"""The notifier's one scheduler loop: flush due groups, deliver due notifications, check the invariant.

Every time-based step of the notifier (group_wait and group_interval elapsed, a retry's backoff over, a lease
expired, a rate-limit token back) is a due time stored in PostgreSQL; this loop only looks for what is due. It
runs a pass every `tick` seconds, at once when woken (an ingest made a group due, a flush queued rows), and
again while a pass found work. A wake is a hint, never the schedule: a replica that restarts forgets its wakes,
and the next tick finds the same rows. Between passes it runs the invariant check (`accounting.check`) at most
every `check_every` seconds and sets `opsbus_notifier_unaccounted_alerts`.

It must never decide or write anything itself (the passes it is given do), never keep a due time only in
memory, and never let a failing pass or check end the loop: it logs and tries again at the next tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from opsbus.common.store import Database
from opsbus.notifier import accounting
from opsbus.notifier.accounting import AccountingMetrics

log = logging.getLogger(__name__)


class InvariantCheck:
    """Counts routed alerts still open past their due time plus a bound: the notifier's check against loss."""

    def __init__(
        self,
        db: Database,
        metrics: AccountingMetrics,
        *,
        clock: Callable[[], datetime],
        bound: timedelta,
        limit: int,
    ) -> None:
        self.db = db
        self.metrics = metrics
        self.clock = clock
        self.bound = bound
        self.limit = limit

    async def check(self) -> accounting.Unaccounted:
        """Count routed alerts still open past their due time plus the bound, into the gauge (and the log)."""
        async with self.db.sessions() as session:
            found = await accounting.check(session, self.clock(), bound=self.bound, limit=self.limit)
        self.metrics.unaccounted.set(found.count)
        if found.count:
            log.error(
                "%d routed alert(s) neither delivered, dead, muted nor deliberately not sent %s after they were "
                "due (oldest: %s)",
                found.count,
                self.bound,
                "; ".join(f"event {e} group {g} {i} {s}" for e, g, i, s in found.sample),
            )
        return found


class Loop:
    def __init__(
        self,
        *,
        run_once: Callable[[], Awaitable[tuple[int, int]]],
        check: Callable[[], Awaitable[object]],
        tick: float,
        check_every: float,
    ) -> None:
        self.run_once = run_once  # one pass: (groups' notifications queued, delivery attempts made)
        self.check = check
        self.tick = tick
        self.check_every = check_every
        self._next_check = 0.0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def wake(self) -> None:
        """Run a pass now (something became due)."""
        self._wake.set()

    def wake_in(self, delay: float) -> None:
        """Run a pass in `delay` seconds (a retry or a rate-limit token falls due then); a hint, the tick stays."""
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().call_later(max(0.0, delay), self._wake.set)

    async def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="notifier:loop")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            await task

    async def _housekeeping(self) -> None:
        if time.monotonic() < self._next_check:
            return
        self._next_check = time.monotonic() + self.check_every
        try:
            await self.check()
        except Exception:
            log.exception("invariant check failed; retrying at the next one")

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            await self._housekeeping()
            try:
                flushed, sent = await self.run_once()
            except Exception:
                log.exception("notifier pass failed; retrying")
                flushed = sent = 0
            if flushed or sent:
                continue
            with contextlib.suppress(TimeoutError):
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation that
                # arrives as the event fires, and this loop would then never stop.
                async with asyncio.timeout(self.tick):
                    await self._wake.wait()
