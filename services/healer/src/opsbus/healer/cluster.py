"""The cluster port: snapshots for the planner and the writes of every action, through the kubernetes client.

Every write carries a precondition: deletes and evictions pin the object's uid and resourceVersion, patches
carry `metadata.resourceVersion`, so a write planned against one state of an object never lands on another
(a replaced pod, a node someone else changed). The apiserver answers 409 and the step is re-planned.
The client is synchronous: calls run in a worker thread so the event loop keeps serving the bus. Every call
carries `_request_timeout` (the `request_timeout_seconds` setting): an apiserver that accepts the connection and
never answers would otherwise hold a worker thread, the recovery's lease and its consumer slot forever. A timeout
is a `TransientError` (the step is retried), never a hang.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from opsbus.common.errors import NotFoundError, OpsbusError, TransientError, error_for_status
from opsbus.common.events.payloads import ResourceRef
from opsbus.healer.domain.planning import AlertState, Revision, Snapshot, rollout_stack

T = TypeVar("T")
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
REVISION = "deployment.kubernetes.io/revision"
_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def parse_bytes(quantity: str) -> int:
    for suffix, factor in _UNITS.items():
        if quantity.endswith(suffix):
            return math.ceil(float(quantity[: -len(suffix)]) * factor)
    return math.ceil(float(quantity))


def _typed(exc: ApiException, what: str) -> Exception:
    status = int(exc.status or 0)
    return error_for_status(status, f"{what}: apiserver answered {status} {exc.reason}: {(exc.body or '')[:500]}")


class KubeCluster:
    def __init__(self, api: client.ApiClient, *, timeout: float = 10.0) -> None:
        self.api = api
        self.timeout = timeout  # seconds, per apiserver request (connect and read)
        # Untyped on purpose: the generated models make every field Optional; probes check what they read.
        self.core: Any = client.CoreV1Api(api)
        self.apps: Any = client.AppsV1Api(api)
        self.policy: Any = client.PolicyV1Api(api)

    @classmethod
    def from_kubeconfig(cls, path: str | None, *, timeout: float = 10.0) -> KubeCluster:
        if path:
            return cls(config.new_client_from_config(config_file=path), timeout=timeout)  # type: ignore[no-untyped-call]
        try:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
        except config.ConfigException:
            config.load_kube_config()  # type: ignore[no-untyped-call]
        return cls(client.ApiClient(), timeout=timeout)

    def close(self) -> None:
        self.api.close()  # type: ignore[no-untyped-call]

    async def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return await asyncio.to_thread(fn)
        except ApiException as exc:
            raise _typed(exc, what) from exc
        except HTTPError as exc:  # timed out, refused, reset: the apiserver may answer the next try
            raise TransientError(f"{what}: apiserver unreachable within {self.timeout:g}s: {exc}") from exc

    # --- reads --------------------------------------------------------------------------------------
    async def snapshot(self, target: ResourceRef, alert: AlertState) -> Snapshot:
        try:
            if target.kind == "Pod":
                return await self._pod_snapshot(target, alert)
            if target.kind == "Node":
                node = await self._call(
                    f"node {target.name}", lambda: self.core.read_node(target.name, _request_timeout=self.timeout)
                )
                return Snapshot(
                    target=target.model_copy(update={"uid": node.metadata.uid}),
                    resource_version=node.metadata.resource_version,
                    nodes_unschedulable=await self._unschedulable_nodes(),
                )
            if target.kind == "Deployment" and target.namespace:
                ns, name = target.namespace, target.name
                d = await self._call(
                    f"deployment {ns}/{name}",
                    lambda: self.apps.read_namespaced_deployment(name, ns, _request_timeout=self.timeout),
                )
                limit, container = _memory_limit(d.spec.template.spec.containers, alert.labels.get("container"))
                return Snapshot(
                    target=target.model_copy(update={"uid": d.metadata.uid}),
                    resource_version=d.metadata.resource_version,
                    rollout_stack=rollout_stack(d.metadata.labels),
                    workload_pods_total=d.spec.replicas or 0,
                    workload_pods_ready=(d.status.ready_replicas or 0) if d.status else 0,
                    recreate=bool(d.spec.strategy and d.spec.strategy.type == "Recreate"),
                    memory_limit_bytes=limit,
                    container=container,
                    revision=_revision_of(d),
                    revisions=await self._revisions(d),
                )
            return Snapshot(target=target)
        except NotFoundError:
            return Snapshot(target=target, exists=False)

    async def _pod_snapshot(self, target: ResourceRef, alert: AlertState) -> Snapshot:
        ns = target.namespace or ""
        pod = await self._call(
            f"pod {ns}/{target.name}",
            lambda: self.core.read_namespaced_pod(target.name, ns, _request_timeout=self.timeout),
        )
        total, disrupted, ready = 1, 0, None
        if alert.workload is not None and pod.metadata.labels:
            selector = ",".join(f"{k}={v}" for k, v in sorted(pod.metadata.labels.items()) if k != "pod-template-hash")
            siblings = await self._call(
                "pods",
                lambda: self.core.list_namespaced_pod(ns, label_selector=selector, _request_timeout=self.timeout).items,
            )
            total = len(siblings)
            disrupted = sum(1 for p in siblings if p.metadata.deletion_timestamp is not None)
            ready = sum(1 for p in siblings if p.metadata.deletion_timestamp is None and _ready(p))
        if pod.metadata.deletion_timestamp is not None:
            return Snapshot(target=target, exists=False)
        return Snapshot(
            target=target.model_copy(update={"uid": pod.metadata.uid}),
            resource_version=pod.metadata.resource_version,
            rollout_stack=rollout_stack(pod.metadata.labels),
            workload_pods_total=total,
            workload_pods_disrupted=disrupted,
            workload_pods_ready=ready,
            target_ready=_ready(pod),
        )

    async def _revisions(self, d: Any) -> tuple[Revision, ...]:
        """The Deployment's ReplicaSets (owned by it) as revisions with template digests."""
        ns, uid = d.metadata.namespace, d.metadata.uid
        sets = await self._call(
            "replicasets", lambda: self.apps.list_namespaced_replica_set(ns, _request_timeout=self.timeout).items
        )
        out = []
        for rs in sets:
            owners = rs.metadata.owner_references or []
            number = _revision_of(rs)
            if number is not None and any(o.uid == uid for o in owners):
                out.append(Revision(number, template_digest(rs.spec.template), rs.metadata.creation_timestamp))
        return tuple(out)

    async def _unschedulable_nodes(self) -> tuple[str, ...]:
        nodes = await self._call("nodes", lambda: self.core.list_node(_request_timeout=self.timeout).items)
        return tuple(n.metadata.name for n in nodes if n.spec.unschedulable)

    # --- writes (each with a precondition) ----------------------------------------------------------
    async def delete_pod(self, ns: str, name: str, uid: str | None, rv: str | None, grace: int | None) -> None:
        body = client.V1DeleteOptions(
            preconditions=client.V1Preconditions(uid=uid, resource_version=rv), grace_period_seconds=grace
        )
        await self._call(
            f"delete pod {ns}/{name}",
            lambda: self.core.delete_namespaced_pod(name, ns, body=body, _request_timeout=self.timeout),
        )

    async def patch_deployment(self, ns: str, name: str, rv: str | None, patch: dict[str, Any]) -> None:
        if rv:
            patch = {**patch, "metadata": {**patch.get("metadata", {}), "resourceVersion": rv}}
        await self._call(
            f"patch deployment {ns}/{name}",
            lambda: self.apps.patch_namespaced_deployment(name, ns, patch, _request_timeout=self.timeout),
        )

    async def rollout_restart(self, ns: str, name: str, rv: str | None, now: datetime) -> None:
        stamp = now.astimezone(UTC).isoformat()
        patch = {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}}}}
        await self.patch_deployment(ns, name, rv, patch)

    async def scale(self, ns: str, name: str, rv: str | None, replicas: int) -> None:
        await self.patch_deployment(ns, name, rv, {"spec": {"replicas": replicas}})

    async def set_memory_limit(self, ns: str, name: str, rv: str | None, container: str, limit: int) -> None:
        patch = {
            "spec": {
                "template": {
                    "spec": {"containers": [{"name": container, "resources": {"limits": {"memory": str(limit)}}}]}
                }
            }
        }
        await self.patch_deployment(ns, name, rv, patch)

    async def cordon(self, name: str, rv: str | None) -> None:
        patch: dict[str, Any] = {"spec": {"unschedulable": True}}
        if rv:
            patch["metadata"] = {"resourceVersion": rv}
        await self._call(
            f"cordon node {name}", lambda: self.core.patch_node(name, patch, _request_timeout=self.timeout)
        )

    async def evictable_pods(self, node: str) -> list[Any]:
        """Pods a drain must evict: not DaemonSet-owned, not mirror pods, not already finished."""
        pods = await self._call(
            f"pods on {node}",
            lambda: (
                self.core.list_pod_for_all_namespaces(
                    field_selector=f"spec.nodeName={node}", _request_timeout=self.timeout
                ).items
            ),
        )
        out = []
        for p in pods:
            owners = p.metadata.owner_references or []
            if any(o.kind == "DaemonSet" and o.controller for o in owners):
                continue
            if MIRROR_ANNOTATION in (p.metadata.annotations or {}):
                continue
            if p.status.phase in ("Succeeded", "Failed") or p.metadata.deletion_timestamp is not None:
                continue
            out.append(p)
        return out

    async def evict(self, pod: Any, grace: int | None) -> bool:
        """Evict through the Eviction API (PDBs apply). False when a PDB refuses it for now (429)."""
        ns, name = pod.metadata.namespace, pod.metadata.name
        body = client.V1Eviction(
            metadata=client.V1ObjectMeta(name=name, namespace=ns),
            delete_options=client.V1DeleteOptions(
                preconditions=client.V1Preconditions(uid=pod.metadata.uid), grace_period_seconds=grace
            ),
        )
        try:
            await self._call(
                f"evict {ns}/{name}",
                lambda: self.core.create_namespaced_pod_eviction(name, ns, body, _request_timeout=self.timeout),
            )
        except OpsbusError as exc:
            cause = exc.__cause__
            status = cause.status if isinstance(cause, ApiException) else None
            if status == 429:
                return False
            if status in (404, 409):
                return True  # gone or replaced: nothing left to evict
            raise
        return True

    async def failed_pods(self, ns: str, selector: str | None) -> list[Any]:
        pods = await self._call(
            "failed pods",
            lambda: (
                self.core.list_namespaced_pod(
                    ns, label_selector=selector, field_selector="status.phase=Failed", _request_timeout=self.timeout
                ).items
            ),
        )
        return list(pods)

    # --- verification probes ------------------------------------------------------------------------
    async def pod_replaced(self, ns: str, name: str, uid: str | None) -> tuple[bool, str]:
        try:
            pod = await self._call(
                "pod", lambda: self.core.read_namespaced_pod(name, ns, _request_timeout=self.timeout)
            )
        except NotFoundError:
            return True, f"pod {name} is gone"
        if uid and pod.metadata.uid != uid:
            return True, f"pod {name} was recreated (uid {pod.metadata.uid})"
        return False, f"pod {name} still exists ({'terminating' if pod.metadata.deletion_timestamp else 'running'})"

    async def workload_available(self, ns: str, name: str) -> tuple[bool, str]:
        d = await self._call(
            "deployment", lambda: self.apps.read_namespaced_deployment(name, ns, _request_timeout=self.timeout)
        )
        s, want = d.status, d.spec.replicas or 0
        done = (
            (s.observed_generation or 0) >= d.metadata.generation
            and (s.updated_replicas or 0) == want
            and (s.available_replicas or 0) == want
            and (s.replicas or 0) == want
        )
        return done, f"{s.available_replicas or 0}/{want} available, {s.updated_replicas or 0} updated"

    async def node_cordoned(self, name: str) -> tuple[bool, str]:
        node = await self._call("node", lambda: self.core.read_node(name, _request_timeout=self.timeout))
        return bool(node.spec.unschedulable), f"unschedulable={bool(node.spec.unschedulable)}"

    async def node_drained(self, name: str) -> tuple[bool, str]:
        left = await self.evictable_pods(name)
        return not left, f"{len(left)} evictable pods left"

    async def no_failed_pods(self, ns: str, selector: str | None) -> tuple[bool, str]:
        left = await self.failed_pods(ns, selector)
        return not left, f"{len(left)} failed pods left"


def _ready(pod: Any) -> bool:
    conditions = (pod.status.conditions if pod.status else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def _revision_of(obj: Any) -> int | None:
    value = (obj.metadata.annotations or {}).get(REVISION)
    return int(value) if value and value.isdigit() else None


def template_digest(template: Any) -> str:
    """A digest of a pod template that a rollout restart does not change."""
    data = client.ApiClient().sanitize_for_serialization(template)  # type: ignore[no-untyped-call]
    meta = data.setdefault("metadata", {})
    meta.get("labels", {}).pop("pod-template-hash", None)
    meta.get("annotations", {}).pop(RESTARTED_AT, None)
    for key in ("labels", "annotations"):
        if not meta.get(key):
            meta.pop(key, None)  # no annotations left and none at all are the same template
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _memory_limit(containers: list[Any], wanted: str | None) -> tuple[int | None, str | None]:
    for c in containers:
        if wanted and c.name != wanted:
            continue
        limits = (c.resources.limits if c.resources else None) or {}
        mem = limits.get("memory")
        return (parse_bytes(mem) if mem else None), c.name
    return None, None


def describe(obj: Any) -> str:
    return json.dumps(client.ApiClient().sanitize_for_serialization(obj))[:1024]  # type: ignore[no-untyped-call]
