"""The audit helper builds correct, linked, deduplicable `audit.recorded` events."""

from __future__ import annotations

import pytest

from opsbus.common.audit import Auditor
from opsbus.common.events import Envelope
from opsbus.common.events.examples import example_events
from opsbus.common.events.payloads import AlertFired, AuditOutcome, AuditRecorded, ResourceRef

POD = ResourceRef(kind="Pod", namespace="payments", name="checkout-1")


def test_a_deliberate_no_op_is_recorded_and_linked_to_its_cause() -> None:
    alert = example_events()[AlertFired.event_type]
    auditor = Auditor(service="healer", cluster="prod")
    event = auditor.entry(
        action="recovery.delete_pod",
        target=POD,
        outcome=AuditOutcome.SKIPPED,
        reason="alert resolved before execution",
        cause=alert,
    )
    assert event.type == "io.opsbus.audit.recorded.v1"
    assert event.nats_subject() == "audit.recorded.prod.payments"
    assert event.causationid == alert.id
    assert event.correlationid == (alert.correlationid or alert.id)
    entry = event.payload_as(AuditRecorded)
    assert entry.actor.id == "healer"
    assert entry.outcome is AuditOutcome.SKIPPED
    assert entry.request_id == alert.id


def test_idempotency_key_gives_the_same_id_for_the_same_decision() -> None:
    auditor = Auditor(service="healer", cluster="prod")
    fields = {"action": "recovery.delete_pod", "target": POD, "outcome": AuditOutcome.EXECUTED, "reason": "ladder 1"}
    first = auditor.entry(**fields, idempotency_key="alert-1:step-0")  # type: ignore[arg-type]
    again = auditor.entry(**fields, idempotency_key="alert-1:step-0")  # type: ignore[arg-type]
    other = auditor.entry(**fields, idempotency_key="alert-1:step-1")  # type: ignore[arg-type]
    assert first.id == again.id
    assert other.id != first.id


async def test_record_hands_the_event_to_the_sink() -> None:
    recorded: list[Envelope] = []

    async def sink(event: Envelope) -> None:
        recorded.append(event)

    auditor = Auditor(service="optimizer", cluster="prod", sink=sink)
    event = await auditor.record(
        action="scale.apply", target=POD, outcome=AuditOutcome.DRY_RUN, reason="namespace in dry-run", dry_run=True
    )
    assert recorded == [event]


async def test_record_without_sink_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="no sink"):
        await Auditor(service="x", cluster="prod").record(
            action="a", target=POD, outcome=AuditOutcome.EXECUTED, reason="r"
        )


def test_a_reason_too_long_for_the_model_is_cut_visibly_and_kept_whole_in_details() -> None:
    auditor = Auditor(service="gateway", cluster="prod")
    reason = "comment: " + "x" * 3000
    entry = auditor.entry(
        action="deploy.request", target=POD, outcome=AuditOutcome.EXECUTED, reason=reason, details={"image": "a:1"}
    ).payload_as(AuditRecorded)
    assert len(entry.reason) == 2048
    assert entry.reason.endswith("\u2026")
    assert entry.details == {"image": "a:1", "reason_full": reason}
    short = auditor.entry(action="deploy.request", target=POD, outcome=AuditOutcome.EXECUTED, reason="fits")
    assert "reason_full" not in short.payload_as(AuditRecorded).details
