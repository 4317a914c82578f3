"""The cluster port: the workload inventory the planner needs, and the one write the optimizer makes.

Inventory: Deployments with their containers' requests/limits and rollout status, the HPAs that manage
them (autoscaling/v2 `scaleTargetRef`), PodDisruptionBudgets selecting their pods (minAvailable, a
percentage resolved against replicas), and their pods (to map usage series to the workload).

Write: one strategic-merge patch of the Deployment carrying `metadata.resourceVersion`, so a change planned
against one version of the object never lands on another: the apiserver answers 409 (ConflictError) and
the next cycle plans again from fresh state. Where the apiserver serves `pods/resize` (in-place resize,
Kubernetes 1.33+), requests change on the running pods instead, and the Deployment records them in an
annotation (its template unchanged: changing it would replace the pods). The kubernetes client is
synchronous: calls run in a thread.
"""

from __future__ import annotations

import asyncio
import json
import math
import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from opsbus.common.errors import NotFoundError, error_for_status
from opsbus.common.events.payloads.common import WorkloadRef
from opsbus.optimizer.domain.guardrails import RolloutState
from opsbus.optimizer.domain.planning import ContainerSpec, Snapshot
from opsbus.optimizer.domain.quantities import cpu_millicores, format_cpu, format_memory, memory_bytes

T = TypeVar("T")
REVISION = "deployment.kubernetes.io/revision"
APPLIED_AT = "opsbus.io/optimizer-applied-at"  # epoch seconds of the optimizer's last change, written with it
APPLIED_RECOMMENDATION = "opsbus.io/optimizer-recommendation"
RESIZED_IN_PLACE = "opsbus.io/optimizer-resized-in-place"  # JSON: container -> resources its pods were given


def _typed(exc: ApiException, what: str) -> Exception:
    status = int(exc.status or 0)
    return error_for_status(status, f"{what}: apiserver answered {status} {exc.reason}: {(exc.body or '')[:500]}")


@dataclass(frozen=True)
class Workload:
    snapshot: Snapshot
    pods: frozenset[str]
    startup_seconds: float | None = None  # median pod start -> Ready of its ready pods; None: none seen
    pod_containers: tuple[ContainerSpec, ...] = ()  # what its running pods hold (after in-place resizes)


def _startup(pods: Sequence[Any]) -> float | None:
    """Median seconds from a pod's start to its Ready condition, over the pods that are Ready."""
    seen: list[float] = []
    for p in pods:
        started = p.status.start_time if p.status else None
        ready = (
            next(
                (c for c in (p.status.conditions or []) if c.type == "Ready" and c.status == "True"),
                None,
            )
            if p.status
            else None
        )
        if started is not None and ready is not None and ready.last_transition_time is not None:
            seen.append(max(0.0, (ready.last_transition_time - started).total_seconds()))
    return statistics.median(seen) if seen else None


def _pod_containers(template: tuple[ContainerSpec, ...], pods: Sequence[Any]) -> tuple[ContainerSpec, ...]:
    """Per template container, the resources most of the running pods hold (a resize changes the pod, not the
    template); empty without running pods."""
    running = [p for p in pods if p.status and p.status.phase == "Running"]
    if not running:
        return ()
    out: list[ContainerSpec] = []
    for spec in template:
        held = Counter(c for p in running for c in (_container(x) for x in p.spec.containers) if c.name == spec.name)
        out.append(held.most_common(1)[0][0] if held else spec)
    return tuple(out)


def _container(c: Any) -> ContainerSpec:
    res = c.resources
    req = (res.requests if res else None) or {}
    lim = (res.limits if res else None) or {}
    return ContainerSpec(
        name=c.name,
        cpu_request=cpu_millicores(req.get("cpu")),
        cpu_limit=cpu_millicores(lim.get("cpu")),
        memory_request=memory_bytes(req.get("memory")),
        memory_limit=memory_bytes(lim.get("memory")),
    )


def _selects(selector: Any, labels: dict[str, str]) -> bool:
    if selector is None:
        return False
    if selector.match_expressions:
        return False  # not evaluated: such a PDB is ignored rather than guessed at
    wanted = selector.match_labels or {}
    return bool(wanted) and all(labels.get(k) == v for k, v in wanted.items())


