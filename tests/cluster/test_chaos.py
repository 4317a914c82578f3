"""Chaos faults show up in object status the way a real kubelet / scheduler / controller-manager reports them.

Each fault is switched on with `sandbox.sh chaos FAULT TARGET NS` (the same command users run), asserted field by
field, then switched off with `sandbox.sh heal` and the object must recover.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.cluster.kube import Cluster, condition, container_status, is_running_and_ready, wait_until

pytestmark = pytest.mark.cluster

FAULT_TIMEOUT_S = 90
ROLLOUT_TIMEOUT_S = 120
CHAOS_LABEL = "opsbus.io/chaos"


def _running_pod(cluster: Cluster, name: str) -> Any:
    cluster.create_pod(name)
    return wait_until(
        f"pod {name} Running",
        lambda: (p := cluster.pod(name)) and is_running_and_ready(p) and p,
        timeout=ROLLOUT_TIMEOUT_S,
    )


def _waiting_reason(pod: Any) -> str | None:
    cs = container_status(pod)
    if cs is None or cs.state.waiting is None:
        return None
    reason: str | None = cs.state.waiting.reason
    return reason


@pytest.mark.parametrize(
    ("fault", "exit_code", "reason"),
    [("crashloop", 1, "Error"), ("oomkilled", 137, "OOMKilled")],
)
def test_container_crash_faults_report_crashloopbackoff(
    cluster: Cluster, fault: str, exit_code: int, reason: str
) -> None:
    _running_pod(cluster, "victim")

    cluster.chaos(fault, "pod/victim")
    first = wait_until(
        f"{fault}: container waiting in CrashLoopBackOff",
        lambda: (p := cluster.pod("victim")) and _waiting_reason(p) == "CrashLoopBackOff" and p,
        timeout=FAULT_TIMEOUT_S,
    )
    assert first.metadata.labels[CHAOS_LABEL] == fault
    assert first.status.phase == "Running"
    for kind in ("Ready", "ContainersReady"):
        cond = condition(first, kind)
        assert cond.status == "False"
        assert cond.reason == "ContainersNotReady"
        assert cond.message == "containers with unready status: [app]"
    cs = container_status(first)
    assert cs.ready is False
    assert cs.started is False
    assert cs.restart_count >= 1
    assert cs.state.running is None
    assert cs.state.terminated is None
    assert cs.state.waiting.message.startswith("back-off ")
    assert "restarting failed container=app pod=victim_" in cs.state.waiting.message
    terminated = cs.last_state.terminated
    assert terminated is not None
    assert terminated.exit_code == exit_code
    assert terminated.reason == reason
    assert terminated.finished_at is not None
    assert terminated.started_at is not None

    # The kubelet keeps restarting the container: the count rises while the fault is on.
    rising = wait_until(
        f"{fault}: restartCount rising past {cs.restart_count}",
        lambda: (p := cluster.pod("victim")) and container_status(p).restart_count > cs.restart_count and p,
        timeout=FAULT_TIMEOUT_S,
    )
    assert _waiting_reason(rising) == "CrashLoopBackOff"
    crashed = container_status(rising).restart_count

    cluster.heal(fault, "pod/victim")
    healed = wait_until(
        f"{fault}: pod Running and Ready after heal",
        lambda: (p := cluster.pod("victim")) and is_running_and_ready(p) and p,
        timeout=FAULT_TIMEOUT_S,
    )
    assert CHAOS_LABEL not in (healed.metadata.labels or {})
    cs = container_status(healed)
    assert cs.ready is True
    assert cs.state.running is not None
    assert cs.state.waiting is None
    # One more successful restart, and the crash that preceded it is kept as lastState.
    assert cs.restart_count >= crashed + 1
    assert cs.last_state.terminated.exit_code == exit_code


def test_image_pull_fault_on_a_pod_alternates_errimagepull_and_backoff(cluster: Cluster) -> None:
    _running_pod(cluster, "puller")

    cluster.chaos("imagepull", "pod/puller")
    seen: set[str] = set()

    def both_reasons() -> Any:
        pod = cluster.pod("puller")
        reason = _waiting_reason(pod)
        if reason is not None:
            seen.add(reason)
        return pod if {"ErrImagePull", "ImagePullBackOff"} <= seen else None

    pod = wait_until("ErrImagePull then ImagePullBackOff", both_reasons, timeout=FAULT_TIMEOUT_S, state=lambda: seen)
    cs = container_status(pod)
    assert cs.ready is False
    assert cs.restart_count == 0
    assert cs.state.running is None
    assert cs.state.waiting.reason in {"ErrImagePull", "ImagePullBackOff"}
    assert "registry.example/app:1.0" in cs.state.waiting.message
    ready = condition(pod, "Ready")
    assert ready.status == "False"
    assert ready.reason == "ContainersNotReady"

    cluster.heal("imagepull", "pod/puller")
    healed = wait_until(
        "pod Running and Ready after image pull heal",
        lambda: (p := cluster.pod("puller")) and is_running_and_ready(p) and p,
        timeout=FAULT_TIMEOUT_S,
    )
    cs = container_status(healed)
    assert cs.state.running is not None
    assert cs.restart_count == 0


def test_image_pull_fault_on_a_deployment_is_a_stuck_rollout(cluster: Cluster) -> None:
    cluster.create_deployment("shop", replicas=3)
    wait_until("deployment shop rolled out", lambda: cluster.rollout_complete("shop"), timeout=ROLLOUT_TIMEOUT_S)
    old_pods = {p.metadata.name for p in cluster.pods("shop")}

    cluster.chaos("imagepull", "deployment/shop")
    stuck = wait_until(
        "a new shop pod in ImagePullBackOff",
        lambda: next(
            (
                p
                for p in cluster.pods("shop")
                if p.metadata.name not in old_pods and _waiting_reason(p) == "ImagePullBackOff"
            ),
            None,
        ),
        timeout=FAULT_TIMEOUT_S,
        state=lambda: cluster.describe_pods("shop"),
    )
    assert stuck.status.phase == "Pending"
    assert stuck.metadata.labels[CHAOS_LABEL] == "imagepull"
    assert condition(stuck, "PodScheduled").status == "True"
    assert condition(stuck, "Ready").status == "False"
    assert container_status(stuck).state.waiting.message.startswith('Back-off pulling image "registry.example/app:1.0"')
    # The old pods keep serving: the rollout cannot make progress past the surge pod.
    deployment = cluster.deployment("shop")
    assert deployment.status.available_replicas == 3
    assert (deployment.status.updated_replicas or 0) < 3
    assert old_pods <= {p.metadata.name for p in cluster.pods("shop")}

    cluster.heal("imagepull", "deployment/shop")
    wait_until(
        "shop rolled back to healthy pods",
        lambda: cluster.rollout_complete("shop") and cluster.running_pods("shop", 3),
        timeout=ROLLOUT_TIMEOUT_S,
        state=lambda: cluster.describe_pods("shop"),
    )
    assert all(CHAOS_LABEL not in (p.metadata.labels or {}) for p in cluster.pods("shop"))


def test_unschedulable_fault_leaves_new_pods_pending(cluster: Cluster) -> None:
    cluster.create_deployment("batch", replicas=2)
    wait_until("deployment batch rolled out", lambda: cluster.rollout_complete("batch"), timeout=ROLLOUT_TIMEOUT_S)
    old_pods = {p.metadata.name for p in cluster.pods("batch")}

    cluster.chaos("unschedulable", "deployment/batch")

    def unschedulable_pod() -> Any:
        for pod in cluster.pods("batch"):
            scheduled = condition(pod, "PodScheduled") if pod.status.conditions else None
            if pod.metadata.name not in old_pods and scheduled is not None and scheduled.status == "False":
                return pod
        return None

    pending = wait_until(
        "a new batch pod marked Unschedulable by the scheduler",
        unschedulable_pod,
        timeout=FAULT_TIMEOUT_S,
        state=lambda: cluster.describe_pods("batch"),
    )
    assert pending.status.phase == "Pending"
    assert pending.spec.node_name is None
    scheduled = condition(pending, "PodScheduled")
    assert scheduled.reason == "Unschedulable"
    assert "didn't match Pod's node affinity/selector" in scheduled.message
    assert not pending.status.container_statuses

    cluster.heal("unschedulable", "deployment/batch")
    pods = wait_until(
        "batch back to 2 Running pods",
        lambda: cluster.rollout_complete("batch") and cluster.running_pods("batch", 2),
        timeout=ROLLOUT_TIMEOUT_S,
        state=lambda: cluster.describe_pods("batch"),
    )
    assert all(not p.spec.node_selector for p in pods)


def test_node_not_ready_is_tainted_by_the_controller_manager(cluster: Cluster) -> None:
    name = f"chaos-node-{uuid.uuid4().hex[:6]}"
    cluster.create_fake_node(name)
    try:
        wait_until(
            f"node {name} Ready",
            lambda: (n := cluster.node(name)) and n.status.conditions and condition(n, "Ready").status == "True",
            timeout=FAULT_TIMEOUT_S,
        )

        cluster.chaos("notready", f"node/{name}")
        node = wait_until(
            f"node {name} NotReady",
            lambda: (n := cluster.node(name)) and condition(n, "Ready").status == "False" and n,
            timeout=FAULT_TIMEOUT_S,
        )
        ready = condition(node, "Ready")
        assert ready.reason == "KubeletNotReady"
        assert "PLEG is not healthy" in ready.message
        assert ready.last_heartbeat_time is not None

        def not_ready_taints() -> set[tuple[str, str]] | None:
            taints = {(t.key, t.effect) for t in cluster.node(name).spec.taints or []}
            keys = {key for key, _ in taints}
            return taints if keys & {"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"} else None

        taints = wait_until("the controller manager to taint the node", not_ready_taints, timeout=FAULT_TIMEOUT_S)
        assert ("node.kubernetes.io/not-ready", "NoSchedule") in taints or (
            "node.kubernetes.io/not-ready",
            "NoExecute",
        ) in taints

        # The kubelet keeps reporting while NotReady: the heartbeat moves, the transition time does not.
        first_heartbeat = ready.last_heartbeat_time
        later = wait_until(
            "a later NotReady heartbeat",
            lambda: (n := cluster.node(name)) and condition(n, "Ready").last_heartbeat_time > first_heartbeat and n,
            timeout=FAULT_TIMEOUT_S,
        )
        assert condition(later, "Ready").status == "False"
        assert condition(later, "Ready").last_transition_time == ready.last_transition_time

        cluster.heal("notready", f"node/{name}")
        wait_until(
            f"node {name} Ready again",
            lambda: condition(cluster.node(name), "Ready").status == "True",
            timeout=FAULT_TIMEOUT_S,
        )
        untainted = wait_until(
            "the controller manager to lift the not-ready taints",
            lambda: (
                (n := cluster.node(name))
                and not {t.key for t in n.spec.taints or []}
                & {"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"}
                and n
            ),
            timeout=FAULT_TIMEOUT_S,
        )
        assert CHAOS_LABEL not in (untainted.metadata.labels or {})
    finally:
        cluster.core.delete_node(name)
