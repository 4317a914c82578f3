"""Per-integration rate limits are shared by every replica (a token bucket in PostgreSQL), against real NATS,
PostgreSQL and a real HTTP receiver: two notifier instances together send no faster than the configured rate,
and nothing is lost or doubled while notifications wait for tokens."""

# ruff: noqa: F811 - the fixtures are imported from test_notifier_delivery and named as parameters

from __future__ import annotations

import asyncio
import uuid

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import select

from opsbus.common.bus import Bus
from opsbus.common.events import Envelope
from opsbus.common.store import Database
from opsbus.notifier import store
from tests.integration.test_notifier_delivery import (  # noqa: F401 - fixtures
    Receiver,
    Stack,
    alert_fired,
    db,
    publisher_bus,
    receiver,
    stack,
    wait_for,
)

pytestmark = pytest.mark.integration

PER_SECOND = 2.0
ALERTS = 8

LIMITED = """
route:
  receiver: team
  group_by: [alertname, namespace, pod]
  group_wait: 0s
  group_interval: 1m
  repeat_interval: 4h
receivers:
  - name: team
    webhook_configs:
      - url: {url}
        secret: ${{HOOK_SECRET}}
        rate_limit: {{per_second: {rate}, burst: 1}}
"""


def pod_alert(i: int) -> Envelope:
    base = alert_fired()
    data = dict(base.data)
    data["fingerprint"] = f"{i:016x}"
    data["labels"] = {**data["labels"], "pod": f"checkout-{i}"}
    return base.model_copy(update={"id": str(uuid.uuid4()), "data": data})


def attempts(registry: CollectorRegistry) -> float:
    value = registry.get_sample_value(
        "opsbus_notifier_delivery_attempts_total", {"channel": "webhook", "outcome": "delivered"}
    )
    return value or 0.0


async def test_two_replicas_share_one_rate_limit_and_deliver_everything_once(
    stack: Stack, receiver: Receiver, publisher_bus: Bus, db: Database
) -> None:
    config = LIMITED.format(url=receiver.url(), rate=PER_SECOND)
    for _ in range(2):  # batch 1: each replica leases one notification at a time, so both take part
        await stack.start(config, batch=1, tick_seconds=0.05)
    for i in range(ALERTS):
        await publisher_bus.publisher.publish(pod_alert(i))

    async def all_delivered() -> bool:
        return len(receiver.requests) >= ALERTS

    await wait_for(all_delivered, timeout=30)
    await asyncio.sleep(1.0)
    ids = [r.json()["notificationId"] for r in receiver.requests]
    assert len(ids) == ALERTS and len(set(ids)) == ALERTS  # every one, once

    # the shared bucket (burst 1, 2/s) spaces the sends: any 1-second window holds at most burst + rate sends,
    # and the whole run takes at least (n - burst) / rate. Two unshared buckets would allow twice the rate.
    times = sorted(r.at for r in receiver.requests)
    assert times[-1] - times[0] >= (ALERTS - 1) / PER_SECOND * 0.95, times
    for i, start in enumerate(times):
        within = [t for t in times[i:] if t < start + 1.0]
        assert len(within) <= 1 + PER_SECOND, times
    per_replica = [attempts(rt.registry) for rt, _ in stack.running]
    assert all(n > 0 for n in per_replica) and sum(per_replica) == ALERTS, per_replica

    async with db.sessions() as session:
        statuses = (await session.execute(select(store.notifications.c.status))).scalars().all()
        [bucket] = (await session.execute(select(store.rate_limits))).all()
    assert sorted(statuses) == ["delivered"] * ALERTS
    assert bucket.key == "team/webhook/0" and 0.0 <= bucket.tokens < 1.0
