"""CloudEvents interop with the official SDK (`cloudevents` 2.x, `cloudevents.v1.http`, structured mode), against a
real nats-server: a team that subscribes to opsbus's streams with the SDK, or publishes into them with it, must
not need to know opsbus's own models (issue 21).

- Every registered opsbus event type, published by opsbus's own publisher and read back raw from its JetStream
  stream, is parsed by the SDK with its attributes, extensions and data intact.
- For every durable consumer of every service (their real specs, as in test_dlq_contract), an event of each
  type it accepts, built by the SDK and published as the SDK serialises it, reaches the handler and nothing is
  dead-lettered.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from cloudevents.v1.conversion import to_structured
from cloudevents.v1.http import CloudEvent, from_http

from opsbus.common.bus import Bus, ConsumerSpec, Delivery
from opsbus.common.events import CONTENT_TYPE, Envelope
from opsbus.common.events.catalog import family
from opsbus.common.events.examples import example_events, example_payloads
from tests.integration.test_dlq_contract import CLUSTER, CONSUMERS, NAMESPACE

pytestmark = pytest.mark.integration
MakeBus = Callable[..., Awaitable[Bus]]
EXTENSIONS = ("correlationid", "causationid", "traceparent", "tracestate")


async def test_the_sdk_parses_every_opsbus_event_type_taken_from_the_bus(make_bus: MakeBus) -> None:
    bus = await make_bus("interop")
    await bus.ensure_streams()
    events = example_events()
    assert len(events) == len(example_payloads())  # every registered type has an example
    for event in events.values():
        ack = await bus.publisher.publish(event)
        raw = await bus.js.get_msg(family(event.family).stream, ack.seq)
        headers = {k.lower(): v for k, v in (raw.headers or {}).items()}
        assert headers["content-type"] == CONTENT_TYPE == "application/cloudevents+json"

        parsed = from_http(headers, raw.data)

        wire: dict[str, Any] = json.loads(raw.data or b"")  # as published: the publisher stamps the trace context
        assert wire["id"] == event.id and wire["data"] == json.loads(event.to_json())["data"]
        assert parsed["specversion"] == "1.0"
        for attribute in ("id", "source", "type", "subject", "datacontenttype", *EXTENSIONS):
            assert parsed.get(attribute) == wire.get(attribute), (event.type, attribute)
        assert parsed["time"] == wire["time"], event.type
        assert parsed.get_data() == wire["data"], event.type


def sdk_event(event_type: str, *, subject_name: str = "interop-0") -> tuple[str, dict[str, str], bytes]:
    """An event of `event_type` built only with the SDK (opsbus's example data, as a dict), serialised by the SDK
    in structured mode: subject, headers and body as they would be published by a non-opsbus producer."""
    data = json.loads(example_payloads()[event_type].model_dump_json(exclude_none=True))
    family_name, verb = event_type.split(".")[2:4]
    attributes = {
        "type": event_type,
        "source": f"/opsbus/someone-else/{CLUSTER}",
        "subject": f"pods/{NAMESPACE}/{subject_name}",
        "datacontenttype": "application/json",
        "correlationid": "b1c1f1f0-8a4e-4f3e-9d5c-5a0c1a1e2b3c",
    }
    headers, body = to_structured(CloudEvent(attributes, data))
    return f"{family_name}.{verb}.{CLUSTER}.{NAMESPACE}", dict(headers), body


@pytest.mark.parametrize("spec", CONSUMERS)
async def test_an_event_built_by_the_sdk_is_accepted_by_every_consumer(spec: ConsumerSpec, make_bus: MakeBus) -> None:
    accepts = spec.accepts or ()
    assert accepts, f"{spec.durable}: declare what it accepts"
    bus = await make_bus("interop")
    await bus.ensure_streams()
    handled: list[Envelope] = []
    done = asyncio.Event()

    async def handler(delivery: Delivery) -> None:
        delivery.event.payload()  # decodes as the service's own model
        handled.append(delivery.event)
        if len(handled) == len(accepts):
            done.set()

    bus.consumer(spec, handler)
    await bus.start()
    sent: dict[str, str] = {}
    for n, model in enumerate(accepts):
        subject, headers, body = sdk_event(model.event_type, subject_name=f"interop-{n}")
        sent[model.event_type] = json.loads(body)["id"]
        await bus.js.publish(subject, body, headers=headers)

    await asyncio.wait_for(done.wait(), 15.0)
    await asyncio.sleep(0.2)
    assert {e.type: e.id for e in handled} == sent
    for event in handled:
        assert event.source == f"/opsbus/someone-else/{CLUSTER}"
        assert event.correlationid == "b1c1f1f0-8a4e-4f3e-9d5c-5a0c1a1e2b3c"
    assert (await bus.js.stream_info("DLQ")).state.messages == 0


def test_the_sdk_event_is_a_valid_opsbus_envelope_without_the_bus() -> None:
    """The same check as above, as data: an SDK event decodes to the envelope opsbus would have built."""
    for event_type, payload in example_payloads().items():
        _, _, body = sdk_event(event_type)
        envelope = Envelope.from_json(body)
        assert envelope.payload() == payload
        assert envelope.nats_subject() == f"{envelope.family}.{envelope.verb}.{CLUSTER}.{NAMESPACE}"
