"""Payload models: one per catalogue verb, immutable, strict, and failing with errors that name the problem."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

import opsbus.common.events.payloads as payloads
from opsbus.common.events import EventPayload
from opsbus.common.events.catalog import FAMILIES
from opsbus.common.events.examples import example_payloads
from opsbus.common.events.payloads import (
    AlertFired,
    AlertResolved,
    AuditRecorded,
    CostEstimate,
    DeployRequested,
    ScaleRecommended,
    Severity,
    Strategy,
    opsbus_payload_types,
)


def test_every_catalogue_verb_has_exactly_one_v1_payload() -> None:
    registered = [m.event_type.split(".") for m in opsbus_payload_types().values()]
    v1 = [(family, verb) for _io, _opsbus, family, verb, version in registered if version == "v1"]
    expected = [(fam.name, verb) for fam in FAMILIES for verb in fam.verbs]

    assert sorted(v1) == sorted(expected)
    assert len(v1) == len(set(v1))


def test_every_payload_class_is_exported_from_the_package() -> None:
    exported = {getattr(payloads, name) for name in payloads.__all__}
    assert set(opsbus_payload_types().values()) <= exported


def test_every_type_has_an_example_that_validates() -> None:
    examples = example_payloads()
    assert set(examples) == set(opsbus_payload_types())
    for event_type, payload in examples.items():
        model = EventPayload.registry[event_type]
        assert model.model_validate(payload.model_dump(mode="json")) == payload


def test_a_second_class_for_a_registered_type_is_refused() -> None:
    with pytest.raises(TypeError, match=r"io\.opsbus\.alert\.fired\.v1 is registered twice"):

        class AlertFiredAgain(EventPayload):  # pragma: no cover - the class statement itself fails
            event_type = "io.opsbus.alert.fired.v1"


def test_payloads_are_frozen_and_reject_unknown_fields() -> None:
    alert = example_payloads()[AlertFired.event_type]
    assert isinstance(alert, AlertFired)
    with pytest.raises(ValidationError, match="frozen"):
        alert.severity = Severity.INFO  # type: ignore[misc]
    data = alert.model_dump(mode="json") | {"severty": "critical"}
    with pytest.raises(ValidationError, match="severty\n  Extra inputs are not permitted"):
        AlertFired.model_validate(data)
    nested = alert.model_dump(mode="json")
    nested["evidence"]["containers"][0]["restarts"] = 3
    with pytest.raises(ValidationError, match=r"evidence\.containers\.0\.restarts"):
        AlertFired.model_validate(nested)


# --- alerts -------------------------------------------------------------------------------------------


def _alert_data(**changes: Any) -> dict[str, Any]:
    return example_payloads()[AlertFired.event_type].model_dump(mode="json") | changes


def test_alert_labels_must_carry_the_alertname() -> None:
    data = _alert_data()
    data["labels"]["alertname"] = "Other"
    with pytest.raises(ValidationError, match=r"labels\.alertname must equal alertname 'KubePodCrashLooping'"):
        AlertFired.model_validate(data)


def test_alert_label_names_follow_prometheus_rules() -> None:
    data = _alert_data()
    data["labels"]["app.kubernetes.io/name"] = "checkout"
    with pytest.raises(ValidationError, match=r"label names \['app.kubernetes.io/name'\] are invalid"):
        AlertFired.model_validate(data)


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"severity": "fatal"}, "severity\n  Input should be 'critical', 'warning' or 'info'"),
        ({"fingerprint": "XYZ"}, "fingerprint\n  String should match pattern"),
        ({"starts_at": "2025-03-14T09:26:53"}, "starts_at\n  Input should have timezone info"),
        ({"source": "prometheus"}, "source\n  Input should be 'watcher', 'alertmanager' or 'zabbix'"),
    ],
)
def test_alert_field_errors_name_the_field(changes: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        AlertFired.model_validate(_alert_data(**changes))
    assert fragment in str(info.value)


def test_resolved_alert_cannot_end_before_it_started() -> None:
    data = example_payloads()[AlertResolved.event_type].model_dump(mode="json")
    data["ends_at"] = "2025-03-14T09:00:00Z"
    with pytest.raises(ValidationError, match=r"ends_at 2025-03-14T09:00:00\+00:00 is before starts_at"):
        AlertResolved.model_validate(data)


# --- deploy requests ----------------------------------------------------------------------------------


def _request(**changes: Any) -> dict[str, Any]:
    base = {
        "cluster": "prod",
        "workload": {"kind": "Deployment", "namespace": "payments", "name": "checkout"},
        "strategy": "rolling",
        "images": {"app": "registry.example.com/payments/checkout:1.42.0"},
        "requester": {"kind": "user", "id": "oidc|alice"},
    }
    return base | changes


def _request_error(**changes: Any) -> str:
    with pytest.raises(ValidationError) as info:
        DeployRequested.model_validate(_request(**changes))
    return str(info.value)


def test_rolling_request_with_images_is_valid_with_sane_defaults() -> None:
    request = DeployRequested.model_validate(_request())
    assert request.strategy is Strategy.ROLLING
    assert request.progress_deadline_seconds == 600
    assert request.to_revision is None


def test_canary_without_steps_is_refused() -> None:
    assert "canary needs canary.steps" in _request_error(strategy="canary")
    assert "canary.steps\n  Tuple should have at least 1 item" in _request_error(
        strategy="canary", canary={"steps": []}
    )


def test_canary_weights_must_ascend_within_1_to_100() -> None:
    message = _request_error(strategy="canary", canary={"steps": [{"weight": 20}, {"weight": 20}]})
    assert "canary step weights must be strictly ascending: step 2 has weight 20 after 20" in message
    assert "less than or equal to 100" in _request_error(strategy="canary", canary={"steps": [{"weight": 120}]})
    assert "greater than or equal to 1" in _request_error(strategy="canary", canary={"steps": [{"weight": 0}]})


def test_canary_with_ascending_steps_and_analysis_is_valid() -> None:
    request = DeployRequested.model_validate(
        _request(
            strategy="canary",
            canary={
                "steps": [
                    {
                        "weight": 10,
                        "pause_seconds": 60,
                        "analysis": {
                            "metrics": [
                                {
                                    "name": "success-rate",
                                    "provider": {"query": "sum(rate(ok[1m]))/sum(rate(all[1m]))"},
                                    "success_condition": {"operator": ">=", "threshold": 0.99},
                                    "failure_limit": 1,
                                }
                            ],
                            "inconclusive": "pause",
                        },
                    },
                    {"weight": 100},
                ]
            },
        )
    )
    assert request.canary is not None
    step = request.canary.steps[0]
    assert step.analysis is not None
    assert step.analysis.inconclusive.value == "pause"
    assert step.analysis.metrics[0].success_condition.holds(0.995)
    assert not step.analysis.metrics[0].success_condition.holds(0.98)


def test_rollback_forbids_images_and_manifest() -> None:
    message = _request_error(strategy="rollback", to_revision=41)
    assert "rollback must not carry images" in message
    manifest = {"kind": "Deployment", "metadata": {"name": "checkout"}}
    assert "rollback must not carry a manifest" in _request_error(strategy="rollback", images={}, manifest=manifest)


def test_rollback_to_a_revision_is_valid_and_to_revision_needs_rollback() -> None:
    request = DeployRequested.model_validate(_request(strategy="rollback", images={}, to_revision=41))
    assert request.to_revision == 41
    assert "to_revision is only allowed with strategy rollback, not rolling" in _request_error(to_revision=41)


def test_images_or_manifest_exactly_one() -> None:
    assert "rolling needs exactly one of images or manifest" in _request_error(images={})
    manifest = {"kind": "Deployment", "metadata": {"name": "checkout"}}
    assert "rolling needs exactly one of images or manifest" in _request_error(manifest=manifest)


def test_manifest_must_describe_the_workload() -> None:
    message = _request_error(images={}, manifest={"kind": "Deployment", "metadata": {"name": "cart"}})
    assert "manifest is Deployment/cart but workload is Deployment/checkout" in message


def test_image_references_and_container_names_are_checked() -> None:
    assert "'App_1' is not a valid container name" in _request_error(images={"App_1": "nginx:1.27"})
    assert "is not an image reference" in _request_error(images={"app": "nginx 1.27"})


def test_blue_green_needs_its_spec_and_deployments_only() -> None:
    assert "blue-green needs blue_green.active_service" in _request_error(strategy="blue-green")
    message = _request_error(
        strategy="blue-green",
        blue_green={"active_service": "checkout"},
        workload={"kind": "StatefulSet", "namespace": "payments", "name": "checkout"},
    )
    assert "blue-green is only supported for Deployments" in message


def test_analysis_failure_limit_below_count_and_unique_metric_names() -> None:
    metric = {
        "name": "errors",
        "provider": {"query": "up"},
        "success_condition": {"operator": "==", "threshold": 1},
        "count": 3,
        "failure_limit": 3,
    }
    message = _request_error(analysis={"metrics": [metric]})
    assert "failure_limit 3 must be less than count 3" in message
    ok = metric | {"failure_limit": 0}
    assert "analysis metric names must be unique, repeated: ['errors']" in _request_error(
        analysis={"metrics": [ok, ok]}
    )


def test_recreate_cannot_be_analysed() -> None:
    analysis = {
        "metrics": [
            {"name": "up", "provider": {"query": "up"}, "success_condition": {"operator": "==", "threshold": 1}}
        ]
    }
    assert "recreate has no window to analyse" in _request_error(strategy="recreate", analysis=analysis)


# --- scale, audit ---------------------------------------------------------------------------------------


def test_cost_delta_must_match_before_and_after() -> None:
    assert CostEstimate(monthly_now=100, monthly_after=80, monthly_delta=-20).monthly_delta == -20
    with pytest.raises(ValidationError, match=r"monthly_delta 20.0 must equal monthly_after - monthly_now \(-20.00\)"):
        CostEstimate(monthly_now=100, monthly_after=80, monthly_delta=20)


def test_scale_recommendation_needs_something_to_change() -> None:
    data = example_payloads()[ScaleRecommended.event_type].model_dump(mode="json") | {
        "containers": [],
        "replicas": None,
    }
    with pytest.raises(ValidationError, match="needs container resources or replicas"):
        ScaleRecommended.model_validate(data)


def test_audit_dry_run_outcome_and_flag_agree() -> None:
    data = example_payloads()[AuditRecorded.event_type].model_dump(mode="json")
    with pytest.raises(ValidationError, match="outcome dry_run requires dry_run=true"):
        AuditRecorded.model_validate(data | {"outcome": "dry_run"})
    with pytest.raises(ValidationError, match="a dry run cannot have outcome executed"):
        AuditRecorded.model_validate(data | {"dry_run": True})
    skipped = AuditRecorded.model_validate(data | {"outcome": "skipped", "reason": "alert resolved meanwhile"})
    assert skipped.outcome.value == "skipped"


def test_audit_action_is_a_dotted_lowercase_name() -> None:
    data = example_payloads()[AuditRecorded.event_type].model_dump(mode="json")
    with pytest.raises(ValidationError, match="action\n  String should match pattern"):
        AuditRecorded.model_validate(data | {"action": "Delete Pod"})


def test_timestamps_must_be_timezone_aware_everywhere() -> None:
    data = example_payloads()["io.opsbus.recovery.escalated.v1"].model_dump(mode="json")
    naive = datetime(2025, 3, 14, 9, 0) + timedelta(minutes=1)
    data["history"][0]["started_at"] = naive.isoformat()
    model = EventPayload.registry["io.opsbus.recovery.escalated.v1"]
    with pytest.raises(ValidationError, match=r"history\.0\.started_at\n  Input should have timezone info"):
        model.model_validate(data)
    data["history"][0]["started_at"] = naive.replace(tzinfo=UTC).isoformat()
    assert model.model_validate(data)
