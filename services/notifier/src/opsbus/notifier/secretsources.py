"""Where the values of secret references come from: Kubernetes Secrets (`secretKeyRef`, read with the notifier's
own RBAC: `get` on Secrets in its namespace) and the encrypted store (`secretRef`, `opsbus.notifier.secretstore`).

`SecretSources.resolve` turns the references `secret_references` found in a configuration into the `Resolved`
mapping `parse_config` takes. Kubernetes reads are cached for `cache_seconds` (every replica re-resolves the
configuration in force at each reload poll); a configuration being put reads fresh. A failure to read is a value
of the mapping (`Unresolved`, naming the Secret and key, never a value), so the configuration's validation
reports it with the YAML path of the field.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from collections.abc import Callable, Collection
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from opsbus.notifier.domain.secrets import Resolved, SecretKeyRef, SecretRef, StoredSecretRef, Unresolved, value_text
from opsbus.notifier.secretstore import ReceiverSecrets

_SecretData = dict[str, str] | Unresolved  # a Secret's base64 data, or why it could not be read


def api_client(kubeconfig: str | None) -> client.ApiClient:
    """An API client: the kubeconfig when given, else the pod's service account, else the default kubeconfig."""
    if kubeconfig:
        api: client.ApiClient = config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]
        return api
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]
    return client.ApiClient()


class KubeSecrets:
    """Reads Secret keys; the client is made on first use (a notifier with no secretKeyRef needs no cluster)."""

    def __init__(
        self,
        make_client: Callable[[], client.ApiClient],
        *,
        namespace: str,
        cache_seconds: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._make_client = make_client
        self._api: client.ApiClient | None = None
        self.namespace = namespace
        self.cache_seconds = cache_seconds
        self.monotonic = monotonic
        self._cache: dict[tuple[str, str], tuple[float, _SecretData]] = {}

    def _core(self) -> Any:
        if self._api is None:
            self._api = self._make_client()
        return client.CoreV1Api(self._api)

    def close(self) -> None:
        if self._api is not None:
            self._api.close()  # type: ignore[no-untyped-call]
            self._api = None

    async def values(self, refs: Collection[SecretKeyRef], *, fresh: bool) -> dict[SecretRef, str | Unresolved]:
        out: dict[SecretRef, str | Unresolved] = {}
        for ref in refs:
            namespace = ref.namespace or self.namespace
            data = await self._secret(namespace, ref.name, fresh=fresh)
            where = f"key {ref.key!r} of Secret {namespace}/{ref.name}"
            if isinstance(data, Unresolved):
                out[ref] = data
            elif ref.key not in data:
                out[ref] = Unresolved(f"Secret {namespace}/{ref.name} has no key {ref.key!r}")
            else:
                try:
                    out[ref] = value_text(base64.b64decode(data[ref.key], validate=True), ref)
                except (ValueError, binascii.Error):
                    out[ref] = Unresolved(f"{where} is not UTF-8 text")
        return out

    async def _secret(self, namespace: str, name: str, *, fresh: bool) -> _SecretData:
        now = self.monotonic()
        cached = self._cache.get((namespace, name))
        if cached is not None and not fresh and now - cached[0] < self.cache_seconds:
            return cached[1]
        data = await self._read(namespace, name)
        self._cache[(namespace, name)] = (now, data)
        return data

    async def _read(self, namespace: str, name: str) -> _SecretData:
        what = f"Secret {namespace}/{name}"
        try:
            core = self._core()
            secret = await asyncio.to_thread(core.read_namespaced_secret, name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return Unresolved(f"{what} does not exist")
            if exc.status == 403:
                return Unresolved(
                    f"the notifier may not read {what} (403): its role grants get on Secrets in its own namespace only"
                )
            return Unresolved(f"{what} could not be read: the apiserver answered {exc.status} {exc.reason}")
        except (config.ConfigException, OSError) as exc:  # no cluster configured or reachable
            return Unresolved(f"{what} could not be read: no Kubernetes API ({type(exc).__name__})")
        return dict(secret.data or {})


class SecretSources:
    """Every source of secret values, behind one `resolve`."""

    def __init__(self, stored: ReceiverSecrets | None, kube: KubeSecrets | None) -> None:
        self.stored = stored
        self.kube = kube

    async def close(self) -> None:
        if self.kube is not None:
            self.kube.close()

    async def resolve(self, refs: Collection[SecretRef], *, fresh: bool = False) -> Resolved:
        keyed = [r for r in refs if isinstance(r, SecretKeyRef)]
        names = [r.name for r in refs if isinstance(r, StoredSecretRef)]
        out: dict[SecretRef, str | Unresolved] = {}
        if keyed:
            if self.kube is None:
                out.update({r: Unresolved(f"{r}: this notifier reads no Kubernetes Secrets") for r in keyed})
            else:
                out.update(await self.kube.values(keyed, fresh=fresh))
        if names:
            if self.stored is None:
                out.update({StoredSecretRef(n): Unresolved(f"{StoredSecretRef(n)}: no secret store") for n in names})
            else:
                out.update(await self.stored.values(names))
        return out
