"""The CloudEvents envelope: wire round trip, chains, and decoding failures that must reach the DLQ."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from opsbus.common.errors import PermanentError, UndecodableError
from opsbus.common.events import CONTENT_TYPE, Envelope, ObjectRef
from opsbus.common.events.examples import example_events, example_payloads
from opsbus.common.events.payloads import AlertFired, AuditRecorded, DeployRequested, RecoveryPlanned

POD = ObjectRef(kind="Pod", namespace="payments", name="checkout-7d9f8b6c5-x2x4q")
NODE = ObjectRef(kind="Node", name="node-a-3")


def _alert() -> AlertFired:
    payload = example_payloads()[AlertFired.event_type]
    assert isinstance(payload, AlertFired)
    return payload


def test_round_trip_keeps_every_attribute_and_the_payload() -> None:
    event = Envelope.build(
        _alert(),
        service="watcher",
        cluster="prod",
        obj=POD,
        time=datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC),
    ).model_copy(update={"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"})

    raw = event.to_json()
    decoded = Envelope.from_json(raw)

    assert decoded == event
    assert decoded.payload() == _alert()
    wire = json.loads(raw)
    assert wire["specversion"] == "1.0"
    assert wire["type"] == "io.opsbus.alert.fired.v1"
    assert wire["source"] == "/opsbus/watcher/prod"
    assert wire["subject"] == "Pod/payments/checkout-7d9f8b6c5-x2x4q"
    assert wire["datacontenttype"] == "application/json"
    assert wire["time"] == "2025-03-14T09:26:53Z"
    assert "causationid" not in wire  # absent attributes are omitted, not null
    assert CONTENT_TYPE == "application/cloudevents+json"


def test_every_example_event_survives_the_wire() -> None:
    for event_type, event in example_events().items():
        decoded = Envelope.from_json(event.to_json())
        assert decoded.type == event_type
        assert decoded.payload() == example_payloads()[event_type]


def test_subject_and_nats_subject_derive_from_the_envelope() -> None:
    event = Envelope.build(_alert(), service="watcher", cluster="prod", obj=POD)
    assert event.nats_subject() == "alert.fired.prod.payments"
    assert (event.cluster, event.service, event.family, event.verb) == ("prod", "watcher", "alert", "fired")

    node_event = Envelope.build(_alert(), service="watcher", cluster="prod", obj=NODE)
    assert node_event.subject == "Node/_/node-a-3"
    assert node_event.nats_subject() == "alert.fired.prod._"
    assert node_event.object == NODE


def test_build_without_cause_starts_a_chain() -> None:
    event = Envelope.build(_alert(), service="watcher", cluster="prod", obj=POD)
    assert event.correlationid == event.id
    assert event.causationid is None


def test_build_with_cause_inherits_correlation_and_points_at_the_cause() -> None:
    alert = Envelope.build(_alert(), service="watcher", cluster="prod", obj=POD)
    planned = Envelope.build(
        example_payloads()[RecoveryPlanned.event_type], service="healer", cluster="prod", obj=POD, cause=alert
    )
    audit = Envelope.build(
        example_payloads()[AuditRecorded.event_type], service="healer", cluster="prod", obj=POD, cause=planned
    )

    assert planned.causationid == alert.id
    assert planned.correlationid == alert.id
    assert audit.causationid == planned.id
    assert audit.correlationid == alert.id  # the whole chain shares the alert's id
    assert len({alert.id, planned.id, audit.id}) == 3


def test_deterministic_id_is_kept_for_dedupe() -> None:
    first = Envelope.build(_alert(), service="watcher", cluster="prod", obj=POD, event_id="fp-8f3a9c2d41e07b65-1")
    second = Envelope.build(_alert(), service="watcher", cluster="prod", obj=POD, event_id="fp-8f3a9c2d41e07b65-1")
    assert first.id == second.id == "fp-8f3a9c2d41e07b65-1"


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"{not json", "not a valid opsbus CloudEvent"),
        (b"", "not a valid opsbus CloudEvent"),
        (b"[]", "not a valid opsbus CloudEvent"),
        (b'{"specversion": "1.0"}', "id: Field required"),
    ],
)
def test_undecodable_bytes_raise_undecodable_error(raw: bytes, fragment: str) -> None:
    with pytest.raises(UndecodableError, match=fragment) as info:
        Envelope.from_json(raw)
    assert isinstance(info.value, PermanentError)  # so the bus terms it and dead-letters it


def _wire(**changes: object) -> bytes:
    data = json.loads(example_events()[AlertFired.event_type].to_json())
    data.update(changes)
    return json.dumps(data).encode()


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"specversion": "0.3"}, "specversion"),
        ({"type": "alert.fired"}, "must look like io.opsbus"),
        ({"source": "/watcher/prod"}, "must be /opsbus/<service>/<cluster>"),
        ({"source": "/opsbus/watcher/prod.eu"}, "valid NATS subject token"),
        ({"subject": "checkout"}, "must be <kind>/<namespace>/<name>"),
        ({"time": "2025-03-14T09:26:53"}, "timezone"),
        ({"traceparent": "not-a-trace"}, "not W3C trace context"),
    ],
)
def test_invalid_envelope_attributes_are_rejected_with_the_reason(changes: dict[str, object], fragment: str) -> None:
    with pytest.raises(UndecodableError, match=fragment):
        Envelope.from_json(_wire(**changes))


def test_unknown_type_is_undecodable_when_reading_the_payload() -> None:
    event = Envelope.from_json(_wire(type="io.opsbus.alert.exploded.v1"))
    with pytest.raises(UndecodableError, match=r"unknown event type 'io\.opsbus\.alert\.exploded\.v1'"):
        event.payload()


def test_invalid_payload_is_undecodable_with_the_field_named() -> None:
    data = json.loads(example_events()[AlertFired.event_type].to_json())
    data["data"]["severity"] = "catastrophic"
    event = Envelope.from_json(json.dumps(data))
    with pytest.raises(
        UndecodableError, match=r"invalid io\.opsbus\.alert\.fired\.v1 payload: severity: Input should be"
    ):
        event.payload()


def test_payload_as_checks_the_type() -> None:
    event = example_events()[AlertFired.event_type]
    assert event.payload_as(AlertFired) == _alert()
    with pytest.raises(UndecodableError, match=r"expected io\.opsbus\.deploy\.requested\.v1, got io\.opsbus\.alert"):
        event.payload_as(DeployRequested)


@pytest.mark.parametrize(
    "attribute", ["specversion", "id", "source", "type", "time", "subject", "datacontenttype", "data"]
)
def test_every_required_attribute_must_be_on_the_wire(attribute: str) -> None:
    """Nothing is defaulted when reading: an event without `specversion` is not a CloudEvent (issue 28)."""
    data = json.loads(example_events()[AlertFired.event_type].to_json())
    del data[attribute]
    with pytest.raises(UndecodableError, match=rf"{attribute}: Field required"):
        Envelope.from_json(json.dumps(data))


def test_build_writes_the_defaults_on_the_wire() -> None:
    wire = json.loads(Envelope.build(_alert(), service="watcher", cluster="prod", obj=POD).to_json())
    assert (wire["specversion"], wire["datacontenttype"]) == ("1.0", "application/json")


def test_the_payload_is_decoded_once_and_equality_ignores_it() -> None:
    raw = example_events()[AlertFired.event_type].to_json()
    event, untouched = Envelope.from_json(raw), Envelope.from_json(raw)
    first = event.payload()
    assert event.payload() is first
    assert event.payload_as(AlertFired) is first
    assert event == untouched


def test_a_copy_with_other_data_decodes_afresh() -> None:
    event = example_events()[AlertFired.event_type]
    event.payload()
    changed = event.model_copy(update={"data": {**event.data, "severity": "catastrophic"}})
    with pytest.raises(UndecodableError, match="severity"):
        changed.payload()
