"""The Zabbix media type's payload mapped to opsbus alerts: labels, severity, one identity for problem and recovery."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from opsbus.common.events.payloads import AlertFired, AlertResolved
from opsbus.gateway.domain.zabbix import ZabbixEvent, to_events

NOW = datetime(2026, 12, 7, 20, 5, tzinfo=UTC)


def problem(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event_id": "4711",
        "status": "problem",
        "severity": 4,
        "host": "db-1",
        "trigger_id": "20533",
        "trigger_name": "PostgreSQL replication lag is too high",
        "started_at": "2026-12-07T20:01:00Z",
        "tags": [{"tag": "namespace", "value": "payments"}, {"tag": "service.name", "value": "postgres"}],
        "opdata": "lag: 92 s",
        "event_url": "https://zabbix.example.com/tr_events.php?triggerid=20533&eventid=4711",
    }
    return {**body, **changes}


def test_a_problem_fires_with_the_trigger_host_and_tags_as_labels() -> None:
    (event,) = to_events(ZabbixEvent.model_validate(problem()), default_cluster="prod", now=NOW)
    fired = event.payload_as(AlertFired)
    assert event.type == "io.opsbus.alert.fired.v1"
    assert fired.source.value == "zabbix"
    assert fired.alertname == "PostgreSQLReplicationLagIsTooHigh"
    assert fired.labels["trigger"] == "PostgreSQL replication lag is too high"
    assert fired.severity.value == "critical"
    assert fired.labels["host"] == "db-1"
    assert fired.labels["namespace"] == "payments"
    assert fired.labels["service_name"] == "postgres"
    assert fired.labels["zabbix_severity"] == "high"
    assert fired.labels["zabbix_trigger_id"] == "20533"
    assert fired.annotations.summary == "db-1: PostgreSQL replication lag is too high"
    assert fired.annotations.description == "lag: 92 s"
    assert str(fired.generator_url).startswith("https://zabbix.example.com/")
    assert event.subject == "Alert/payments/PostgreSQLReplicationLagIsTooHigh"


def test_the_recovery_resolves_the_same_alert_and_continues_its_chain() -> None:
    (fired,) = to_events(ZabbixEvent.model_validate(problem()), default_cluster="prod", now=NOW)
    recovery = problem(status="resolved", ended_at="2026-12-07T20:04:00Z")
    (resolved,) = to_events(ZabbixEvent.model_validate(recovery), default_cluster="prod", now=NOW)
    assert resolved.type == "io.opsbus.alert.resolved.v1"
    payload = resolved.payload_as(AlertResolved)
    assert payload.fingerprint == fired.payload_as(AlertFired).fingerprint
    assert payload.ends_at == datetime(2026, 12, 7, 20, 4, tzinfo=UTC)
    assert resolved.correlationid == fired.id
    # the same webhook again has the same id: the stream's duplicate window keeps one
    (again,) = to_events(ZabbixEvent.model_validate(recovery), default_cluster="prod", now=NOW)
    assert again.id == resolved.id


@pytest.mark.parametrize(
    ("severity", "opsbus", "zabbix"),
    [(0, "info", "not_classified"), (1, "info", "information"), (2, "warning", "warning"),
     (3, "warning", "average"), (4, "critical", "high"), (5, "critical", "disaster")],
)  # fmt: skip
def test_severities(severity: int, opsbus: str, zabbix: str) -> None:
    (event,) = to_events(ZabbixEvent.model_validate(problem(severity=severity)), default_cluster="prod", now=NOW)
    fired = event.payload_as(AlertFired)
    assert (fired.severity.value, fired.labels["zabbix_severity"]) == (opsbus, zabbix)


@pytest.mark.parametrize(
    ("trigger", "name"),
    [("High CPU on {HOST}", "HighCPUOnHOST"), ("5xx rate > 1%", "Zabbix5xxRate1"), ("!!", "Zabbix")],
)
def test_alertnames_are_identifiers(trigger: str, name: str) -> None:
    (event,) = to_events(ZabbixEvent.model_validate(problem(trigger_name=trigger)), default_cluster="prod", now=NOW)
    assert event.payload_as(AlertFired).alertname == name


def test_tags_never_override_the_alerts_own_labels() -> None:
    tags = [{"tag": "alertname", "value": "x"}, {"tag": "severity", "value": "info"}, {"tag": "host", "value": "y"}]
    (event,) = to_events(ZabbixEvent.model_validate(problem(tags=tags)), default_cluster="prod", now=NOW)
    fired = event.payload_as(AlertFired)
    assert (fired.alertname, fired.labels["severity"], fired.labels["host"]) == (
        "PostgreSQLReplicationLagIsTooHigh",
        "critical",
        "db-1",
    )


@pytest.mark.parametrize(
    "bad",
    [
        {"severity": 6},
        {"event_id": "12; DROP"},
        {"status": "ok"},
        {"started_at": "yesterday"},
        {"trigger_name": ""},
    ],
)
def test_payloads_that_are_not_the_media_types_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ZabbixEvent.model_validate(problem(**bad))
