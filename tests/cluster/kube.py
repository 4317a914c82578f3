"""Helpers for cluster tests: bounded polling, and the few Kubernetes calls the tests repeat.

Every wait has a deadline and fails with what it was waiting for and the last state it saw, so a slow or wedged
cluster shows up as a readable failure rather than a hung run. Nothing here retries an assertion into passing:
probes return the observed object, and the tests assert on it.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

T = TypeVar("T")

KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"


def wait_until(
    what: str,
    probe: Callable[[], T | None],
    timeout: float,
    interval: float = 0.5,
    state: Callable[[], object] | None = None,
) -> T:
    """Poll `probe` until it returns something truthy, at most `timeout` seconds; return that value.

    On timeout the test fails naming `what`, the probe's last result or error, and `state()` if given.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            result = probe()
        except ApiException as exc:
            result = None
            last = f"API error {exc.status}: {exc.reason}"
        else:
            last = result
        if result:
            return result
        if time.monotonic() >= deadline:
            detail = f"\nstate: {state()}" if state is not None else ""
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}; last probe: {last!r}{detail}")
        time.sleep(interval)


def container_status(pod: Any, name: str | None = None) -> Any:
    """The status of container `name` (default: the first container) of `pod`, or None."""
    for status in pod.status.container_statuses or []:
        if name is None or status.name == name:
            return status
    return None


def condition(obj: Any, kind: str) -> Any:
    """The status condition of type `kind` on a pod or node, or None."""
    for cond in obj.status.conditions or []:
        if cond.type == kind:
            return cond
    return None


def is_running_and_ready(pod: Any) -> bool:
    ready = condition(pod, "Ready")
    return bool(
        pod.status.phase == "Running"
        and ready is not None
        and ready.status == "True"
        and pod.metadata.deletion_timestamp is None
    )


