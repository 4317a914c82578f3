"""Alertmanager's webhook payload (version 4) mapped to opsbus alert events, on the documented example."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from opsbus.common.events.payloads import AlertFired, AlertResolved
from opsbus.gateway.domain.alertmanager import AlertmanagerWebhook, MappingError, to_events

EXAMPLE = Path(__file__).parent / "alertmanager_v4_example.json"
NOW = datetime(2025, 3, 14, 9, 31, tzinfo=UTC)


def example() -> dict[str, Any]:
    return dict(json.loads(EXAMPLE.read_text()))


def test_documented_example_maps_to_fired_and_resolved_events() -> None:
    events = to_events(AlertmanagerWebhook.model_validate(example()), default_cluster="sandbox", now=NOW)
    fired, resolved = events
    assert fired.nats_subject() == "alert.fired.prod.payments"
    assert fired.subject == "Pod/payments/checkout-7d9f8b6c5-x2x4q"
    alert = fired.payload_as(AlertFired)
    assert alert.fingerprint == "8f3a9c2d41e07b65" and alert.alertname == "KubePodCrashLooping"
    assert alert.source.value == "alertmanager" and alert.severity.value == "warning"
    assert alert.ends_at is None  # Alertmanager's 0001-01-01 means unset
    assert alert.annotations.summary == "Pod is crash looping."
    assert alert.annotations.description and "CrashLoopBackOff" in alert.annotations.description
    assert str(alert.annotations.runbook_url).endswith("/kubepodcrashlooping")
    assert alert.starts_at == datetime(2025, 3, 14, 9, 26, 53, 512000, tzinfo=UTC)
    assert alert.generator_url is not None
    assert resolved.nats_subject() == "alert.resolved.prod._"
    assert resolved.subject == "Node/_/node-a-3"
    r = resolved.payload_as(AlertResolved)
    assert r.ends_at == datetime(2025, 3, 14, 9, 30, tzinfo=UTC) and r.resolution == "alertmanager"
    assert resolved.correlationid != resolved.id  # continues the chain its firing started


def test_ids_are_deterministic_so_repeats_are_deduplicated() -> None:
    hook = AlertmanagerWebhook.model_validate(example())
    first = [e.id for e in to_events(hook, default_cluster="sandbox", now=NOW)]
    later = [e.id for e in to_events(hook, default_cluster="sandbox", now=datetime(2025, 3, 15, tzinfo=UTC))]
    assert first == later and len(set(first)) == 2


def test_missing_cluster_label_uses_the_gateway_cluster_and_unknown_severity_is_warning() -> None:
    payload = example()
    alert = payload["alerts"][0]
    del alert["labels"]["cluster"]
    alert["labels"]["severity"] = "page"
    payload["alerts"] = [alert]
    (event,) = to_events(AlertmanagerWebhook.model_validate(payload), default_cluster="sandbox", now=NOW)
    assert event.nats_subject() == "alert.fired.sandbox.payments"
    assert event.payload_as(AlertFired).severity.value == "critical"


def test_an_alert_without_alertname_is_refused_with_a_pointer() -> None:
    payload = example()
    del payload["alerts"][1]["labels"]["alertname"]
    with pytest.raises(MappingError) as caught:
        to_events(AlertmanagerWebhook.model_validate(payload), default_cluster="sandbox", now=NOW)
    assert [p.pointer for p in caught.value.problems] == ["/alerts/1/labels/alertname"]


def test_version_must_be_4() -> None:
    with pytest.raises(ValueError, match="version"):
        AlertmanagerWebhook.model_validate({**example(), "version": "3"})
