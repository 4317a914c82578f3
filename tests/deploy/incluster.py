"""Run a service's real Kubernetes code as if it were in a pod of the chart: with a token the apiserver issued for
the chart's ServiceAccount (TokenRequest), presented through the in-cluster configuration path the services use when
no kubeconfig is set (`KUBERNETES_SERVICE_HOST`/`_PORT`, the token file and the CA file).

The kubernetes client reads the token and CA from fixed paths under /var/run/secrets; `in_cluster` points those module
constants at temporary files instead, and restores the client's process-wide default configuration afterwards.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from kubernetes import client
from kubernetes.config import incluster_config


def service_account_token(api: client.ApiClient, namespace: str, account: str, seconds: int = 600) -> str:
    """A short-lived token for `namespace/account`, issued by the apiserver (TokenRequest API)."""
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=seconds)
    )
    answer: Any = client.CoreV1Api(api).create_namespaced_service_account_token(account, namespace, request)
    token: str = answer.status.token
    return token


def _server_and_ca(kubeconfig: Path) -> tuple[str, int, Path]:
    config = yaml.safe_load(kubeconfig.read_text(encoding="utf-8"))
    cluster = config["clusters"][0]["cluster"]
    url = urlsplit(cluster["server"])
    ca = Path(cluster["certificate-authority"])
    if not ca.is_absolute():
        ca = kubeconfig.parent / ca
    return url.hostname or "", url.port or 443, ca


@contextmanager
def in_cluster(token: str, kubeconfig: Path, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Inside the block, `load_incluster_config()` authenticates with `token` (and nothing else can be used)."""
    host, port, ca = _server_and_ca(kubeconfig)
    token_file = workdir / "token"
    ca_file = workdir / "ca.crt"
    token_file.write_text(token, encoding="utf-8")
    ca_file.write_bytes(ca.read_bytes())
    saved_default = client.Configuration._default  # no public way to restore it
    with monkeypatch.context() as patch:
        patch.setenv("KUBERNETES_SERVICE_HOST", host)
        patch.setenv("KUBERNETES_SERVICE_PORT", str(port))
        patch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(token_file))
        patch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(ca_file))
        # No fallback to an admin kubeconfig: a failure of the in-cluster path must show.
        patch.delenv("KUBECONFIG", raising=False)
        patch.setenv("HOME", str(workdir))
        try:
            yield
        finally:
            client.Configuration.set_default(saved_default)


def token_client(token: str, kubeconfig: Path) -> client.ApiClient:
    """A plain API client authenticated only by `token` (for the calls a service's own code never makes)."""
    host, port, ca = _server_and_ca(kubeconfig)
    configuration = client.Configuration()
    configuration.host = f"https://{host}:{port}"
    configuration.ssl_ca_cert = str(ca)
    configuration.api_key = {"BearerToken": token}
    configuration.api_key_prefix = {"BearerToken": "Bearer"}
    return client.ApiClient(configuration)


def kubectl_apply(kubectl: Path, kubeconfig: Path, manifests: str, namespace: str) -> str:
    proc = subprocess.run(
        [str(kubectl), "--kubeconfig", str(kubeconfig), "--namespace", namespace, "apply", "-f", "-"],
        input=manifests,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"kubectl apply exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout
