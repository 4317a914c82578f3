"""List+watch against the apiserver over HTTP (httpx, asyncio): the informers feeding the cache.

One `Informer` per (resource, namespace selection): list in pages, then watch from the list's
resourceVersion with bookmarks; every event is stripped and applied to the shared cache and the effective
change handed to `on_change`. A watch that ends (server timeout) resumes from the last resourceVersion
(bookmarks keep it fresh); a 410 Gone (expired resourceVersion) relists and diffs the cache, so changes that
happened meanwhile come out as ADDED/MODIFIED/DELETED exactly once; connection errors reconnect with
exponential backoff and jitter. The kubernetes client library is used only to read the kubeconfig; JSON is
decoded with orjson. A kubeconfig's `tls-server-name` is honoured (SNI and certificate check against that name, not
the URL's host), as the official client does: an apiserver reached through a relay or by IP needs it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from prometheus_client import CollectorRegistry, Counter, Gauge

from opsbus.watcher.domain.cache import Cache, Change
from opsbus.watcher.domain.objects import Obj, Resource, key_of, resource_version, strip

log = logging.getLogger(__name__)


class GoneError(Exception):
    """The watch's resourceVersion is too old (HTTP 410 / ERROR event with code 410): relist."""


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


_LIMITS = httpx.Limits(max_connections=64, max_keepalive_connections=16)


class _ServerNameTransport(httpx.AsyncHTTPTransport):
    """Checks the apiserver's certificate against `server_name` (and sends it as SNI) instead of the URL's host.

    httpx has no client-wide setting for it; httpcore reads the `sni_hostname` request extension when it opens a
    TLS connection, so every request carries it.
    """

    def __init__(self, verify: ssl.SSLContext | bool, server_name: str) -> None:
        super().__init__(verify=verify, limits=_LIMITS)
        self.server_name = server_name

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request.extensions = {**request.extensions, "sni_hostname": self.server_name}
        return await super().handle_async_request(request)


