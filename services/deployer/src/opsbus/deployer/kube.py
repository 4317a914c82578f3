"""The cluster port: Deployments (read, patch, create, delete), their ReplicaSets and pods, Services, StatefulSets
and their ControllerRevisions, and the route objects of traffic routers (HTTPRoute, VirtualService). Nothing else.

Built on the official `kubernetes` client (synchronous; each call runs in a worker thread with a timeout) and
returning plain JSON (camelCase, as the apiserver sends it), so the planners take plain data. Client
exceptions are mapped to opsbus's error types: 404 -> NotFoundError, 409/422 (a failed resourceVersion
`test`, a conflict) -> ConflictError, 5xx/429/network -> TransientError, other 4xx -> PermanentError.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from opsbus.common.errors import ConflictError, NotFoundError, TransientError, error_for_status

T = TypeVar("T")
JSON = dict[str, Any]


class KubePort(Protocol):
    async def deployment(self, namespace: str, name: str) -> JSON: ...
    async def replica_sets(self, namespace: str, deployment: JSON) -> list[JSON]: ...
    async def patch_deployment(self, namespace: str, name: str, patch: list[dict[str, Any]]) -> JSON: ...
    async def create_deployment(self, namespace: str, body: JSON) -> JSON: ...
    async def delete_deployment(self, namespace: str, name: str) -> None: ...
    async def service(self, namespace: str, name: str) -> JSON: ...
    async def patch_service(self, namespace: str, name: str, patch: list[dict[str, Any]]) -> JSON: ...
    async def pods(self, namespace: str, labels: dict[str, str]) -> list[JSON]: ...
    async def delete_pod(self, namespace: str, name: str) -> None: ...
    async def statefulset(self, namespace: str, name: str) -> JSON: ...
    async def patch_statefulset(self, namespace: str, name: str, patch: list[dict[str, Any]]) -> JSON: ...
    async def controller_revisions(self, namespace: str, owner: JSON) -> list[JSON]: ...
    async def route(self, kind: str, namespace: str, name: str) -> JSON: ...
    async def patch_route(self, kind: str, namespace: str, name: str, patch: list[dict[str, Any]]) -> JSON: ...


# The traffic routers a weighted canary writes: kind -> (group, version, plural).
ROUTES: dict[str, tuple[str, str, str]] = {
    "HTTPRoute": ("gateway.networking.k8s.io", "v1", "httproutes"),
    "VirtualService": ("networking.istio.io", "v1", "virtualservices"),
}


def api_client(kubeconfig: str | None) -> client.ApiClient:
    if kubeconfig:
        api: client.ApiClient = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
        return api
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
        return client.ApiClient()
    except config.ConfigException:
        default: client.ApiClient = config.new_client_from_config()  # type: ignore[no-untyped-call]
        return default


def _selector(owner: JSON) -> str:
    labels = ((owner.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in labels.items())


def _owned_by(owner: JSON, items: list[JSON]) -> list[JSON]:
    uid = (owner.get("metadata") or {}).get("uid")
    return [
        i for i in items if any(r.get("uid") == uid for r in (i.get("metadata") or {}).get("ownerReferences") or [])
    ]


class Kube:
    def __init__(self, api: client.ApiClient, *, timeout: float = 10.0) -> None:
        self._api = api
        self._apps = client.AppsV1Api(api)
        self._core = client.CoreV1Api(api)
        self._custom = client.CustomObjectsApi(api)
        self._timeout = timeout

    async def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return await asyncio.wait_for(asyncio.to_thread(fn), timeout=self._timeout + 2)
        except ApiException as exc:
            status = int(exc.status or 0)
            detail = f"{what}: {status} {exc.reason}: {(exc.body or '')[:500]}"
            if status == 422:  # the apiserver refused the object as invalid: reported like a conflict
                raise ConflictError(detail) from exc
            raise error_for_status(status, detail) from exc
        except (TimeoutError, OSError) as exc:
            raise TransientError(f"{what}: {type(exc).__name__}: {exc}") from exc

    def _json(self, obj: Any) -> JSON:
        result: JSON = self._api.sanitize_for_serialization(obj)  # type: ignore[no-untyped-call]
        return result

    async def deployment(self, namespace: str, name: str) -> JSON:
        obj = await self._call(
            f"read Deployment {namespace}/{name}",
            lambda: self._apps.read_namespaced_deployment(name, namespace, _request_timeout=self._timeout),
        )
        return self._json(obj)

    async def replica_sets(self, namespace: str, deployment: JSON) -> list[JSON]:
        selector = _selector(deployment)
        listing = await self._call(
            f"list ReplicaSets in {namespace}",
            lambda: self._apps.list_namespaced_replica_set(
                namespace, label_selector=selector or None, _request_timeout=self._timeout
            ),
        )
        return _owned_by(deployment, [self._json(rs) for rs in listing.items])

    async def controller_revisions(self, namespace: str, owner: JSON) -> list[JSON]:
        """The ControllerRevisions of a StatefulSet (its revision history)."""
        selector = _selector(owner)
        listing = await self._call(
            f"list ControllerRevisions in {namespace}",
            lambda: self._apps.list_namespaced_controller_revision(
                namespace, label_selector=selector or None, _request_timeout=self._timeout
            ),
        )
        return _owned_by(owner, [self._json(cr) for cr in listing.items])

    async def statefulset(self, namespace: str, name: str) -> JSON:
        obj = await self._call(
            f"read StatefulSet {namespace}/{name}",
            lambda: self._apps.read_namespaced_stateful_set(name, namespace, _request_timeout=self._timeout),
        )
        return self._json(obj)

    async def patch_statefulset(self, namespace: str, name: str, patch: list[dict[str, Any]]) -> JSON:
        obj = await self._call(
            f"patch StatefulSet {namespace}/{name}",
            lambda: self._apps.patch_namespaced_stateful_set(
                name, namespace, patch, _content_type="application/json-patch+json", _request_timeout=self._timeout
            ),
        )
        return self._json(obj)

    async def delete_pod(self, namespace: str, name: str) -> None:
        """Delete one pod (its controller makes a new one); absent is fine."""
        try:
            await self._call(
                f"delete Pod {namespace}/{name}",
                lambda: self._core.delete_namespaced_pod(name, namespace, _request_timeout=self._timeout),
            )
        except NotFoundError:
            return

    async def patch_deployment(self, namespace: str, name: str, patch: list[dict[str, Any]]) -> JSON:
        obj = await self._call(
            f"patch Deployment {namespace}/{name}",
            lambda: self._apps.patch_namespaced_deployment(
                name,
                namespace,
                patch,
                _content_type="application/json-patch+json",
                _request_timeout=self._timeout,
            ),
        )
        return self._json(obj)

    async def create_deployment(self, namespace: str, body: JSON) -> JSON:
        name = (body.get("metadata") or {}).get("name")
        obj = await self._call(
            f"create Deployment {namespace}/{name}",
            lambda: self._apps.create_namespaced_deployment(
                namespace,
                body,  # type: ignore[arg-type]  # the client serialises plain JSON as it is
                _request_timeout=self._timeout,
            ),
        )
        return self._json(obj)

    async def delete_deployment(self, namespace: str, name: str) -> None:
        """Delete, foreground propagation (its ReplicaSets and pods go with it); absent is fine."""
        try:
            await self._call(
                f"delete Deployment {namespace}/{name}",
                lambda: self._apps.delete_namespaced_deployment(
                    name, namespace, propagation_policy="Foreground", _request_timeout=self._timeout
                ),
            )
        except NotFoundError:
            return

    async def service(self, namespace: str, name: str) -> JSON:
        obj = await self._call(
            f"read Service {namespace}/{name}",
            lambda: self._core.read_namespaced_service(name, namespace, _request_timeout=self._timeout),
        )
        return self._json(obj)

    async def patch_service(self, namespace: str, name: str, patch: list[dict[str, Any]]) -> JSON:
        obj = await self._call(
            f"patch Service {namespace}/{name}",
            lambda: self._core.patch_namespaced_service(
                name, namespace, patch, _content_type="application/json-patch+json", _request_timeout=self._timeout
            ),
        )
        return self._json(obj)

    async def route(self, kind: str, namespace: str, name: str) -> JSON:
        """A traffic router's route object (HTTPRoute or VirtualService, see ROUTES)."""
        group, version, plural = ROUTES[kind]
        obj = await self._call(
            f"read {kind} {namespace}/{name}",
            lambda: self._custom.get_namespaced_custom_object(
                group, version, namespace, plural, name, _request_timeout=self._timeout
            ),
        )
        return self._json(obj)

    async def patch_route(self, kind: str, namespace: str, name: str, patch: list[dict[str, Any]]) -> JSON:
        """A JSON patch of a route object; a failed `test` of its resourceVersion raises ConflictError."""
        group, version, plural = ROUTES[kind]
        obj = await self._call(
            f"patch {kind} {namespace}/{name}",
            lambda: self._custom.patch_namespaced_custom_object(
                group,
                version,
                namespace,
                plural,
                name,
                patch,
                _content_type="application/json-patch+json",
                _request_timeout=self._timeout,
            ),
        )
        return self._json(obj)

    async def pods(self, namespace: str, labels: dict[str, str]) -> list[JSON]:
        """Pods matching every label in `labels` (never all pods: an empty selector is refused)."""
        if not labels:
            raise ValueError("pods() needs a label selector")
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        listing = await self._call(
            f"list pods {selector} in {namespace}",
            lambda: self._core.list_namespaced_pod(namespace, label_selector=selector, _request_timeout=self._timeout),
        )
        return [self._json(pod) for pod in listing.items]
