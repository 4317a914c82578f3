"""The progression planner against every status shape a Deployment goes through, with an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from opsbus.deployer.domain.progression import (
    Condition,
    Observation,
    Tracking,
    Verdict,
    rollback_template,
    step,
)

T0 = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)


def obs(**kw: Any) -> Observation:
    base: dict[str, Any] = {"generation": 2, "observed_generation": 2, "spec_replicas": 3}
    return Observation(**{**base, **kw})


def tracking(**kw: Any) -> Tracking:
    base: dict[str, Any] = {"target_generation": 2, "deadline_seconds": 60, "last_progress_at": T0, "grace_seconds": 10}
    return Tracking(**{**base, **kw})


def test_waits_until_the_controller_observes_the_generation_we_wrote() -> None:
    s = step(obs(observed_generation=1, replicas=3, updated=3, available=3), tracking(), T0)
    # Counts look complete, but they describe the old generation.
    assert s.verdict is Verdict.WAIT
    assert "observe generation 2" in s.message


def test_complete_when_updated_replicas_and_available_all_equal_spec() -> None:
    s = step(obs(replicas=3, updated=3, ready=3, available=3), tracking(), T0)
    assert s.verdict is Verdict.COMPLETE
    assert s.counts.updated == 3


@pytest.mark.parametrize(
    ("replicas", "updated", "available", "why"),
    [
        (4, 3, 3, "an old pod is still there (surge)"),
        (3, 2, 3, "not every replica runs the new template"),
        (3, 3, 2, "a new replica is not available yet"),
        (0, 0, 0, "nothing exists yet"),
    ],
)
def test_not_complete_while_any_count_falls_short(replicas: int, updated: int, available: int, why: str) -> None:
    s = step(obs(replicas=replicas, updated=updated, available=available), tracking(), T0)
    assert s.verdict is Verdict.WAIT, why


def test_scaled_to_zero_is_complete() -> None:
    assert step(obs(spec_replicas=0), tracking(), T0).verdict is Verdict.COMPLETE


def test_controllers_progress_deadline_exceeded_fails_at_once() -> None:
    cond = Condition(
        "Progressing", "False", "ProgressDeadlineExceeded", 'ReplicaSet "web-2" has timed out progressing.'
    )
    s = step(obs(replicas=4, updated=1, available=3, conditions=(cond,)), tracking(), T0 + timedelta(seconds=1))
    assert s.verdict is Verdict.DEADLINE_EXCEEDED
    assert "timed out progressing" in s.message


def test_stale_progress_deadline_condition_of_an_older_generation_is_ignored() -> None:
    cond = Condition("Progressing", "False", "ProgressDeadlineExceeded", "old")
    s = step(obs(observed_generation=1, conditions=(cond,)), tracking(), T0)
    assert s.verdict is Verdict.WAIT


def test_own_deadline_fires_after_deadline_plus_grace_without_progress() -> None:
    t = tracking()
    first = step(obs(replicas=4, updated=1, available=3), t, T0)
    assert first.verdict is Verdict.WAIT
    same = obs(replicas=4, updated=1, available=3)
    at_deadline = step(same, first.tracking, T0 + timedelta(seconds=70))
    assert at_deadline.verdict is Verdict.WAIT  # 60 s deadline + 10 s grace: not yet
    late = step(same, at_deadline.tracking, T0 + timedelta(seconds=71))
    assert late.verdict is Verdict.DEADLINE_EXCEEDED
    assert "no progress for 71s" in late.message


def test_any_count_change_is_progress_and_resets_the_deadline() -> None:
    first = step(obs(replicas=4, updated=1, available=3), tracking(), T0)
    moved = step(obs(replicas=4, updated=2, available=3), first.tracking, T0 + timedelta(seconds=65))
    assert moved.progressed
    assert moved.tracking.last_progress_at == T0 + timedelta(seconds=65)
    still = step(obs(replicas=4, updated=2, available=3), moved.tracking, T0 + timedelta(seconds=130))
    assert still.verdict is Verdict.WAIT
    assert not still.progressed


def test_a_paused_deployment_does_not_age() -> None:
    first = step(obs(replicas=4, updated=1, paused=True), tracking(), T0)
    later = step(obs(replicas=4, updated=1, paused=True), first.tracking, T0 + timedelta(hours=1))
    assert later.verdict is Verdict.WAIT
    assert "paused" in later.message


def test_observation_from_apiserver_json() -> None:
    o = Observation.from_deployment(
        {
            "metadata": {"generation": 5, "annotations": {"deployment.kubernetes.io/revision": "3"}},
            "spec": {"replicas": 2},
            "status": {
                "observedGeneration": 5,
                "replicas": 3,
                "updatedReplicas": 1,
                "readyReplicas": 2,
                "availableReplicas": 2,
                "unavailableReplicas": 1,
                "conditions": [{"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"}],
            },
        }
    )
    assert (o.generation, o.observed_generation, o.spec_replicas, o.revision) == (5, 5, 2, 3)
    assert (o.replicas, o.updated, o.ready, o.available, o.unavailable) == (3, 1, 2, 2, 1)
    assert o.condition("Progressing") == Condition("Progressing", "True", "ReplicaSetUpdated", None)


def test_observation_of_a_fresh_deployment_without_status() -> None:
    o = Observation.from_deployment({"metadata": {"generation": 1}, "spec": {}})
    assert (o.spec_replicas, o.observed_generation, o.revision) == (1, 0, None)


def _rs(revision: str, image: str) -> dict[str, Any]:
    return {
        "metadata": {"annotations": {"deployment.kubernetes.io/revision": revision}},
        "spec": {
            "template": {
                "metadata": {"labels": {"app": "web", "pod-template-hash": "abc"}},
                "spec": {"containers": [{"name": "app", "image": image}]},
            }
        },
    }


def test_rollback_target_is_the_newest_older_revision_without_the_hash_label() -> None:
    sets = [_rs("1", "app:1"), _rs("2", "app:2"), _rs("3", "app:3")]
    found = rollback_template(sets, current_revision=3, to_revision=None)
    assert found is not None
    revision, template = found
    assert revision == 2
    assert template["spec"]["containers"][0]["image"] == "app:2"
    assert template["metadata"]["labels"] == {"app": "web"}


def test_rollback_to_a_named_revision_and_to_one_that_is_gone() -> None:
    sets = [_rs("1", "app:1"), _rs("3", "app:3")]
    found = rollback_template(sets, current_revision=3, to_revision=1)
    assert found is not None
    assert found[0] == 1
    assert rollback_template(sets, current_revision=3, to_revision=2) is None
    assert rollback_template([_rs("1", "app:1")], current_revision=1, to_revision=None) is None
