"""A minimal opsbus service for lifecycle tests: consumes the TEST stream, journals each handler's start and
end to the file named by PROBE_JOURNAL, and takes PROBE_DELAY seconds per event. Run as a separate process:
`python -m tests.integration.probe_service`."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from opsbus.common.bus import Bus, ConsumerSpec, Delivery
from opsbus.common.runtime import Runtime, run_service
from opsbus.common.settings import ServiceSettings, load
from tests.integration.busprobe import Happened, provision


async def setup(rt: Runtime[ServiceSettings]) -> None:
    journal = Path(os.environ["PROBE_JOURNAL"])
    delay = float(os.environ.get("PROBE_DELAY", "0.5"))
    bus = await Bus.connect(
        rt.settings.nats,
        service=rt.name,
        registry=rt.registry,
        tracer_provider=rt.tracer_provider,
        shutdown_grace=rt.settings.shutdown_grace_seconds,
    )
    rt.on_shutdown(bus.close, "bus")
    rt.add_check("nats", lambda: bus.connected)
    await provision(bus)

    async def handle(delivery: Delivery) -> None:
        n = delivery.event.payload_as(Happened).n
        with journal.open("a") as f:
            f.write(f"start {n}\n")
        await asyncio.sleep(delay)
        with journal.open("a") as f:
            f.write(f"done {n}\n")

    bus.consumer(
        ConsumerSpec(durable="probe", stream="TEST", subjects=["test.>"], batch=4, concurrency=2, fetch_timeout=0.3),
        handle,
    )
    await bus.start()


if __name__ == "__main__":
    sys.exit(run_service("probe", load(ServiceSettings), setup))