class KubeClient:
    """A thin async client: GET JSON, stream a watch, read pod logs. Auth from kubeconfig or in-cluster."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    @classmethod
    def from_config(cls, kubeconfig: str | None = None, *, timeout: float = 10.0) -> KubeClient:
        cfg = k8s_client.Configuration()
        if kubeconfig:
            k8s_config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)  # type: ignore[no-untyped-call]
        else:
            try:
                k8s_config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
            except k8s_config.ConfigException:
                k8s_config.load_kube_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        verify: ssl.SSLContext | bool
        if cfg.verify_ssl:
            ctx = (
                ssl.create_default_context(cafile=cfg.ssl_ca_cert) if cfg.ssl_ca_cert else ssl.create_default_context()
            )
            if cfg.cert_file and cfg.key_file:
                ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
            verify = ctx
        else:
            verify = False
        headers = {"Accept": "application/json"}
        token = (cfg.api_key or {}).get("authorization") or (cfg.api_key or {}).get("BearerToken")
        if token:
            # In-cluster config stores "bearer <token>" (lower case); a kubeconfig "Bearer <token>" or the bare token.
            scheme, _, credential = token.partition(" ")
            headers["Authorization"] = f"Bearer {credential if scheme.lower() == 'bearer' and credential else token}"
        server_name = getattr(cfg, "tls_server_name", None)
        http = httpx.AsyncClient(
            base_url=str(cfg.host),
            transport=_ServerNameTransport(verify, server_name) if server_name else None,
            verify=verify,
            headers=headers,
            timeout=httpx.Timeout(timeout),
            limits=_LIMITS,
        )
        return cls(http)

    async def close(self) -> None:
        await self.http.aclose()

    async def get(self, path: str, params: dict[str, Any] | None = None) -> Obj:
        response = await self.http.get(path, params=params)
        if response.status_code == 410:
            raise GoneError(response.text[:200])
        if response.status_code >= 400:
            raise ApiError(response.status_code, response.text[:200])
        data: Obj = orjson.loads(response.content)  # a 10,000-pod list is ~34 MB: 3x faster than json.loads
        return data

    async def pod_log(
        self, namespace: str, pod: str, container: str, *, previous: bool, lines: int, timeout: float
    ) -> list[str] | None:
        """Last `lines` log lines, or None when the kubelet serves none (kwok, a gone container)."""
        try:
            response = await self.http.get(
                f"/api/v1/namespaces/{namespace}/pods/{pod}/log",
                params={"container": container, "previous": str(previous).lower(), "tailLines": lines},
                headers={"Accept": "text/plain"},
                timeout=timeout,
            )
        except httpx.HTTPError as exc:
            log.debug("no logs for %s/%s/%s: %s", namespace, pod, container, exc)
            return None
        if response.status_code != 200:
            return None
        return response.text.splitlines()[-lines:]

    def watch(self, path: str, params: dict[str, Any], read_timeout: float) -> Any:
        return self.http.stream("GET", path, params=params, timeout=httpx.Timeout(10.0, read=read_timeout))


class WatchMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.restarts = Counter(
            "opsbus_watcher_watch_restarts_total",
            "Watches restarted, by resource and reason.",
            ["resource", "reason"],
            registry=registry,
        )
        self.relists = Counter(
            "opsbus_watcher_relists_total",
            "Full relists (first sync and after 410 Gone), by resource.",
            ["resource"],
            registry=registry,
        )
        self.events = Counter(
            "opsbus_watcher_watch_events_total",
            "Watch events received, by resource and type.",
            ["resource", "type"],
            registry=registry,
        )
        self.objects = Gauge(
            "opsbus_watcher_cached_objects",
            "Objects in the informer cache, by resource.",
            ["resource"],
            registry=registry,
        )


OnChange = Callable[[Resource, Change, bool], Awaitable[None]]


@dataclass
class InformerOptions:
    watch_timeout_seconds: int = 290
    page_size: int = 500
    backoff_initial: float = 0.5
    backoff_max: float = 30.0


class Informer:
    """List+watch of one resource within one namespace (or all)."""

    def __init__(
        self,
        kube: KubeClient,
        resource: Resource,
        namespace: str | None,
        *,
        cache: Cache,
        on_change: OnChange,
        metrics: WatchMetrics,
        options: InformerOptions | None = None,
    ) -> None:
        self.kube = kube
        self.resource = resource
        self.namespace = namespace if resource.namespaced else None
        self.cache = cache
        self.on_change = on_change
        self.metrics = metrics
        self.options = options or InformerOptions()
        self.resource_version: str | None = None
        self.synced = asyncio.Event()
        self.label = resource.plural

    async def run(self) -> None:
        delay = self.options.backoff_initial
        while True:
            try:
                if self.resource_version is None:
                    await self.relist()
                await self.watch_once()
                delay = self.options.backoff_initial
                self.metrics.restarts.labels(self.label, "expired").inc()
            except GoneError:
                log.info("%s: resourceVersion %s gone: relisting", self.label, self.resource_version)
                self.metrics.restarts.labels(self.label, "gone").inc()
                self.resource_version = None
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.metrics.restarts.labels(self.label, "error").inc()
                log.warning("%s watch failed (%s): reconnecting in %.1fs", self.label, exc, delay)
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, self.options.backoff_max)

    async def relist(self) -> None:
        """List everything (in pages) and diff it against the cache: the changes missed, exactly once."""
        items: dict[str, Obj] = {}
        cont: str | None = None
        rv = ""
        while True:
            params: dict[str, Any] = {"limit": self.options.page_size}
            if cont:
                params["continue"] = cont
            page = await self.kube.get(self.resource.path(self.namespace), params)
            for raw in page.get("items") or []:
                raw.setdefault("kind", self.resource.kind)
                raw.setdefault("apiVersion", self.resource.api_version)
                obj = strip(raw)
                items[key_of(obj)] = obj
            meta = page.get("metadata") or {}
            rv = str(meta.get("resourceVersion") or rv)
            cont = meta.get("continue") or None
            if not cont:
                break
        initial = not self.synced.is_set()
        changes = self.cache.replace(
            self.resource.kind, items, scope=self.namespace if self.resource.namespaced else None
        )
        self.metrics.relists.labels(self.label).inc()
        self.resource_version = rv
        for change in changes:
            await self.on_change(self.resource, change, initial)
        self.metrics.objects.labels(self.label).set(len(self.cache.kind(self.resource.kind)))
        self.synced.set()

    async def watch_once(self) -> None:
        params: dict[str, Any] = {
            "watch": "true",
            "allowWatchBookmarks": "true",
            "resourceVersion": self.resource_version or "",
            "timeoutSeconds": self.options.watch_timeout_seconds,
        }
        async with self.kube.watch(
            self.resource.path(self.namespace), params, read_timeout=self.options.watch_timeout_seconds + 30
        ) as response:
            if response.status_code == 410:
                raise GoneError("watch 410")
            if response.status_code >= 400:
                body = (await response.aread())[:200]
                raise ApiError(response.status_code, body.decode(errors="replace"))
            async for line in response.aiter_lines():
                if line:
                    await self.handle_line(line)

    async def handle_line(self, line: str) -> None:
        event = orjson.loads(line)
        etype = str(event.get("type"))
        obj: Obj = event.get("object") or {}
        self.metrics.events.labels(self.label, etype).inc()
        if etype == "ERROR":
            if obj.get("code") == 410:
                raise GoneError(str(obj.get("message")))
            raise ApiError(int(obj.get("code") or 500), str(obj.get("message")))
        rv = resource_version(obj)
        if etype == "BOOKMARK":
            if rv:
                self.resource_version = rv
            return
        obj.setdefault("kind", self.resource.kind)
        obj.setdefault("apiVersion", self.resource.api_version)
        change = self.cache.apply(self.resource.kind, etype, strip(obj))
        if rv:
            self.resource_version = rv
        if change is not None:
            self.metrics.objects.labels(self.label).set(len(self.cache.kind(self.resource.kind)))
            await self.on_change(self.resource, change, False)
