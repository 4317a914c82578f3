"""The chart rendered with the production-like values and applied to the sandbox: a real apiserver validates every
object, and every service's pods reach Running on the kwok nodes with the hardening intact (the HPAs raise the
stateless services to their minimum replicas).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.cluster.kube import Cluster, is_running_and_ready, wait_until
from tests.deploy.incluster import kubectl_apply
from tests.deploy.tools import CHART, render

pytestmark = pytest.mark.cluster

PRODUCTION = CHART / "ci" / "production-values.yaml"
# Replicas once the HPAs have acted (their minReplicas), else the Deployment's own count.
EXPECTED = {"watcher": 1, "healer": 3, "deployer": 2, "optimizer": 1, "notifier": 2, "analyzer": 2, "gateway": 3}
SECRETS = {
    "opsbus-database": {"url": "postgresql+asyncpg://opsbus:Vk3-rotate-me@postgres.db.svc:5432/opsbus"},
    "opsbus-nats": {f"{s}-{k}": f"{s}-{k}-value" for s in EXPECTED for k in ("user", "password")},
    "opsbus-notifier": {"SLACK_WEBHOOK_URL": "https://hooks.example.com/x", "PAGERDUTY_ROUTING_KEY": "k" * 32},
    "opsbus-alertmanager": {"bearer-token": "am-token-value"},
    "opsbus-oidc": {"client-secret": "console-client-secret-value"},
    "registry-credentials": {},
}


def _running(cluster: Cluster, selector: str, count: int) -> list[Any] | None:
    listing: Any = cluster.core.list_namespaced_pod(cluster.namespace, label_selector=selector)
    pods = [p for p in listing.items if p.metadata.deletion_timestamp is None]
    return pods if len(pods) == count and all(is_running_and_ready(p) for p in pods) else None


def test_production_chart_applies_and_every_service_runs(cluster: Cluster) -> None:
    release = f"ch{uuid.uuid4().hex[:6]}"
    ns = cluster.namespace
    for name, data in SECRETS.items():
        cluster.core.create_namespaced_secret(
            ns, client.V1Secret(metadata=client.V1ObjectMeta(name=name), string_data=data or {"unused": "x"})
        )
    # The sandbox has no Prometheus Operator CRDs: those two objects are checked by `helm template` in test_chart.
    objects = render(
        PRODUCTION,
        sets=("serviceMonitor.enabled=false", "prometheusRule.enabled=false"),
        release=release,
        namespace=ns,
    )
    rbac = client.RbacAuthorizationV1Api(cluster.api)
    try:
        applied = kubectl_apply(cluster.kubectl_path, cluster.kubeconfig, yaml.safe_dump_all(objects), ns)
        assert applied.count(" created") == len(objects), applied
        for service, count in EXPECTED.items():
            selector = f"app.kubernetes.io/instance={release},app.kubernetes.io/component={service}"
            pods = wait_until(
                f"{count} running {service} pods",
                lambda selector=selector, count=count: _running(cluster, selector, count),  # type: ignore[misc]
                timeout=120,
            )
            for pod in pods:
                spec = pod.spec
                assert spec.service_account_name == f"{release}-opsbus-{service}"
                assert spec.security_context.run_as_non_root is True
                assert spec.security_context.seccomp_profile.type == "RuntimeDefault"
                (container,) = spec.containers
                assert container.security_context.read_only_root_filesystem is True
                assert container.security_context.allow_privilege_escalation is False
                assert pod.spec.node_name  # scheduled on a (kwok) node
        job: Any = client.BatchV1Api(cluster.api).read_namespaced_job(f"{release}-opsbus-migrate", ns)
        # one migration per service that owns a schema (not the watcher); the gateway's is the main container
        migrations = [c.name for c in job.spec.template.spec.init_containers] + [
            c.name for c in job.spec.template.spec.containers
        ]
        assert sorted(migrations) == sorted(f"migrate-{s}" for s in EXPECTED if s != "watcher")
        hpas: Any = client.AutoscalingV2Api(cluster.api).list_namespaced_horizontal_pod_autoscaler(ns)
        assert sorted(h.metadata.name for h in hpas.items) == sorted(
            f"{release}-opsbus-{s}" for s in ("healer", "deployer", "notifier", "analyzer", "gateway")
        )
        policies = client.NetworkingV1Api(cluster.api).list_namespaced_network_policy(ns).items
        assert len(policies) == len(EXPECTED)
    finally:
        selector = f"app.kubernetes.io/instance={release}"
        rbac.delete_collection_cluster_role_binding(label_selector=selector)
        rbac.delete_collection_cluster_role(label_selector=selector)
