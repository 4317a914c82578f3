"""Which ReplicaSet the rollout view calls new and which old, per strategy (domain/replicasets.py)."""

from __future__ import annotations

from typing import Any

from opsbus.deployer.domain.replicasets import describe


def deployment(name: str, revision: int) -> dict[str, Any]:
    return {"metadata": {"name": name, "annotations": {"deployment.kubernetes.io/revision": str(revision)}}}


def rs(name: str, revision: int, image: str, replicas: int, ready: int | None = None) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "annotations": {"deployment.kubernetes.io/revision": str(revision)},
            "creationTimestamp": "2026-12-07T10:00:00Z",
        },
        "spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}},
        "status": {"replicas": replicas, "readyReplicas": replicas if ready is None else ready},
    }


def test_rolling_update_new_is_the_rollouts_revision_old_the_one_before() -> None:
    sets = [rs("web-a", 1, "web:1", 0), rs("web-b", 2, "web:2", 1), rs("web-c", 3, "web:3", 2, ready=1)]
    views = describe(deployment("web", 3), sets, new_revision=3)
    assert [(v.name, v.role, v.images["app"], v.replicas, v.ready) for v in views] == [
        ("web-c", "new", "web:3", 2, 1),
        ("web-b", "old", "web:2", 1, 1),
    ]  # web-a has no pods and is older than the old one: left out
    assert views[0].created_at is not None and views[0].created_at.year == 2026


def test_older_sets_with_pods_are_kept_and_marked() -> None:
    sets = [rs("web-a", 1, "web:1", 1), rs("web-b", 2, "web:2", 1), rs("web-c", 3, "web:3", 1)]
    roles = [v.role for v in describe(deployment("web", 3), sets, new_revision=3)]
    assert roles == ["new", "old", "older"]


def test_canary_new_is_the_canary_deployments_set_and_the_stable_current_is_old() -> None:
    stable = [rs("web-b", 2, "web:2", 4)]
    canary = [rs("web-canary-x", 1, "web:3", 2)]
    views = describe(
        deployment("web", 2), stable, canary=deployment("web-canary", 1), canary_sets=canary, new_revision=2
    )
    assert [(v.deployment, v.role, v.images["app"]) for v in views] == [
        ("web-canary", "new", "web:3"),
        ("web", "old", "web:2"),
    ]


def test_without_a_recorded_revision_the_deployments_current_set_is_new() -> None:
    views = describe(deployment("web", 2), [rs("web-b", 2, "web:2", 2), rs("web-a", 1, "web:1", 0)], new_revision=None)
    assert [(v.name, v.role) for v in views] == [("web-b", "new"), ("web-a", "old")]
