"""A hub and two leaf nats-servers (issue 26, item 2): events cross partitions by JetStream sourcing only.

- Alerts published on east's leaf while the hub is down reach the hub's ALERT stream once the link is back,
  every one, once, in east's order; none of west's is mixed in, none of east's lands on west.
- A deploy request the centre publishes for east while east's leaf is down reaches east's DEPLOY stream when
  east is back (and not west's), and enters the central DEPLOY view once, through east.
- An event never crosses the link as a core message: the hub's ALERT holds nothing that east did not store.
"""

from __future__ import annotations

import asyncio

import pytest
from nats.js import JetStreamContext

from opsbus.common.bus.fleet import outbox
from opsbus.common.bus.streams import ensure_streams
from opsbus.common.events import Envelope, ObjectRef
from opsbus.common.events.examples import example_payloads
from opsbus.common.events.payloads import (
    DeployRequested,
)
from tests.fleet.topology import Fleet, crash_alert

pytestmark = pytest.mark.integration
NS = "payments"


def deploy_request(cluster: str) -> Envelope:
    example = example_payloads()[DeployRequested.event_type]
    assert isinstance(example, DeployRequested)
    return Envelope.build(
        example, service="gateway", cluster=cluster, obj=ObjectRef(kind="Deployment", namespace=NS, name="api")
    )


async def publish(js: JetStreamContext, event: Envelope) -> None:
    ack = await js.publish(event.nats_subject(), event.to_json(), headers={"Nats-Msg-Id": event.id}, timeout=10)
    assert ack.seq > 0


async def ids_in(js: JetStreamContext, stream: str, want: int, timeout: float = 90.0) -> list[str]:
    """The event ids a stream holds, in stream order, once it holds at least `want` (then a moment more)."""
    async with asyncio.timeout(timeout):
        while (await js.stream_info(stream)).state.messages < want:  # noqa: ASYNC110 - polls the server
            await asyncio.sleep(0.2)
    await asyncio.sleep(1.0)  # a doubled copy would arrive now
    info = await js.stream_info(stream)
    out = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await js.get_msg(stream, seq)
        out.append(Envelope.from_json(msg.data or b"").id)
    return out


async def test_alerts_buffered_on_a_leaf_reach_the_hub_after_the_partition_in_order_once(hub_and_leaves: Fleet) -> None:
    f = hub_and_leaves
    _, east = await f.connect(f.leaves["east"])
    _, west = await f.connect(f.leaves["west"])
    _, hub = await f.connect(f.hub)

    before = [crash_alert("east", f"api-{n}") for n in range(5)]
    for event in before:
        await publish(east, event)
    await publish(west, west_event := crash_alert("west", "api-0"))
    linked = await ids_in(hub, "ALERT", 6)  # both leaves linked and sourced
    assert sorted(linked) == sorted([e.id for e in before] + [west_event.id])

    f.hub.stop()  # the partition: east keeps storing locally
    during = [crash_alert("east", f"api-{n}") for n in range(5, 25)]
    for event in during:
        await publish(east, event)
    assert (await east.stream_info("ALERT")).state.messages == len(before) + len(during)
    f.hub.start()
    await f.wait_linked(timeout=90.0)

    central = await ids_in(hub, "ALERT", len(before) + len(during) + 1)
    from_east = [i for i in central if i != west_event.id]
    assert from_east == [e.id for e in before + during]  # every one, once, in east's order
    assert central.count(west_event.id) == 1
    # Nothing crossed as a core message (the hub's outbox would have caught it and east taken it back twice).
    assert await ids_in(east, "ALERT", len(before) + len(during), timeout=5) == [e.id for e in before + during]
    assert (await hub.stream_info(outbox("ALERT"))).state.messages == 0
    assert await ids_in(west, "ALERT", 1, timeout=5) == [west_event.id]


async def test_a_command_for_a_cluster_reaches_its_leaf_after_the_partition(hub_and_leaves: Fleet) -> None:
    f = hub_and_leaves
    _, hub = await f.connect(f.hub)
    _, west = await f.connect(f.leaves["west"])

    f.leaves["east"].stop()  # east is cut off
    for_east, for_west = deploy_request("east"), deploy_request("west")
    await publish(hub, for_east)  # the gateway's publish: stored in the hub's outbox
    await publish(hub, for_west)
    assert await ids_in(west, "DEPLOY", 1) == [for_west.id]
    f.leaves["east"].start()
    _, east = await f.connect(f.leaves["east"])

    assert await ids_in(east, "DEPLOY", 1) == [for_east.id]  # east's own, once; not west's
    assert await ids_in(hub, outbox("DEPLOY"), 2, timeout=5) == [for_east.id, for_west.id]
    central = await ids_in(hub, "DEPLOY", 2)
    assert sorted(central) == sorted([for_east.id, for_west.id])  # once each, through each cluster


async def test_services_starting_on_a_fleet_leave_its_streams_as_provisioned(hub_and_leaves: Fleet) -> None:
    _, hub = await hub_and_leaves.connect(hub_and_leaves.hub)
    _, east = await hub_and_leaves.connect(hub_and_leaves.leaves["east"])
    for js in (hub, east):
        await ensure_streams(js)  # what every service runs at start
    central = (await hub.stream_info("ALERT")).config
    assert not central.subjects and {s.external.api for s in central.sources or [] if s.external} == {
        "$JS.east.API",
        "$JS.west.API",
    }
    assert (await hub.stream_info(outbox("ALERT"))).config.subjects == ["alert.>"]
    local = (await east.stream_info("ALERT")).config
    assert local.subjects == ["alert.>"] and [s.filter_subject for s in local.sources or []] == ["alert.*.east.>"]
