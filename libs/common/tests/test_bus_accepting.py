"""The admission rule every consumer applies before its handler runs (pure: no NATS here; the same cases run
against a real nats-server for every service's consumers in tests/integration/test_dlq_contract.py)."""

from __future__ import annotations

import json

import pytest

from opsbus.common.bus.accepting import Acceptance, carries
from opsbus.common.errors import ConfigurationError, UndecodableError
from opsbus.common.events.examples import example_events
from opsbus.common.events.payloads import AlertFired, AlertResolved, DeployRequested, RecoveryApproved

ALERT = example_events()[AlertFired.event_type]
SUBJECT = ALERT.nats_subject()


@pytest.mark.parametrize(
    ("pattern", "family", "verb", "expected"),
    [
        (">", "alert", "fired", True),
        ("alert.>", "alert", "fired", True),
        ("alert.fired.>", "alert", "fired", True),
        ("alert.fired.prod.*", "alert", "fired", True),
        ("alert.*.prod.payments", "alert", "resolved", True),
        ("*.*.*.*", "deploy", "failed", True),
        ("alert.fired.*.>", "alert", "fired", True),
        ("alert.fired.*", "alert", "fired", False),  # three tokens: never an event subject
        ("alert.fired.a.b.c", "alert", "fired", False),
        ("alert.resolved.>", "alert", "fired", False),
        ("deploy.>", "alert", "fired", False),
        ("alert", "alert", "fired", False),
    ],
)
def test_carries_follows_nats_matching(pattern: str, family: str, verb: str, *, expected: bool) -> None:
    assert carries(pattern, family, verb) is expected


def _wire(**changes: object) -> bytes:
    data = json.loads(ALERT.to_json())
    data.update(changes)
    return json.dumps({k: v for k, v in data.items() if v is not None}).encode()


def test_undeclared_acceptance_is_every_known_type_the_filters_carry() -> None:
    acceptance = Acceptance.of("c", ["alert.>"], None)
    assert set(acceptance.models) == {AlertFired.event_type, AlertResolved.event_type}


def test_a_consumer_of_several_families_must_declare_what_it_accepts() -> None:
    with pytest.raises(ConfigurationError, match=r"several families \(alert, deploy\)"):
        Acceptance.of("c", ["alert.>", "deploy.>"], None)
    declared = Acceptance.of("c", ["alert.>", "deploy.>"], [AlertFired, DeployRequested])
    assert set(declared.models) == {AlertFired.event_type, DeployRequested.event_type}


def test_a_declared_type_its_subjects_never_carry_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match=r"accepts io\.opsbus\.deploy\.requested\.v1"):
        Acceptance.of("c", ["alert.fired.>"], [AlertFired, DeployRequested])
    with pytest.raises(ConfigurationError, match="no known event type"):
        Acceptance.of("c", ["nothing.here.>"], None)


def test_a_valid_event_is_admitted_with_its_payload_decoded() -> None:
    event = Acceptance.of("c", ["alert.>"], None).admit(ALERT.to_json(), SUBJECT)
    assert event == ALERT
    assert event.payload_as(AlertFired) is event.payload()


@pytest.mark.parametrize(
    ("raw", "subject", "reason"),
    [
        (_wire(specversion=None), SUBJECT, "specversion: Field required"),
        (_wire(type="io.opsbus.alert.fired.v9"), SUBJECT, r"unknown version v9 of alert\.fired: consumer c knows"),
        (_wire(type="io.opsbus.alert.exploded.v1"), SUBJECT, "does not belong on subject"),
        (example_events()[DeployRequested.event_type].to_json(), SUBJECT, r"type io\.opsbus\.deploy\.requested"),
        (ALERT.to_json(), SUBJECT.rsplit(".", 1)[0] + ".billing", "belongs on " + SUBJECT),
        (_wire(data={"unexpected": True}), SUBJECT, r"invalid io\.opsbus\.alert\.fired\.v1 payload"),
        (b"{not json", SUBJECT, "not a valid opsbus CloudEvent"),
    ],
)
def test_refusals_say_why(raw: bytes, subject: str, reason: str) -> None:
    with pytest.raises(UndecodableError, match=reason):
        Acceptance.of("c", ["alert.>"], None).admit(raw, subject)


def test_a_type_outside_the_declared_list_is_not_accepted() -> None:
    acceptance = Acceptance.of("c", ["recovery.>"], [RecoveryApproved])
    approved = json.loads(example_events()[RecoveryApproved.event_type].to_json())
    approved["type"] = "io.opsbus.recovery.approved.v2"
    with pytest.raises(UndecodableError, match=r"v2 of recovery\.approved: consumer c knows .*approved\.v1$"):
        acceptance.admit(json.dumps(approved).encode(), example_events()[RecoveryApproved.event_type].nats_subject())
    planned = example_events()["io.opsbus.recovery.planned.v1"]
    with pytest.raises(UndecodableError, match=r"event type not accepted io\.opsbus\.recovery\.planned\.v1"):
        acceptance.admit(planned.to_json(), planned.nats_subject())
