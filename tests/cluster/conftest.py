"""Fixtures for cluster tests: one sandbox per session, one namespace per test.

The session fixture brings the sandbox up through `deploy/sandbox/sandbox.sh up` (and takes it down again only if
it started it), or uses the cluster in `OPSBUS_TEST_KUBECONFIG` untouched. Each test gets a fresh namespace that is
deleted afterwards, so tests never see each other's objects.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client, config

from tests.cluster.kube import Cluster, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
SANDBOX = REPO_ROOT / "deploy" / "sandbox" / "sandbox.sh"
UP_TIMEOUT_S = 240
SANDBOX_BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kwok", "kwokctl")


@dataclass(frozen=True)
class SandboxHandle:
    kubeconfig: Path
    kubectl: Path
    is_sandbox: bool  # False when OPSBUS_TEST_KUBECONFIG points at some other cluster


def _sandbox(*args: str, timeout: float) -> str:
    proc = subprocess.run(
        ["bash", str(SANDBOX), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"sandbox.sh {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxHandle]:
    bin_dir = Path(_sandbox("bin-dir", timeout=60).strip())
    kubectl = bin_dir / "kubectl"
    external = os.environ.get("OPSBUS_TEST_KUBECONFIG")
    if external:
        if not kubectl.exists():
            pytest.fail(f"OPSBUS_TEST_KUBECONFIG is set but {kubectl} is not built: run make sandbox-install")
        yield SandboxHandle(kubeconfig=Path(external), kubectl=kubectl, is_sandbox=False)
        return
    missing = [name for name in SANDBOX_BINARIES if not (bin_dir / name).exists()]
    if missing:
        # A cold build takes about 13 minutes: past the per-test timeout, so it is not started from here.
        pytest.fail(f"sandbox binaries not built ({', '.join(missing)}): run `make sandbox-install` first")
    already_up = (
        subprocess.run(["bash", str(SANDBOX), "status"], capture_output=True, timeout=120, check=False).returncode == 0
    )
    kubeconfig = Path(_sandbox("up", timeout=UP_TIMEOUT_S).strip().splitlines()[-1])
    try:
        yield SandboxHandle(kubeconfig=kubeconfig, kubectl=kubectl, is_sandbox=True)
    finally:
        if not already_up:
            _sandbox("down", timeout=300)


@pytest.fixture(scope="session")
def api_client(sandbox: SandboxHandle) -> Iterator[client.ApiClient]:
    api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(sandbox.kubeconfig)
    )
    try:
        yield api
    finally:
        api.close()  # type: ignore[no-untyped-call]


@pytest.fixture
def cluster(sandbox: SandboxHandle, api_client: client.ApiClient, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """A namespace of the test's own, with typed helpers around it; deleted after the test."""
    core = client.CoreV1Api(api_client)
    short = request.node.name.removeprefix("test_").replace("_", "-")[:40].strip("-")
    namespace = f"t-{short}-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    kube = Cluster(
        api=api_client,
        namespace=namespace,
        kubeconfig=sandbox.kubeconfig,
        kubectl_path=sandbox.kubectl,
        sandbox_script=SANDBOX,
    )
    # Pods are refused until the service account controller has made the namespace's default account.
    wait_until(
        f"the default service account in {namespace}",
        kube.has_default_service_account,
        timeout=60,
    )
    try:
        yield kube
    finally:
        core.delete_namespace(namespace, propagation_policy="Background")
