"""Several clusters on one bus: each cluster's healer takes its own cluster's alerts only (issue 26, item 1).

One nats-server, one JetStream. The healer's real consumer specs (`opsbus.healer.service.consumer_specs`) for
clusters `east` and `west`, two replicas each (two connections binding the same durable): every alert is
handled once, by a replica of its own cluster. And an install from before the fleet: its cluster-less
consumer had acknowledged part of the stream; the clustered consumer created beside it starts right after
that, so nothing is replayed or skipped, and the old consumer is left for the operator to delete.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from nats.js.api import AckPolicy, ConsumerConfig

from opsbus.common.bus import Bus, ConsumerSpec, Delivery
from opsbus.deployer.service import consumer_specs as deployer_specs
from opsbus.deployer.settings import DeployerSettings
from opsbus.healer.service import consumer_specs as healer_specs
from opsbus.healer.settings import HealerSettings
from opsbus.optimizer.service import consumer_specs as optimizer_specs
from opsbus.optimizer.settings import OptimizerSettings
from tests.fleet.topology import crash_alert

pytestmark = pytest.mark.integration
MakeBus = Callable[..., Awaitable[Bus]]


def test_per_cluster_services_name_and_filter_their_consumers_by_cluster() -> None:
    def specs(cluster: str) -> list[ConsumerSpec]:
        return [
            *healer_specs(HealerSettings(cluster=cluster)),
            *deployer_specs(DeployerSettings(cluster=cluster)),
            *optimizer_specs(OptimizerSettings(cluster=cluster)),
        ]

    east, west = specs("east"), specs("west")
    assert len(east) == 7  # five of the healer's, the deployer's and the optimizer's
    for e, w in zip(east, west, strict=True):
        assert e.durable == f"{e.legacy_durable}-east" and w.durable == f"{w.legacy_durable}-west"
        assert all(s.split(".")[2] == "east" for s in e.subjects), e.subjects
        assert all(s.split(".")[2] == "west" for s in w.subjects), w.subjects


async def test_each_alert_is_handled_only_by_its_own_clusters_healer(make_bus: MakeBus) -> None:
    handled: dict[str, list[tuple[str, str]]] = {"east": [], "west": []}  # cluster -> (replica, event id)
    expected = 20
    done = asyncio.Event()

    def handler(cluster: str, replica: str) -> Callable[[Delivery], Awaitable[None]]:
        async def handle(d: Delivery) -> None:
            handled[cluster].append((replica, d.event.id))
            if sum(len(v) for v in handled.values()) >= 2 * expected:
                done.set()

        return handle

    buses = []
    for cluster in ("east", "west"):
        (spec,) = [s for s in healer_specs(HealerSettings(cluster=cluster)) if s.legacy_durable == "healer-alerts"]
        for replica in ("a", "b"):
            bus = await make_bus("healer")
            await bus.ensure_streams()
            bus.consumer(spec, handler(cluster, f"{cluster}-{replica}"))
            buses.append(bus)
    for bus in buses:
        await bus.start()

    sent = {
        "east": [crash_alert("east", f"api-{n}") for n in range(expected)],
        "west": [crash_alert("west", f"api-{n}") for n in range(expected)],
    }
    publisher = (await make_bus("watcher")).publisher
    for east, west in zip(sent["east"], sent["west"], strict=True):
        await publisher.publish(east)
        await publisher.publish(west)
    async with asyncio.timeout(60):
        await done.wait()
    await asyncio.sleep(0.5)  # anything doubled or misrouted would land now

    for cluster in ("east", "west"):
        ids = [event_id for _, event_id in handled[cluster]]
        assert sorted(ids) == sorted(e.id for e in sent[cluster]), cluster  # all its own, once each
        assert {replica.split("-")[0] for replica, _ in handled[cluster]} == {cluster}
    js = buses[0].js
    for cluster in ("east", "west"):
        info = await js.consumer_info("ALERT", f"healer-alerts-{cluster}")
        assert info.num_pending == 0 and info.num_ack_pending == 0, info


async def test_the_clustered_consumer_starts_where_the_old_one_had_got_to(make_bus: MakeBus) -> None:
    bus = await make_bus("healer")
    await bus.ensure_streams()
    js = bus.js
    # The install before the fleet: `healer-alerts` on cluster east, which handled the first three alerts.
    await js.add_consumer(
        "ALERT",
        ConsumerConfig(
            durable_name="healer-alerts", ack_policy=AckPolicy.EXPLICIT, filter_subject="alert.fired.east.*"
        ),
    )
    before = [crash_alert("east", f"api-{n}") for n in range(3)]
    for event in before:
        await bus.publisher.publish(event)
    old = await js.pull_subscribe_bind(durable="healer-alerts", stream="ALERT")
    for msg in await old.fetch(3, timeout=10):
        await msg.ack_sync()
    await old.unsubscribe()
    after = [crash_alert("east", f"api-{n}") for n in range(3, 5)]  # published during the upgrade
    for event in after:
        await bus.publisher.publish(event)

    (spec,) = [s for s in healer_specs(HealerSettings(cluster="east")) if s.legacy_durable == "healer-alerts"]
    seen: list[str] = []
    both = asyncio.Event()

    async def handle(d: Delivery) -> None:
        seen.append(d.event.id)
        if len(seen) >= len(after):
            both.set()

    upgraded = await make_bus("healer")
    upgraded.consumer(spec, handle)
    await upgraded.start()
    async with asyncio.timeout(30):
        await both.wait()
    await asyncio.sleep(0.5)
    assert seen == [e.id for e in after]  # nothing replayed, nothing skipped
    assert (await js.consumer_info("ALERT", "healer-alerts")).name == "healer-alerts"  # left for the operator

    # A restart finds the clustered consumer and keeps where it started (an update cannot move it).
    await upgraded.close()
    again = await make_bus("healer")
    again.consumer(spec, handle)
    await again.start()
    await asyncio.sleep(1.0)
    assert seen == [e.id for e in after]
