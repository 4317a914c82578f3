"""`change.recorded`: the model refuses values where only digests may travel, and round-trips through an envelope."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from opsbus.common.events.envelope import Envelope
from opsbus.common.events.payloads import ChangeKind, ChangeOrigin, ChangeRecorded, FieldChange, ResourceRef

T0 = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)
DIGEST = "sha256:" + "ab" * 16


def _secret_change(before: str | None, after: str | None) -> ChangeRecorded:
    return ChangeRecorded(
        kinds=(ChangeKind.CONFIG,),
        object=ResourceRef(kind="Secret", namespace="payments", name="db", api_version="v1"),
        diff=(FieldChange(path="data[password]", before=before, after=after),),
        summary="Secret payments/db: 1 key changed",
        origin=ChangeOrigin.OBSERVED,
        observed_at=T0,
    )


def test_a_secret_diff_carries_digests() -> None:
    change = _secret_change(DIGEST, "sha256:" + "cd" * 16)
    assert change.diff[0].after == "sha256:" + "cd" * 16


@pytest.mark.parametrize("value", ["hunter2", "sha256:short", "SHA256:" + "ab" * 16])
def test_a_secret_value_is_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="digests, not values"):
        _secret_change(DIGEST, value)


def test_a_configmap_value_is_refused_too() -> None:
    with pytest.raises(ValidationError, match="digests"):
        ChangeRecorded(
            kinds=(ChangeKind.CONFIG,),
            object=ResourceRef(kind="ConfigMap", namespace="payments", name="app"),
            diff=(FieldChange(path="data[LOG_LEVEL]", before="info", after="debug"),),
            summary="x",
            origin=ChangeOrigin.OBSERVED,
            observed_at=T0,
        )


def test_the_subject_is_change_recorded_cluster_namespace() -> None:
    change = _secret_change(None, DIGEST)
    event = Envelope.build(change, service="watcher", cluster="prod", obj=change.object.as_object_ref())
    assert event.nats_subject() == "change.recorded.prod.payments"
    assert Envelope.from_json(event.to_json()).payload() == change
