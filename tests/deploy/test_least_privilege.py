"""Least privilege, proven against the sandbox apiserver (RBAC authorizer, service-account token signing).

The chart's ServiceAccounts, ClusterRoles and bindings are rendered and applied in the test's namespace. For each
service the apiserver issues a token for that service's account (TokenRequest); the service's own cluster code then
runs with it through the in-cluster configuration path it uses in a pod, and must succeed; an operation outside
the role must be answered 403.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prometheus_client import CollectorRegistry

from opsbus.common.events.payloads.common import ResourceRef, Severity, WorkloadRef
from opsbus.deployer.kube import Kube, api_client
from opsbus.healer.cluster import KubeCluster as HealerCluster
from opsbus.healer.domain.planning import AlertState
from opsbus.notifier.domain.secrets import SecretKeyRef, Unresolved
from opsbus.notifier.secretsources import KubeSecrets
from opsbus.notifier.secretsources import api_client as notifier_api_client
from opsbus.optimizer.cluster import KubeCluster as OptimizerCluster
from opsbus.optimizer.domain.planning import ContainerSpec
from opsbus.watcher.domain.cache import Cache, Change
from opsbus.watcher.domain.objects import POD, RESOURCES, Resource
from opsbus.watcher.watching import ApiError, Informer, InformerOptions, KubeClient, WatchMetrics
from tests.cluster.kube import Cluster, wait_until
from tests.deploy.incluster import in_cluster, kubectl_apply, service_account_token, token_client
from tests.deploy.tools import render

pytestmark = pytest.mark.cluster

RBAC_KINDS = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
MI = 1024 * 1024


class Accounts:
    def __init__(self, cluster: Cluster, release: str) -> None:
        self.cluster = cluster
        self.release = release

    def account(self, service: str) -> str:
        return f"{self.release}-opsbus-{service}"

    def token(self, service: str) -> str:
        return service_account_token(self.cluster.api, self.cluster.namespace, self.account(service))

    def allowed(self, service: str, verb: str, resource: str, group: str = "", namespace: str | None = None) -> bool:
        review = client.V1SubjectAccessReview(
            spec=client.V1SubjectAccessReviewSpec(
                user=f"system:serviceaccount:{self.cluster.namespace}:{self.account(service)}",
                resource_attributes=client.V1ResourceAttributes(
                    verb=verb, resource=resource, group=group, namespace=namespace or self.cluster.namespace
                ),
            )
        )
        answer: Any = client.AuthorizationV1Api(self.cluster.api).create_subject_access_review(review)
        return bool(answer.status.allowed)


@pytest.fixture
def accounts(cluster: Cluster) -> Iterator[Accounts]:
    """The chart's accounts and roles (default values) applied in the test's namespace; removed afterwards."""
    release = f"lp{uuid.uuid4().hex[:6]}"
    objects = [o for o in render(release=release, namespace=cluster.namespace) if o["kind"] in RBAC_KINDS]
    rbac = client.RbacAuthorizationV1Api(cluster.api)
    try:
        kubectl_apply(cluster.kubectl_path, cluster.kubeconfig, yaml.safe_dump_all(objects), cluster.namespace)
        found = Accounts(cluster, release)
        # The authorizer learns new bindings from a watch: wait until the last one is in force.
        wait_until(
            "the optimizer's binding in force", lambda: found.allowed("optimizer", "patch", "deployments", "apps"), 30
        )
        wait_until("the notifier's binding in force", lambda: found.allowed("notifier", "get", "secrets"), 30)
        yield found
    finally:
        selector = f"app.kubernetes.io/instance={release}"
        rbac.delete_collection_cluster_role_binding(label_selector=selector)
        rbac.delete_collection_cluster_role(label_selector=selector)


async def test_watcher_account_lists_and_watches_everything_it_informs_on_and_deletes_nothing(
    cluster: Cluster, accounts: Accounts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with in_cluster(accounts.token("watcher"), cluster.kubeconfig, tmp_path, monkeypatch):
        kube = KubeClient.from_config(None, timeout=10)
    registry = CollectorRegistry()
    metrics = WatchMetrics(registry)
    seen: list[str] = []
    watched = asyncio.Event()

    async def on_change(resource: Resource, change: Change, initial: bool) -> None:
        seen.append(change.key)
        if change.key == f"{cluster.namespace}/watched":
            watched.set()

    try:
        for resource in RESOURCES:  # the first list of every informer the watcher runs, cluster-wide
            informer = Informer(kube, resource, None, cache=Cache(), on_change=on_change, metrics=metrics)
            await informer.relist()
            assert informer.synced.is_set(), resource.plural
        informer = Informer(
            kube, POD, cluster.namespace, cache=Cache(), on_change=on_change, metrics=metrics,
            options=InformerOptions(watch_timeout_seconds=60),
        )  # fmt: skip
        task = asyncio.create_task(informer.run())
        try:
            async with asyncio.timeout(30):
                await informer.synced.wait()
            cluster.create_pod("watched")
            async with asyncio.timeout(30):
                await watched.wait()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        assert (
            registry.get_sample_value("opsbus_watcher_watch_restarts_total", {"resource": "pods", "reason": "error"})
            is None
        )
        assert registry.get_sample_value("opsbus_watcher_watch_events_total", {"resource": "pods", "type": "ADDED"})

        denied = await kube.http.delete(f"/api/v1/namespaces/{cluster.namespace}/pods/watched")
        assert denied.status_code == 403, denied.text
        # Secrets: listed and watched for the change timeline (hashed in memory), never read one by one.
        listed = await kube.get(f"/api/v1/namespaces/{cluster.namespace}/secrets")
        assert listed.get("kind") == "SecretList"
        with pytest.raises(ApiError) as secret:
            await kube.get(f"/api/v1/namespaces/{cluster.namespace}/secrets/any")
        assert secret.value.status == 403
    finally:
        await kube.close()
    assert cluster.pod("watched").metadata.deletion_timestamp is None


async def test_healer_account_deletes_patches_evicts_and_cordons_but_reads_no_secret(
    cluster: Cluster, accounts: Accounts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ns = cluster.namespace
    victim = cluster.create_pod("victim")
    evictee = cluster.create_pod("evictee")
    cluster.create_deployment("app", 1)
    node_name = f"lp-cordon-{uuid.uuid4().hex[:6]}"
    # A node of this test's own (no kwok annotation, tainted): cordoning a shared sandbox node would disturb others.
    cluster.core.create_node(
        client.V1Node(
            metadata=client.V1ObjectMeta(name=node_name, labels={"opsbus.io/test": "least-privilege"}),
            spec=client.V1NodeSpec(taints=[client.V1Taint(key="opsbus.io/test", value="rbac", effect="NoSchedule")]),
        )
    )
    with in_cluster(accounts.token("healer"), cluster.kubeconfig, tmp_path, monkeypatch):
        healer = HealerCluster.from_kubeconfig(None)
    try:
        await healer.delete_pod(ns, "victim", victim.metadata.uid, None, 0)
        wait_until("the deleted pod gone or terminating", lambda: _gone_or_terminating(cluster, "victim"), 30)

        target = ResourceRef(kind="Deployment", namespace=ns, name="app")
        alert = AlertState(
            fingerprint="lp",
            alertname="KubePodCrashLooping",
            severity=Severity.WARNING,
            labels={},
            namespace=ns,
            event_time=datetime.now(UTC),
            firing=True,
        )
        wait_until("the deployment's ReplicaSet", lambda: cluster.replica_sets("app"), 30)
        snapshot = await healer.snapshot(target, alert)
        assert snapshot.exists and snapshot.revisions, snapshot

        wait_until("the deployment rolled out", lambda: cluster.rollout_complete("app"), 60)
        deployment = cluster.deployment("app")
        await healer.scale(ns, "app", deployment.metadata.resource_version, 2)
        assert cluster.deployment("app").spec.replicas == 2
        await healer.rollout_restart(ns, "app", None, datetime.now(UTC))
        assert cluster.deployment("app").spec.template.metadata.annotations

        assert await healer.evict(cluster.pod("evictee"), 0) is True
        wait_until("the evicted pod gone or terminating", lambda: _gone_or_terminating(cluster, "evictee"), 30)
        assert evictee.metadata.uid

        await healer.cordon(node_name, None)
        node: Any = cluster.core.read_node(node_name)
        assert node.spec.unschedulable is True

        with pytest.raises(ApiException) as secrets:
            await asyncio.to_thread(healer.core.list_namespaced_secret, ns)
        assert secrets.value.status == 403
        with pytest.raises(ApiException) as delete_deployment:
            await asyncio.to_thread(healer.apps.delete_namespaced_deployment, "app", ns)
        assert delete_deployment.value.status == 403
    finally:
        healer.close()
        cluster.core.delete_node(node_name)


def _statefulset(name: str) -> client.V1StatefulSet:
    labels = {"app": name}
    return client.V1StatefulSet(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1StatefulSetSpec(
            replicas=1,
            service_name=name,
            selector=client.V1LabelSelector(match_labels=labels),
            update_strategy=client.V1StatefulSetUpdateStrategy(
                type="RollingUpdate", rolling_update=client.V1RollingUpdateStatefulSetStrategy(partition=1)
            ),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[client.V1Container(name="db", image="registry.example/db:1.0")]),
            ),
        ),
    )


def _gone_or_terminating(cluster: Cluster, name: str) -> bool:
    try:
        pod = cluster.pod(name)
    except ApiException as exc:
        return bool(exc.status == 404)
    return pod.metadata.deletion_timestamp is not None


async def test_deployer_account_manages_its_workloads_services_and_pods_and_nothing_else(
    cluster: Cluster, accounts: Accounts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ns = cluster.namespace
    labels = {"app": "web"}
    body: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": "registry.example/app:1.0"}]},
            },
        },
    }
    cluster.core.create_namespaced_service(
        ns,
        client.V1Service(
            metadata=client.V1ObjectMeta(name="web"),
            spec=client.V1ServiceSpec(selector=labels, ports=[client.V1ServicePort(port=80)]),
        ),
    )
    with in_cluster(accounts.token("deployer"), cluster.kubeconfig, tmp_path, monkeypatch):
        kube = Kube(api_client(None), timeout=10)
    created = await kube.create_deployment(ns, body)
    assert created["metadata"]["name"] == "web"
    wait_until("the deployment's ReplicaSet", lambda: cluster.replica_sets("web"), 30)
    current = await kube.deployment(ns, "web")
    replica_sets = await kube.replica_sets(ns, current)
    assert [rs["metadata"]["ownerReferences"][0]["name"] for rs in replica_sets] == ["web"]
    patched = await kube.patch_deployment(ns, "web", [{"op": "replace", "path": "/spec/replicas", "value": 2}])
    assert patched["spec"]["replicas"] == 2
    await kube.service(ns, "web")
    service = await kube.patch_service(ns, "web", [{"op": "add", "path": "/spec/selector/track", "value": "stable"}])
    assert service["spec"]["selector"] == {"app": "web", "track": "stable"}
    wait_until("the deployment's pod", lambda: cluster.pods("web"), 30)
    (pod, *_) = await kube.pods(ns, labels)
    await kube.delete_pod(ns, pod["metadata"]["name"])
    await kube.delete_deployment(ns, "web")

    sts: Any = cluster.apps.create_namespaced_stateful_set(ns, _statefulset("db"))
    wait_until(
        "the StatefulSet's revision",
        lambda: cluster.apps.list_namespaced_controller_revision(ns, label_selector="app=db").items,
        30,
    )
    owner = await kube.statefulset(ns, "db")
    assert [cr["metadata"]["ownerReferences"][0]["uid"] for cr in await kube.controller_revisions(ns, owner)] == [
        sts.metadata.uid
    ]
    patched_sts = await kube.patch_statefulset(
        ns, "db", [{"op": "replace", "path": "/spec/updateStrategy/rollingUpdate/partition", "value": 0}]
    )
    assert patched_sts["spec"]["updateStrategy"]["rollingUpdate"]["partition"] == 0

    denied = token_client(accounts.token("deployer"), cluster.kubeconfig)
    try:
        for call in (
            lambda: client.CoreV1Api(denied).list_namespaced_secret(ns),
            lambda: client.CoreV1Api(denied).delete_collection_namespaced_pod(ns),
            lambda: client.CoreV1Api(denied).patch_node("node-000000", {"spec": {"unschedulable": True}}),
        ):
            with pytest.raises(ApiException) as refused:
                call()
            assert refused.value.status == 403
    finally:
        denied.close()  # type: ignore[no-untyped-call]


async def test_optimizer_account_reads_inventory_and_patches_resources_but_deletes_nothing(
    cluster: Cluster, accounts: Accounts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ns = cluster.namespace
    cluster.create_deployment("api", 1)
    # until the controller has finished writing its status, the resourceVersion the optimizer reads can be stale by
    # the time it patches (a correct 409 from its precondition, not a permission question)
    wait_until("the deployment rolled out", lambda: cluster.rollout_complete("api"), 60)
    with in_cluster(accounts.token("optimizer"), cluster.kubeconfig, tmp_path, monkeypatch):
        optimizer = OptimizerCluster.from_kubeconfig(None)
    try:
        (workload,) = [w for w in await optimizer.inventory([ns]) if w.snapshot.workload.name == "api"]
        everywhere = await optimizer.inventory([])
        assert any(w.snapshot.workload.namespace == ns for w in everywhere)
        ref = WorkloadRef(kind="Deployment", namespace=ns, name="api")
        spec = ContainerSpec(name="app", cpu_request=150, memory_request=128 * MI, memory_limit=256 * MI)
        assert workload.snapshot.resource_version is not None
        await optimizer.apply(ref, workload.snapshot.resource_version, [spec], replicas=2)
        applied = cluster.deployment("api")
        assert applied.spec.replicas == 2
        resources = applied.spec.template.spec.containers[0].resources
        assert resources.requests == {"cpu": "150m", "memory": "128Mi"} and resources.limits == {"memory": "256Mi"}

        with pytest.raises(ApiException) as delete:
            await asyncio.to_thread(optimizer.apps.delete_namespaced_deployment, "api", ns)
        assert delete.value.status == 403
        with pytest.raises(ApiException) as evict:
            await asyncio.to_thread(optimizer.core.delete_collection_namespaced_pod, ns)
        assert evict.value.status == 403
    finally:
        optimizer.close()


async def test_notifier_account_reads_secret_keys_in_its_namespace_and_nothing_else(
    cluster: Cluster, accounts: Accounts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The notifier's own secretKeyRef code, with the chart's account: a key of a Secret in its namespace is read;
    a missing key or Secret, or a Secret in another namespace (403), is named with the reason, never a value."""
    name = f"hooks-{uuid.uuid4().hex[:6]}"
    secret = client.V1Secret(
        metadata=client.V1ObjectMeta(name=name), string_data={"url": "https://hooks.example.com/team\n"}
    )
    client.CoreV1Api(cluster.api).create_namespaced_secret(cluster.namespace, secret)
    with in_cluster(accounts.token("notifier"), cluster.kubeconfig, tmp_path, monkeypatch):
        api = notifier_api_client(None)
    kube = KubeSecrets(lambda: api, namespace=cluster.namespace, cache_seconds=0)
    ns = cluster.namespace
    try:
        refs = [
            SecretKeyRef(name, "url"),
            SecretKeyRef(name, "nope"),
            SecretKeyRef("absent", "url"),
            SecretKeyRef(name, "url", namespace="kube-system"),
        ]
        values = await kube.values(refs, fresh=True)
    finally:
        kube.close()
    assert values[refs[0]] == "https://hooks.example.com/team"  # one trailing newline dropped
    assert values[refs[1]] == Unresolved(f"Secret {ns}/{name} has no key 'nope'")
    assert values[refs[2]] == Unresolved(f"Secret {ns}/absent does not exist")
    refused = values[refs[3]]
    assert isinstance(refused, Unresolved) and f"may not read Secret kube-system/{name} (403)" in refused.reason
    assert accounts.allowed("notifier", "get", "secrets")
    for verb in ("list", "watch", "create", "update", "delete"):
        assert not accounts.allowed("notifier", verb, "secrets"), verb
    assert not accounts.allowed("notifier", "get", "secrets", namespace="kube-system")


