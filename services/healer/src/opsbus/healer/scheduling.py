"""The scheduler loop of a healer replica: carries out deferrals at their due time and reports the queue.

Every replica runs it; the claim inside (`deferring`, `FOR UPDATE SKIP LOCKED`) makes one replica take each
deferred recovery, so a deferral due while a replica is down is carried out by whichever replica runs next.
Queue depth and the age of the oldest deferral are gauges: a queue that only grows or a deferral that only
ages is a stuck healer (the shipped alert rule `OpsbusHealerDeferralsStuck` pages on it).
"""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import CollectorRegistry, Gauge

from opsbus.healer.executing import Executor

log = logging.getLogger(__name__)


async def run_scheduler(executor: Executor, every: float, registry: CollectorRegistry) -> None:
    depth = Gauge(
        "opsbus_healer_deferred_recoveries",
        "Recoveries deferred by a guard and waiting for their due time (the healer's queue).",
        registry=registry,
    )
    age = Gauge(
        "opsbus_healer_oldest_deferral_age_seconds",
        "How long the oldest deferred recovery has waited since it was deferred (0 when none waits).",
        registry=registry,
    )
    while True:
        try:
            await executor.wake_deferred()
            queue = await executor.deferral_queue()
            depth.set(queue.depth)
            age.set(queue.oldest_seconds)
        except Exception:  # the database may be briefly away: the next round retries
            log.warning("healer scheduler round failed; retrying in %.1fs", every, exc_info=True)
        await asyncio.sleep(every)
