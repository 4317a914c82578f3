"""A cluster cut off from the hub keeps healing itself (issue 26, item 3), and the centre learns of it afterwards.

East's healer (its real durable consumers, executor, PostgreSQL and outbox relay; the Kubernetes API is the one
port replaced) talks only to east's leaf nats-server. With the hub stopped, an alert fired on east is taken,
the workload restarted and verified, and the recovery's events stored on east's own JetStream. When the hub is
back, the hub's RECOVERY and ALERT streams hold east's events exactly once, in east's order.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry

from opsbus.common.bus import Bus, Delivery
from opsbus.common.events import Envelope
from opsbus.common.settings import DatabaseSettings, NatsSettings
from opsbus.common.store import Database, OutboxRelay, RelayOptions, upgrade
from opsbus.healer.domain.planning import Guards
from opsbus.healer.executing import Executor
from opsbus.healer.service import consumer_specs
from opsbus.healer.settings import HealerSettings
from opsbus.healer.store import MIGRATIONS, SCHEMA, TABLES
from tests.fleet.test_fleet_topology import ids_in
from tests.fleet.topology import Fleet, crash_alert
from tests.integration.test_healer_deferrals import T0, Clock, settle
from tests.integration.test_healer_diagnoses import POLICIES, OldRolloutCluster

pytestmark = pytest.mark.integration


class HealingCluster(OldRolloutCluster):
    """The Deployment becomes available once restarted."""

    async def workload_available(self, ns: str, name: str) -> tuple[bool, str]:
        return (True, "3/3 available") if self.writes else (False, "0/3 available")


@pytest.fixture
async def east_healer(hub_and_leaves: Fleet, database_url: str) -> AsyncIterator[tuple[Executor, Bus, HealingCluster]]:
    """East's healer as `service.setup` wires it, on east's leaf only."""
    db_settings = DatabaseSettings.model_validate({"url": database_url})
    await upgrade(db_settings, MIGRATIONS, SCHEMA)
    db = Database.from_settings(db_settings, application_name="healer-east")
    leaf = NatsSettings.model_validate({"url": hub_and_leaves.leaves["east"].url})
    bus = await Bus.connect(leaf, service="healer", registry=CollectorRegistry(), shutdown_grace=5.0)
    relay = OutboxRelay(db.engine, TABLES.outbox, bus.publisher, registry=CollectorRegistry(), options=RelayOptions())
    await relay.start()
    kube = HealingCluster()
    ex = Executor(
        db=db, cluster=kube, guards=Guards(), cluster_name="east", clock=Clock(), verify_poll=0.1, wake_relay=relay.wake
    )
    await ex.load_policies(POLICIES, author="test")

    async def fired(d: Delivery) -> None:
        await ex.on_alert_fired(d.event)

    for spec in consumer_specs(HealerSettings(cluster="east")):
        if spec.legacy_durable == "healer-alerts":
            bus.consumer(spec, fired)
    await bus.start()
    try:
        yield ex, bus, kube
    finally:
        await bus.close()
        await relay.stop()
        await ex.close()
        await db.close()


async def test_a_cut_off_cluster_heals_itself_and_the_centre_sees_it_once_in_order_afterwards(
    hub_and_leaves: Fleet, east_healer: tuple[Executor, Bus, HealingCluster]
) -> None:
    f = hub_and_leaves
    ex, bus, kube = east_healer
    _, east = await f.connect(f.leaves["east"])
    _, hub = await f.connect(f.hub)

    f.hub.stop()  # the partition
    alert = crash_alert("east", "api-1", workload="api", starts_at=T0 - timedelta(seconds=30))
    await bus.publisher.publish(alert)
    await settle(ex, "select 1 from healer.transitions where to_state = 'resolved'", timeout=60)
    assert kube.writes == ["restart api"]  # healed with east's own state only
    local = await ids_in(east, "RECOVERY", 3)  # planned, started, succeeded: on east's JetStream
    types = [Envelope.from_json((await east.get_msg("RECOVERY", seq)).data or b"").type for seq in range(1, 4)]
    assert [t.split(".")[3] for t in types] == ["planned", "started", "succeeded"], types

    f.hub.start()
    await f.wait_linked(timeout=90.0)
    assert await ids_in(hub, "RECOVERY", len(local)) == local  # exactly once, in east's order
    assert await ids_in(hub, "ALERT", 1) == [alert.id]