@pytest.mark.parametrize("service", ["notifier", "gateway"])
def test_notifier_and_gateway_accounts_can_do_nothing_in_the_cluster(
    cluster: Cluster, accounts: Accounts, service: str
) -> None:
    api = token_client(accounts.token(service), cluster.kubeconfig)
    try:
        for call in (
            lambda: client.CoreV1Api(api).list_namespaced_pod(cluster.namespace),
            lambda: client.CoreV1Api(api).list_namespaced_secret(cluster.namespace),
            lambda: client.AppsV1Api(api).list_namespaced_deployment(cluster.namespace),
            lambda: client.CoreV1Api(api).list_node(),
        ):
            with pytest.raises(ApiException) as refused:
                call()
            assert refused.value.status == 403
    finally:
        api.close()  # type: ignore[no-untyped-call]


def test_roles_grant_exactly_the_documented_verbs(accounts: Accounts) -> None:
    """The authorizer's view (SubjectAccessReview) of a few verbs at the edge of each role."""
    expectations = [
        ("watcher", "watch", "pods", "", True),
        ("watcher", "delete", "pods", "", False),
        ("watcher", "get", "pods/log", "", True),
        ("watcher", "watch", "secrets", "", True),
        ("watcher", "get", "secrets", "", False),
        ("watcher", "list", "horizontalpodautoscalers", "autoscaling", True),
        ("healer", "create", "pods/eviction", "", True),
        ("healer", "get", "secrets", "", False),
        ("healer", "update", "deployments", "apps", False),
        ("deployer", "create", "deployments", "apps", True),
        ("deployer", "delete", "pods", "", True),
        ("deployer", "deletecollection", "pods", "", False),
        ("deployer", "get", "secrets", "", False),
        ("healer", "list", "replicasets", "apps", True),
        ("optimizer", "patch", "deployments", "apps", True),
        ("optimizer", "delete", "deployments", "apps", False),
        ("notifier", "list", "pods", "", False),
        ("gateway", "list", "pods", "", False),
    ]
    for service, verb, resource, group, expected in expectations:
        assert accounts.allowed(service, verb, resource, group) is expected, (service, verb, resource)


