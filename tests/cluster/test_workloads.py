"""The sandbox behaves like a real cluster for ordinary workloads.

Real kube-apiserver, kube-controller-manager and kube-scheduler; kwok plays the kubelets. Deployments must get
ReplicaSets and Running pods on kwok nodes, scale, replace deleted pods, roll out a new image and roll back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.cluster.conftest import SandboxHandle
from tests.cluster.kube import Cluster, wait_until

pytestmark = pytest.mark.cluster

ROLLOUT_TIMEOUT_S = 120


def _versions() -> dict[str, str]:
    env = Path(__file__).resolve().parents[2] / "deploy" / "sandbox" / "versions.env"
    pairs = (line.split("=", 1) for line in env.read_text().splitlines() if "=" in line and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def test_apiserver_reports_the_pinned_version(sandbox: SandboxHandle, cluster: Cluster) -> None:
    if not sandbox.is_sandbox:
        pytest.skip("OPSBUS_TEST_KUBECONFIG points at another cluster; its version is its own")
    served = json.loads(cluster.kubectl("get", "--raw", "/version"))
    want = _versions()["KUBE_VERSION"]
    assert served["gitVersion"] == want
    assert f"v{served['major']}.{served['minor']}" == want.rsplit(".", 1)[0]
    client_version = json.loads(cluster.kubectl("version", "--client", "-o", "json"))
    assert client_version["clientVersion"]["gitVersion"] == want


def test_deployment_gets_replicaset_and_running_pods_that_scale_and_are_replaced(cluster: Cluster) -> None:
    cluster.create_deployment("web", replicas=3)

    pods = wait_until(
        "3 Running pods of deployment web",
        lambda: cluster.running_pods("web", 3),
        timeout=ROLLOUT_TIMEOUT_S,
        state=lambda: cluster.describe_pods("web"),
    )
    replica_sets = cluster.replica_sets("web")
    assert len(replica_sets) == 1
    rs = replica_sets[0]
    assert rs.metadata.owner_references[0].kind == "Deployment"
    assert rs.metadata.owner_references[0].name == "web"
    for pod in pods:
        assert pod.metadata.owner_references[0].name == rs.metadata.name
        node = cluster.node(pod.spec.node_name)
        assert node.metadata.annotations.get("kwok.x-k8s.io/node") == "fake"
        assert pod.status.pod_ip
        assert pod.status.container_statuses[0].state.running is not None

    cluster.apps.patch_namespaced_deployment_scale("web", cluster.namespace, {"spec": {"replicas": 5}})
    pods = wait_until(
        "5 Running pods after scaling to 5",
        lambda: cluster.running_pods("web", 5),
        timeout=ROLLOUT_TIMEOUT_S,
        state=lambda: cluster.describe_pods("web"),
    )
    assert len(cluster.replica_sets("web")) == 1

    victim = pods[0].metadata.name
    cluster.core.delete_namespaced_pod(victim, cluster.namespace)

    def replaced() -> list[Any] | None:
        current = cluster.running_pods("web", 5)
        if current is None or victim in {p.metadata.name for p in current}:
            return None
        return current

    pods = wait_until(
        f"a replacement for deleted pod {victim}",
        replaced,
        timeout=ROLLOUT_TIMEOUT_S,
        state=lambda: cluster.describe_pods("web"),
    )
    assert victim not in {p.metadata.name for p in pods}
    assert len(cluster.replica_sets("web")) == 1


def test_rolling_update_and_rollout_undo(cluster: Cluster) -> None:
    cluster.create_deployment("api", replicas=3, image="registry.example/api:1.0")
    wait_until("deployment api rolled out", lambda: cluster.rollout_complete("api"), timeout=ROLLOUT_TIMEOUT_S)
    (first_rs,) = cluster.replica_sets("api")

    cluster.kubectl("set", "image", "deployment/api", "app=registry.example/api:2.0")
    wait_until(
        "the rollout to api:2.0",
        lambda: cluster.rollout_complete("api"),
        timeout=ROLLOUT_TIMEOUT_S,
        state=lambda: cluster.describe_pods("api"),
    )
    # kubectl's own view of completion agrees with ours.
    assert "successfully rolled out" in cluster.kubectl("rollout", "status", "deployment/api", "--timeout=60s")
    replica_sets = {rs.metadata.name: rs for rs in cluster.replica_sets("api")}
    assert len(replica_sets) == 2
    new_rs = next(rs for name, rs in replica_sets.items() if name != first_rs.metadata.name)
    assert new_rs.spec.template.spec.containers[0].image == "registry.example/api:2.0"
    assert new_rs.status.ready_replicas == 3
    assert replica_sets[first_rs.metadata.name].spec.replicas == 0
    pods = wait_until("3 Running api pods", lambda: cluster.running_pods("api", 3), timeout=ROLLOUT_TIMEOUT_S)
    assert {p.spec.containers[0].image for p in pods} == {"registry.example/api:2.0"}

    cluster.kubectl("rollout", "undo", "deployment/api")
    wait_until(
        "the rollback to api:1.0",
        lambda: (
            (d := cluster.rollout_complete("api")) is not None
            and d.spec.template.spec.containers[0].image == "registry.example/api:1.0"
            and d
        ),
        timeout=ROLLOUT_TIMEOUT_S,
        state=lambda: cluster.describe_pods("api"),
    )
    # The undo scales the first ReplicaSet back up rather than making a third one.
    replica_sets = {rs.metadata.name: rs for rs in cluster.replica_sets("api")}
    assert len(replica_sets) == 2
    assert replica_sets[first_rs.metadata.name].spec.replicas == 3
    assert replica_sets[new_rs.metadata.name].spec.replicas == 0
    pods = wait_until("3 Running api:1.0 pods", lambda: cluster.running_pods("api", 3), timeout=ROLLOUT_TIMEOUT_S)
    assert {p.spec.containers[0].image for p in pods} == {"registry.example/api:1.0"}


def test_job_pods_complete_under_kwok_default_stages(cluster: Cluster) -> None:
    """kwok's own pod-complete stage still runs next to the chaos stages: a Job finishes."""
    body = client.V1Job(
        metadata=client.V1ObjectMeta(name="once"),
        spec=client.V1JobSpec(
            backoff_limit=0,
            template=client.V1PodTemplateSpec(
                spec=client.V1PodSpec(
                    restart_policy="Never",
                    containers=[client.V1Container(name="app", image="registry.example/once:1.0")],
                )
            ),
        ),
    )
    cluster.batch.create_namespaced_job(cluster.namespace, body)

    def succeeded() -> Any:
        job: Any = cluster.batch.read_namespaced_job("once", cluster.namespace)
        return job if job.status.succeeded else None

    job = wait_until("job once to succeed", succeeded, timeout=ROLLOUT_TIMEOUT_S)
    assert job.status.succeeded == 1
    complete = [c for c in job.status.conditions or [] if c.type == "Complete"]
    assert complete
    assert complete[0].status == "True"