def _min_available(pdb: Any, replicas: int) -> int | None:
    value = pdb.spec.min_available
    if value is None:
        if pdb.spec.max_unavailable is not None and isinstance(pdb.spec.max_unavailable, int):
            return max(0, replicas - pdb.spec.max_unavailable)
        return None
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(replicas * float(value[:-1]) / 100)
    return int(value)


class KubeCluster:
    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.apps: Any = client.AppsV1Api(api)
        self.core: Any = client.CoreV1Api(api)
        self.autoscaling: Any = client.AutoscalingV2Api(api)
        self.policy: Any = client.PolicyV1Api(api)
        self.custom: Any = client.CustomObjectsApi(api)

    @classmethod
    def from_kubeconfig(cls, path: str | None) -> KubeCluster:
        if path:
            return cls(config.new_client_from_config(config_file=path))  # type: ignore[no-untyped-call]
        try:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
        except config.ConfigException:
            config.load_kube_config()  # type: ignore[no-untyped-call]
        return cls(client.ApiClient())

    def close(self) -> None:
        self.api.close()  # type: ignore[no-untyped-call]

    async def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return await asyncio.to_thread(fn)
        except ApiException as exc:
            raise _typed(exc, what) from exc

    async def _list(self, what: str, namespaced: Callable[..., Any], every: Callable[..., Any], ns: str | None) -> Any:
        if ns is None:
            return (await self._call(what, every)).items
        return (await self._call(what, lambda: namespaced(ns))).items

    async def inventory(self, namespaces: Sequence[str], excluded: Sequence[str] = ()) -> list[Workload]:
        out: list[Workload] = []
        scopes: list[str | None] = list(namespaces) or [None]
        for ns in scopes:
            deployments, hpas, pdbs, pods = await asyncio.gather(
                self._list(
                    "deployments",
                    self.apps.list_namespaced_deployment,
                    self.apps.list_deployment_for_all_namespaces,
                    ns,
                ),
                self._list(
                    "hpas",
                    self.autoscaling.list_namespaced_horizontal_pod_autoscaler,
                    self.autoscaling.list_horizontal_pod_autoscaler_for_all_namespaces,
                    ns,
                ),
                self._list(
                    "pdbs",
                    self.policy.list_namespaced_pod_disruption_budget,
                    self.policy.list_pod_disruption_budget_for_all_namespaces,
                    ns,
                ),
                self._list("pods", self.core.list_namespaced_pod, self.core.list_pod_for_all_namespaces, ns),
            )
            for d in deployments:
                if d.metadata.namespace in excluded:
                    continue
                out.append(self._workload(d, hpas, pdbs, pods))
        return out

    def _workload(self, d: Any, hpas: list[Any], pdbs: list[Any], pods: list[Any]) -> Workload:
        ns, name = d.metadata.namespace, d.metadata.name
        replicas = d.spec.replicas if d.spec.replicas is not None else 1
        labels = (d.spec.template.metadata.labels if d.spec.template.metadata else None) or {}
        hpa = next(
            (
                h.metadata.name
                for h in hpas
                if h.metadata.namespace == ns
                and h.spec.scale_target_ref.kind == "Deployment"
                and h.spec.scale_target_ref.name == name
            ),
            None,
        )
        floors = [
            _min_available(p, replicas)
            for p in pdbs
            if p.metadata.namespace == ns and _selects(p.spec.selector, labels)
        ]
        known = [f for f in floors if f is not None]
        selector = d.spec.selector.match_labels or {}
        owned = [
            p
            for p in pods
            if p.metadata.namespace == ns
            and selector
            and all((p.metadata.labels or {}).get(k) == v for k, v in selector.items())
        ]
        mine = frozenset(p.metadata.name for p in owned)
        s = d.status
        annotations = d.metadata.annotations or {}
        revision = annotations.get(REVISION)
        applied_at = _epoch(annotations.get(APPLIED_AT))
        snap = Snapshot(
            workload=WorkloadRef(kind="Deployment", namespace=ns, name=name),
            replicas=replicas,
            rollout=RolloutState(
                generation=d.metadata.generation or 0,
                observed_generation=s.observed_generation if s else None,
                replicas=replicas,
                updated_replicas=(s.updated_replicas or 0) if s else 0,
                available_replicas=(s.available_replicas or 0) if s else 0,
            ),
            containers=tuple(_container(c) for c in d.spec.template.spec.containers),
            resource_version=d.metadata.resource_version,
            revision=int(revision) if revision and revision.isdigit() else None,
            hpa=hpa,
            pdb_min_available=max(known) if known else None,
            applied_at=applied_at,
        )
        return Workload(
            snapshot=snap,
            pods=mine,
            startup_seconds=_startup(owned),
            pod_containers=_pod_containers(snap.containers, owned),
        )

    async def workload(self, ref: WorkloadRef) -> Workload:
        ns = ref.namespace
        for w in await self.inventory([ns]):
            if w.snapshot.workload.name == ref.name:
                return w
        raise NotFoundError(f"deployment {ns}/{ref.name}: not found")

    async def apply(
        self,
        ref: WorkloadRef,
        resource_version: str,
        containers: Sequence[ContainerSpec],
        replicas: int | None,
        *,
        applied_at: float | None = None,
        recommendation_id: str | None = None,
        resized_in_place: Sequence[ContainerSpec] = (),
    ) -> str:
        """Patch requests/limits (and replicas) with the resourceVersion precondition; the new resourceVersion.
        The Deployment's own annotations (not the pod template's: no rollout for them) record when and which
        recommendation, in the same write as the change, and the resources its pods were resized to in place
        (`resized_in_place`: the template is then left alone, a template change would replace the pods)."""
        spec: dict[str, Any] = {}
        if containers:
            spec["template"] = {
                "spec": {"containers": [{"name": c.name, "resources": _resources(c)} for c in containers]}
            }
        if replicas is not None:
            spec["replicas"] = replicas
        metadata: dict[str, Any] = {"resourceVersion": resource_version}
        notes = {APPLIED_AT: f"{applied_at:.3f}" if applied_at is not None else None}
        if recommendation_id is not None:
            notes[APPLIED_RECOMMENDATION] = recommendation_id
        if resized_in_place:
            notes[RESIZED_IN_PLACE] = json.dumps({c.name: _resources(c) for c in resized_in_place}, sort_keys=True)
        if applied_at is not None:
            metadata["annotations"] = notes
        body = {"metadata": metadata, "spec": spec}
        what = f"deployment {ref.namespace}/{ref.name}"
        d = await self._call(what, lambda: self.apps.patch_namespaced_deployment(ref.name, ref.namespace, body))
        return str(d.metadata.resource_version)

    async def serves_resize(self) -> bool:
        """Whether the apiserver serves the pods' `resize` subresource (in-place resize, Kubernetes 1.33+)."""
        resources = await self._call("core/v1 discovery", self.core.get_api_resources)
        return any(r.name == "pods/resize" for r in resources.resources or [])

    async def resize(self, namespace: str, pod: str, containers: Sequence[ContainerSpec]) -> str:
        """Resize one pod's containers in place (`pods/<pod>/resize`); the pod's new resourceVersion."""
        body = {"spec": {"containers": [{"name": c.name, "resources": _resources(c)} for c in containers]}}
        what = f"pod {namespace}/{pod} resize"
        p = await self._call(what, lambda: self.core.patch_namespaced_pod_resize(pod, namespace, body))
        return str(p.metadata.resource_version)

    async def pod_metrics(self, namespace: str | None) -> list[dict[str, Any]]:
        if namespace is None:
            r = await asyncio.to_thread(self.custom.list_cluster_custom_object, "metrics.k8s.io", "v1beta1", "pods")
        else:
            r = await asyncio.to_thread(
                self.custom.list_namespaced_custom_object, "metrics.k8s.io", "v1beta1", namespace, "pods"
            )
        items: list[dict[str, Any]] = r.get("items", [])
        return items


def _epoch(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None  # someone else's value: ignored, the store's record still holds


def _resources(c: ContainerSpec) -> dict[str, dict[str, str]]:
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    if c.cpu_request is not None:
        requests["cpu"] = format_cpu(c.cpu_request)
    if c.memory_request is not None:
        requests["memory"] = format_memory(c.memory_request)
    if c.cpu_limit is not None:
        limits["cpu"] = format_cpu(c.cpu_limit)
    if c.memory_limit is not None:
        limits["memory"] = format_memory(c.memory_limit)
    out = {"requests": requests}
    if limits:
        out["limits"] = limits
    return out