# Every Kubernetes API method a service's client module calls must be allowed by that service's role: a new call
# without a rule in the chart fails here rather than with a 403 in production.
CLIENT_MODULES = {
    "healer": "services/healer/src/opsbus/healer/cluster.py",
    "deployer": "services/deployer/src/opsbus/deployer/kube.py",
    "optimizer": "services/optimizer/src/opsbus/optimizer/cluster.py",
    "analyzer": "services/analyzer/src/opsbus/analyzer/cluster.py",
}
API_GROUPS = {"core": "", "apps": "apps", "policy": "policy", "autoscaling": "autoscaling"}
VERBS = {"list": "list", "read": "get", "patch": "patch", "delete": "delete", "create": "create", "replace": "update"}
CLIENT_CALL = re.compile(
    r"self\._?(core|apps|policy|autoscaling|custom)\.(list|read|patch|delete|create|replace)_(\w+)"
)
REPO_ROOT = Path(__file__).resolve().parents[2]
# What a module's custom-object calls reach: the optimizer's pod metrics, the deployer's traffic routes.
CUSTOM_OBJECTS = {
    CLIENT_MODULES["optimizer"]: {("list", "pods", "metrics.k8s.io")},
    CLIENT_MODULES["deployer"]: {
        (verb, resource, group)
        for verb in ("get", "patch")
        for resource, group in (("httproutes", "gateway.networking.k8s.io"), ("virtualservices", "networking.istio.io"))
    },
}


def client_calls(path: str) -> set[tuple[str, str, str]]:
    """(verb, resource, group) of each kubernetes-client method called in a module, as the authorizer names them."""
    found = set()
    for api, verb, rest in CLIENT_CALL.findall((REPO_ROOT / path).read_text()):
        if api == "custom":
            found |= CUSTOM_OBJECTS[path]
            continue
        kind = rest.removeprefix("namespaced_").removesuffix("_for_all_namespaces")
        if kind == "pod_eviction":
            found.add(("create", "pods/eviction", ""))
            continue
        if kind == "pod_log":
            found.add(("get", "pods/log", ""))
            continue
        if kind == "pod_resize":
            found.add((VERBS[verb], "pods/resize", ""))
            continue
        found.add((VERBS[verb], kind.replace("_", "") + "s", API_GROUPS[api]))
    return found


def test_client_call_parsing_names_resources_as_the_authorizer_does() -> None:
    calls = client_calls(CLIENT_MODULES["deployer"])
    assert ("list", "controllerrevisions", "apps") in calls
    assert ("get", "statefulsets", "apps") in calls
    assert ("delete", "pods", "") in calls


@pytest.mark.parametrize("service", sorted(CLIENT_MODULES))
def test_every_api_call_in_the_services_client_is_allowed_by_its_role(accounts: Accounts, service: str) -> None:
    calls = client_calls(CLIENT_MODULES[service])
    assert len(calls) >= 4, calls  # the pattern still finds the client's calls
    refused = sorted(call for call in calls if not accounts.allowed(service, *call))
    assert not refused, f"{service}'s role lacks: {refused}"


def test_watcher_role_allows_list_and_watch_of_every_informed_resource(accounts: Accounts) -> None:
    for resource in RESOURCES:
        group = resource.api_version.rpartition("/")[0]
        for verb in ("list", "watch"):
            assert accounts.allowed("watcher", verb, resource.plural, group), (verb, resource)
