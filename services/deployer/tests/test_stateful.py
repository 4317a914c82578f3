"""StatefulSets, partition by partition: the planner lets one more ordinal through only when the last is ready,
completes at partition 0, fails on its own deadline, and its rollback finds the template and the stuck pods."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from opsbus.common.events.payloads.common import Actor, ActorKind, WorkloadRef
from opsbus.common.events.payloads.deploy import DeployFailureReason, DeployRequested, Strategy
from opsbus.deployer.domain.changes import ChangeRefused
from opsbus.deployer.domain.progression import Tracking, Verdict
from opsbus.deployer.domain.stateful import advance, observe, plan_change, rollback_template, stuck_pods

T0 = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)
REVISIONS = [
    {"metadata": {"name": "db-old"}, "revision": 1, "data": {"spec": {"template": {"$patch": "replace",
        "metadata": {"labels": {"app": "db", "controller-revision-hash": "db-old"}},
        "spec": {"containers": [{"name": "app", "image": "db:1"}]}
    }}}},
    {"metadata": {"name": "db-new"}, "revision": 2, "data": {"spec": {"template": {
        "metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "app", "image": "db:2"}]},
    }}}},
]  # fmt: skip


def sts(
    *, partition: int | None = 2, generation: int = 2, observed: int = 2, updated: int = 1, ready: int = 3
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "replicas": 3,
        "selector": {"matchLabels": {"app": "db"}},
        "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "app", "image": "db:1"}]}},
    }
    if partition is not None:
        spec["updateStrategy"] = {"type": "RollingUpdate", "rollingUpdate": {"partition": partition}}
    return {
        "kind": "StatefulSet",
        "metadata": {"name": "db", "generation": generation, "resourceVersion": "7"},
        "spec": spec,
        "status": {
            "observedGeneration": observed,
            "replicas": 3,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "currentRevision": "db-old",
            "updateRevision": "db-new",
        },
    }


def request(strategy: Strategy = Strategy.ROLLING) -> DeployRequested:
    return DeployRequested(
        cluster="c",
        workload=WorkloadRef(kind="StatefulSet", namespace="ns", name="db"),
        strategy=strategy,
        images={"app": "db:2"} if strategy is not Strategy.ROLLBACK else {},
        requester=Actor(kind=ActorKind.USER, id="u"),
    )


def test_observe_reads_the_partition_and_the_update_revisions_number() -> None:
    view = observe(sts(), REVISIONS)
    assert view.partition == 2 and view.update_revision == "db-new" and view.obs.revision == 2
    assert (view.obs.spec_replicas, view.obs.updated, view.obs.available) == (3, 1, 3)


def test_the_change_lets_only_the_highest_ordinal_through() -> None:
    change = plan_change(sts(partition=None), request(), "r1")
    assert change.images == {"app": "db:2"}
    assert change.patch[0] == {"op": "test", "path": "/metadata/resourceVersion", "value": "7"}
    assert {"op": "add", "path": "/spec/updateStrategy", "value": {
        "type": "RollingUpdate", "rollingUpdate": {"partition": 2}}} in change.patch  # fmt: skip
    assert not any(op["path"] == "/spec/progressDeadlineSeconds" for op in change.patch)
    with pytest.raises(ChangeRefused) as refused:
        plan_change(sts(), request(Strategy.RECREATE), "r1")
    assert refused.value.reason is DeployFailureReason.INVALID_REQUEST


def test_the_partition_goes_down_only_when_its_pods_are_updated_and_all_are_ready() -> None:
    tracking = Tracking(2, 60, T0, grace_seconds=0)
    waiting = advance(observe(sts(updated=1, ready=2), REVISIONS), tracking, T0)
    assert waiting.lower_to is None and waiting.step.verdict is Verdict.WAIT
    through = advance(observe(sts(updated=1, ready=3), REVISIONS), tracking, T0)
    assert through.lower_to == 1 and through.step.progressed
    unobserved = advance(observe(sts(observed=1, updated=1), REVISIONS), tracking, T0)
    assert unobserved.lower_to is None


def test_partition_zero_completes_like_a_deployment_and_a_stall_fails_on_the_deadline() -> None:
    tracking = Tracking(4, 60, T0, grace_seconds=0)
    done = advance(observe(sts(partition=0, generation=4, observed=4, updated=3), REVISIONS), tracking, T0)
    assert done.step.verdict is Verdict.COMPLETE and done.lower_to is None
    stuck = observe(sts(partition=1, generation=4, observed=4, updated=2, ready=2), REVISIONS)
    first = advance(stuck, tracking, T0)
    late = advance(stuck, first.step.tracking, T0 + timedelta(seconds=61))
    assert late.step.verdict is Verdict.DEADLINE_EXCEEDED


def test_rollback_template_comes_from_the_controller_revisions_without_their_markers() -> None:
    revision, template = rollback_template(REVISIONS, current=2, to_revision=None) or (0, {})
    assert revision == 1 and "$patch" not in template
    assert template["metadata"]["labels"] == {"app": "db"}
    assert template["spec"]["containers"][0]["image"] == "db:1"
    assert rollback_template(REVISIONS, current=2, to_revision=7) is None
    assert rollback_template(REVISIONS[1:], current=2, to_revision=None) is None


def pod(name: str, revision: str, ready: bool, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": {"app": "db", "controller-revision-hash": revision}}
    if deleting:
        meta["deletionTimestamp"] = "2025-03-14T09:00:00Z"
    return {"metadata": meta, "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def test_stuck_pods_are_the_unready_ones_on_another_revision() -> None:
    pods = [
        pod("db-0", "db-old", True),
        pod("db-1", "db-bad", True),  # ready on the bad revision: the controller replaces it in order
        pod("db-2", "db-bad", False),  # crash-looping on the bad revision: the controller waits forever
        pod("db-3", "db-old", False),  # not ready but on the target revision: its own business
        pod("db-4", "db-bad", False, deleting=True),
    ]
    assert stuck_pods(pods, "db-old") == ["db-2"]
    assert stuck_pods(pods, None) == []
