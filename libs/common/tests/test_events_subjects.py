"""Subjects are how teams filter: a bad token must be refused where it is made, saying which and why."""

from __future__ import annotations

import pytest

from opsbus.common.events import Envelope, ObjectRef, Subject, SubjectError, dlq_subject, subject_for
from opsbus.common.events.examples import example_payloads
from opsbus.common.events.subjects import validate_pattern

BAD_TOKENS = [
    pytest.param("prod.eu", "'.'", id="dot"),
    pytest.param("prod*", "'*'", id="star"),
    pytest.param(">", "'>'", id="gt"),
    pytest.param("prod eu", "spaces", id="space"),
    pytest.param("prod\t", "spaces", id="tab"),
    pytest.param("", "must not be empty", id="empty"),
    pytest.param("-prod", "starting with", id="leading-dash"),
]


def test_builder_and_parser_agree() -> None:
    subject = subject_for("alert", "fired", "prod", "payments")
    assert subject == "alert.fired.prod.payments"
    assert Subject.parse(subject) == Subject("alert", "fired", "prod", "payments")


def test_cluster_scoped_objects_use_underscore() -> None:
    subject = subject_for("alert", "fired", "prod", None)
    assert subject == "alert.fired.prod._"
    assert Subject.parse(subject).is_cluster_scoped


@pytest.mark.parametrize(("token", "reason"), BAD_TOKENS)
def test_builder_rejects_bad_cluster_names(token: str, reason: str) -> None:
    with pytest.raises(SubjectError, match="cluster name") as info:
        subject_for("alert", "fired", token, "payments")
    assert reason in str(info.value)


# An empty namespace means cluster-scoped to subject_for (it becomes `_`); Subject() itself rejects it below.
@pytest.mark.parametrize(("token", "reason"), [p for p in BAD_TOKENS if p.id != "empty"])
def test_builder_rejects_bad_namespaces(token: str, reason: str) -> None:
    with pytest.raises(SubjectError, match="namespace") as info:
        subject_for("alert", "fired", "prod", token)
    assert reason in str(info.value)


def test_subject_rejects_empty_namespace() -> None:
    with pytest.raises(SubjectError, match="namespace must not be empty"):
        Subject("alert", "fired", "prod", "")


@pytest.mark.parametrize(
    ("subject", "fragment"),
    [
        ("alert.fired.prod", "must have 4 tokens"),
        ("alert.fired.prod.payments.extra", "it has 5"),
        ("alert.fired..payments", "cluster name must not be empty"),
        ("alert.*.prod.payments", "verb '*'"),
        ("alert.fired.prod.>", "namespace '>'"),
        ("alert.fired.prod.pay ments", "namespace 'pay ments'"),
        ("", "must have 4 tokens"),
    ],
)
def test_parser_rejects_malformed_subjects(subject: str, fragment: str) -> None:
    with pytest.raises(SubjectError) as info:
        Subject.parse(subject)
    assert fragment in str(info.value)


def test_envelope_build_refuses_a_cluster_that_is_not_a_token() -> None:
    payload = example_payloads()["io.opsbus.alert.fired.v1"]
    with pytest.raises(SubjectError, match=r"cluster name 'prod\.eu'"):
        Envelope.build(payload, service="watcher", cluster="prod.eu", obj=ObjectRef(kind="Node", name="n1"))


@pytest.mark.parametrize("pattern", ["alert.fired.prod.payments", "deploy.*.*.payments", "alert.>", "*.*.prod.>"])
def test_team_wildcard_patterns_are_accepted(pattern: str) -> None:
    assert validate_pattern(pattern) == pattern


@pytest.mark.parametrize(
    ("pattern", "fragment"),
    [("alert.>.prod", "'>' may only be the last token"), ("alert..prod", "must not be empty"), ("al ert.>", "al ert")],
)
def test_bad_patterns_are_rejected(pattern: str, fragment: str) -> None:
    with pytest.raises(SubjectError) as info:
        validate_pattern(pattern)
    assert fragment in str(info.value)


def test_dlq_subject_prefixes_the_original() -> None:
    assert dlq_subject("alert.fired.prod.payments") == "dlq.alert.fired.prod.payments"
