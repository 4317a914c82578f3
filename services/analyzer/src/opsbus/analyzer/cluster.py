"""The analyzer's read-only port to the cluster: container logs and what a workload reads.

`ClusterReader` is the port; `KubeReader` implements it with the Kubernetes API (pod logs, the workload's pod
template for ConfigMap/Secret references, its selector for healthy baseline pods), every call bounded by a
timeout so a slow apiserver cannot hold a diagnosis past its 2 s budget; `NoCluster` answers "unknown" to all.
Reads only: the analyzer never changes the cluster. A log-store adapter would be another implementation.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from opsbus.common.events.payloads import WorkloadRef

log = logging.getLogger(__name__)
T = TypeVar("T")


class ClusterReader(Protocol):
    async def config_refs(self, workload: WorkloadRef) -> frozenset[tuple[str, str]] | None:
        """(kind, name) of the ConfigMaps and Secrets the workload's pod template reads; None when unknown."""
        ...

    async def logs(self, namespace: str, pod: str, container: str | None, lines: int) -> tuple[str, ...] | None:
        """The last `lines` of a container's log (its previous run when it crashed); None when unreadable."""
        ...

    async def healthy_pods(self, workload: WorkloadRef, exclude: frozenset[str], limit: int) -> list[str]:
        """Up to `limit` Ready pods of the workload, other than `exclude`."""
        ...

    async def unready_pods(self, workload: WorkloadRef, limit: int) -> dict[str, str]:
        """Up to `limit` pods of the workload that are not Ready, with the node each is bound to."""
        ...


class NoCluster:
    """No cluster to read: every answer is "unknown"."""

    async def config_refs(self, workload: WorkloadRef) -> frozenset[tuple[str, str]] | None:
        return None

    async def logs(self, namespace: str, pod: str, container: str | None, lines: int) -> tuple[str, ...] | None:
        return None

    async def healthy_pods(self, workload: WorkloadRef, exclude: frozenset[str], limit: int) -> list[str]:
        return []

    async def unready_pods(self, workload: WorkloadRef, limit: int) -> dict[str, str]:
        return {}


def _refs(template: Any) -> frozenset[tuple[str, str]]:  # noqa: PLR0912 - one walk of the pod template
    spec = template.spec
    found: set[tuple[str, str]] = set()
    for v in spec.volumes or []:
        if v.config_map is not None:
            found.add(("ConfigMap", v.config_map.name))
        if v.secret is not None:
            found.add(("Secret", v.secret.secret_name))
        for source in (v.projected.sources or []) if v.projected is not None else []:
            if source.config_map is not None:
                found.add(("ConfigMap", source.config_map.name))
            if source.secret is not None:
                found.add(("Secret", source.secret.name))
    for c in [*(spec.containers or []), *(spec.init_containers or [])]:
        for e in c.env_from or []:
            if e.config_map_ref is not None:
                found.add(("ConfigMap", e.config_map_ref.name))
            if e.secret_ref is not None:
                found.add(("Secret", e.secret_ref.name))
        for e in c.env or []:
            ref = e.value_from
            if ref is not None and ref.config_map_key_ref is not None:
                found.add(("ConfigMap", ref.config_map_key_ref.name))
            if ref is not None and ref.secret_key_ref is not None:
                found.add(("Secret", ref.secret_key_ref.name))
    return frozenset((k, n) for k, n in found if n)


class KubeReader:
    def __init__(self, api: client.ApiClient, *, timeout: float) -> None:
        self.api = api
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.timeout = timeout

    @classmethod
    def from_kubeconfig(cls, path: str | None, *, timeout: float) -> KubeReader:
        if path:
            return cls(config.new_client_from_config(config_file=path), timeout=timeout)  # type: ignore[no-untyped-call]
        try:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
        except config.ConfigException:
            config.load_kube_config()  # type: ignore[no-untyped-call]
        return cls(client.ApiClient(), timeout=timeout)

    def close(self) -> None:
        self.api.close()  # type: ignore[no-untyped-call]

    async def _read(self, what: str, fn: Callable[[], T]) -> T | None:
        try:
            return await asyncio.wait_for(asyncio.to_thread(fn), self.timeout + 0.2)
        except (ApiException, TimeoutError, OSError) as exc:
            log.info("cannot read %s: %s", what, getattr(exc, "reason", None) or type(exc).__name__)
            return None

    def _workload(self, w: WorkloadRef) -> Any:
        t = self.timeout
        reads: dict[str, Callable[[], Any]] = {
            "Deployment": lambda: self.apps.read_namespaced_deployment(w.name, w.namespace, _request_timeout=t),
            "StatefulSet": lambda: self.apps.read_namespaced_stateful_set(w.name, w.namespace, _request_timeout=t),
            "DaemonSet": lambda: self.apps.read_namespaced_daemon_set(w.name, w.namespace, _request_timeout=t),
            "ReplicaSet": lambda: self.apps.read_namespaced_replica_set(w.name, w.namespace, _request_timeout=t),
        }
        read = reads.get(w.kind)
        return read() if read else None

    async def config_refs(self, workload: WorkloadRef) -> frozenset[tuple[str, str]] | None:
        obj = await self._read(str(workload), lambda: self._workload(workload))
        return _refs(obj.spec.template) if obj is not None else None

    async def logs(self, namespace: str, pod: str, container: str | None, lines: int) -> tuple[str, ...] | None:
        def read(previous: bool) -> str:
            text: str = self.core.read_namespaced_pod_log(
                pod,
                namespace,
                container=container,
                tail_lines=lines,
                previous=previous,
                _request_timeout=self.timeout,
            )
            return text

        text = await self._read(f"logs of {namespace}/{pod}", lambda: read(True))
        if not text:
            text = await self._read(f"logs of {namespace}/{pod}", lambda: read(False))
        return tuple(text.splitlines()) if text else None

    async def _pods(self, workload: WorkloadRef) -> list[tuple[str, bool, str | None]]:
        """(name, ready, node) of the workload's pods (up to 50), by its selector."""
        obj = await self._read(str(workload), lambda: self._workload(workload))
        labels = (obj.spec.selector.match_labels or {}) if obj is not None and obj.spec.selector else {}
        if not labels:
            return []
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        pods = await self._read(
            f"pods of {workload}",
            lambda: self.core.list_namespaced_pod(
                workload.namespace, label_selector=selector, limit=50, _request_timeout=self.timeout
            ),
        )
        items: list[Any] = list(pods.items) if pods is not None else []
        return [
            (
                str(p.metadata.name),
                any(c.type == "Ready" and c.status == "True" for c in (p.status.conditions or [])),
                p.spec.node_name or None,
            )
            for p in items
        ]

    async def healthy_pods(self, workload: WorkloadRef, exclude: frozenset[str], limit: int) -> list[str]:
        if limit <= 0:
            return []
        healthy = [name for name, ready, _ in await self._pods(workload) if ready and name not in exclude]
        return sorted(healthy)[:limit]

    async def unready_pods(self, workload: WorkloadRef, limit: int) -> dict[str, str]:
        unready = sorted((name, node) for name, ready, node in await self._pods(workload) if not ready and node)
        return dict(unready[:limit])