@dataclass
class Cluster:
    """One test's view of the cluster: its own namespace plus the API client, kubectl and sandbox.sh."""

    api: client.ApiClient
    namespace: str
    kubeconfig: Path
    kubectl_path: Path
    sandbox_script: Path

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.api)

    @property
    def apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(self.api)

    @property
    def batch(self) -> client.BatchV1Api:
        return client.BatchV1Api(self.api)

    def has_default_service_account(self) -> bool:
        accounts = self.core.list_namespaced_service_account(self.namespace, field_selector="metadata.name=default")
        return bool(accounts.items)

    # --- commands -------------------------------------------------------------------------------------------

    def kubectl(self, *args: str, timeout: float = 120) -> str:
        """Run the sandbox's kubectl in this namespace; fail the test on a non-zero exit."""
        cmd = [str(self.kubectl_path), "--kubeconfig", str(self.kubeconfig), "-n", self.namespace, *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        if proc.returncode != 0:
            pytest.fail(f"kubectl {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc.stdout

    def sandbox(self, *args: str, timeout: float = 120) -> str:
        """Run deploy/sandbox/sandbox.sh against this cluster; fail the test on a non-zero exit."""
        env = {**os.environ, "OPSBUS_KUBECONFIG": str(self.kubeconfig)}
        proc = subprocess.run(
            ["bash", str(self.sandbox_script), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=env,
        )
        if proc.returncode != 0:
            pytest.fail(f"sandbox.sh {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc.stdout

    def chaos(self, fault: str, target: str) -> None:
        self.sandbox("chaos", fault, target, self.namespace)

    def heal(self, fault: str, target: str) -> None:
        self.sandbox("heal", fault, target, self.namespace)

    # --- objects ----------------------------------------------------------------------------------------------

    def create_deployment(self, name: str, replicas: int, image: str = "registry.example/app:1.0") -> Any:
        labels = {"app": name}
        container = client.V1Container(name="app", image=image)
        body = client.V1Deployment(
            metadata=client.V1ObjectMeta(name=name, labels=labels),
            spec=client.V1DeploymentSpec(
                replicas=replicas,
                selector=client.V1LabelSelector(match_labels=labels),
                template=client.V1PodTemplateSpec(
                    metadata=client.V1ObjectMeta(labels=labels),
                    spec=client.V1PodSpec(containers=[container]),
                ),
            ),
        )
        return self.apps.create_namespaced_deployment(self.namespace, body)

    def create_pod(self, name: str, image: str = "registry.example/app:1.0", node: str | None = None) -> Any:
        spec = client.V1PodSpec(containers=[client.V1Container(name="app", image=image)], node_name=node)
        body = client.V1Pod(metadata=client.V1ObjectMeta(name=name, labels={"app": name}), spec=spec)
        return self.core.create_namespaced_pod(self.namespace, body)

    def pod(self, name: str) -> Any:
        return self.core.read_namespaced_pod(name, self.namespace)

    def pods(self, app: str) -> list[Any]:
        """Pods of app `app` that are not being deleted."""
        items: list[Any] = self.core.list_namespaced_pod(self.namespace, label_selector=f"app={app}").items
        return [p for p in items if p.metadata.deletion_timestamp is None]

    def replica_sets(self, app: str) -> list[Any]:
        items: list[Any] = self.apps.list_namespaced_replica_set(self.namespace, label_selector=f"app={app}").items
        return items

    def deployment(self, name: str) -> Any:
        return self.apps.read_namespaced_deployment(name, self.namespace)

    def running_pods(self, app: str, count: int) -> list[Any] | None:
        """The app's pods if exactly `count` of them exist and all are Running and Ready, else None."""
        pods = self.pods(app)
        if len(pods) == count and all(is_running_and_ready(p) for p in pods):
            return pods
        return None

    def rollout_complete(self, name: str) -> Any:
        """The deployment once its rollout is complete (what `kubectl rollout status` waits for), else None."""
        d = self.deployment(name)
        s = d.status
        want = d.spec.replicas
        done = (
            s.observed_generation is not None
            and s.observed_generation >= d.metadata.generation
            and (s.updated_replicas or 0) == want
            and (s.replicas or 0) == want
            and (s.available_replicas or 0) == want
        )
        return d if done else None

    def describe_pods(self, app: str) -> list[tuple[str, str | None, str | None]]:
        """Name, phase and first container's waiting reason of each pod: a compact failure message."""
        out: list[tuple[str, str | None, str | None]] = []
        for p in self.pods(app):
            cs = container_status(p)
            waiting = cs.state.waiting.reason if cs is not None and cs.state.waiting is not None else None
            out.append((p.metadata.name, p.status.phase, waiting))
        return out

    # --- nodes ------------------------------------------------------------------------------------------------

    def create_fake_node(self, name: str) -> Any:
        """A kwok-managed node (kwok answers for nodes annotated kwok.x-k8s.io/node=fake)."""
        body = client.V1Node(
            metadata=client.V1ObjectMeta(
                name=name,
                annotations={KWOK_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
                labels={"type": "kwok", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux"},
            ),
        )
        return self.core.create_node(body)

    def node(self, name: str) -> Any:
        return self.core.read_node(name)

    def node_ready(self, name: str) -> bool:
        return any(c.type == "Ready" and c.status == "True" for c in (self.node(name).status.conditions or []))

    def pods_on(self, node: str) -> list[Any]:
        """This namespace's pods scheduled on `node`."""
        return [p for p in self.core.list_namespaced_pod(self.namespace).items if p.spec and p.spec.node_name == node]

    def fake_node_with_pods(self, name: str, pods: int) -> None:
        """A kwok node, Ready, running `pods` pods of this namespace (blocks until it does)."""
        self.create_fake_node(name)
        wait_until(f"{name} Ready", lambda: self.node_ready(name), 60)
        for i in range(pods):
            self.create_pod(f"on-{name}-{i}", node=name)
        wait_until(f"{pods} pods on {name}", lambda: len(self.pods_on(name)) == pods, 60)
