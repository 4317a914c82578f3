"""Per-cluster consumer names (`opsbus.common.bus.clusters`): pure, no server."""

from __future__ import annotations

import pytest

from opsbus.common.bus import ConsumerSpec, clustered, for_cluster
from opsbus.common.events.subjects import SubjectError


def test_a_clustered_consumer_carries_its_cluster_and_remembers_its_old_name() -> None:
    spec = for_cluster(ConsumerSpec(durable="healer-alerts", stream="ALERT", subjects=["alert.fired.east.*"]), "east")
    assert (spec.durable, spec.legacy_durable) == ("healer-alerts-east", "healer-alerts")
    assert list(spec.subjects) == ["alert.fired.east.*"]


def test_a_filter_on_another_cluster_or_on_all_is_refused() -> None:
    for subject in ("alert.fired.west.*", "alert.fired.>"):
        with pytest.raises(ValueError, match="not on cluster 'east'"):
            for_cluster(ConsumerSpec(durable="optimizer-oom", stream="ALERT", subjects=[subject]), "east")


def test_a_cluster_name_that_is_not_a_token_is_refused() -> None:
    with pytest.raises(SubjectError):
        clustered("healer-alerts", "prod.eu")
