"""What `make demo` puts in place besides the platform: a namespace with a few workloads, remediation policies scoped to
it, a notifier configuration, and a local webhook receiver that shows each notification as it arrives.

The policies are the shipped defaults narrowed to the demo namespace and with short cooldowns, so a fault injected a
second time is acted on again within the demo rather than held back for ten minutes.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from kubernetes import client, config

WORKLOADS = {"web": 3, "api": 2, "worker": 1}  # name -> replicas; pods run on the sandbox's fake (kwok) nodes

POLICIES = """\
# Demo remediation policies: only the `{namespace}` namespace, short cooldowns. Edit and restart the demo to try others.
policies:
  - name: crashloop
    description: A crash-looping pod is deleted, then its workload restarted, then the people told.
    match:
      alertname: [KubePodCrashLooping]
      namespaces: {{include: [{namespace}]}}
    cooldown: 30s
    max_attempts: 6
    ladder:
      - {{action: delete_pod, params: {{grace_period_seconds: 0}}, verify: alert_resolved, timeout: 60s}}
      - {{action: rollout_restart, verify: alert_resolved, timeout: 2m}}
      - {{action: notify_only, timeout: 1s}}
  - name: oomkilled
    match:
      alertname: [KubeContainerOOMKilled]
      namespaces: {{include: [{namespace}]}}
    cooldown: 1m
    ladder:
      - {{action: raise_memory_limit, params: {{factor: 1.5, ceiling_bytes: 2147483648}}, verify: alert_resolved,
         timeout: 2m}}
  - name: image-pull
    match:
      alertname: [KubePodImagePullFailing]
      namespaces: {{include: [{namespace}]}}
    ladder:
      - {{action: notify_only}}
"""

NOTIFIER_CONFIG = """\
# Demo routing: every alert, recovery and deploy outcome goes to the demo's local webhook receiver.
route:
  receiver: demo-webhook
  group_by: [alertname, namespace]
  group_wait: 1s
  group_interval: 5s
  repeat_interval: 1h
receivers:
  - name: demo-webhook
    webhook_configs:
      - url: {url}
"""


def write_policies(path: Path, namespace: str) -> Path:
    path.write_text(POLICIES.format(namespace=namespace))
    return path


def write_notifier_config(path: Path, webhook_url: str) -> Path:
    path.write_text(NOTIFIER_CONFIG.format(url=webhook_url))
    return path


def seed_namespace(kubeconfig: Path, namespace: str) -> list[str]:
    """Create the namespace (if missing) and the demo Deployments (replaced if present). Returns their names."""
    api = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    try:
        core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
        existing = {ns.metadata.name for ns in core.list_namespace().items if ns.metadata}
        if namespace not in existing:
            core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
        for name, replicas in WORKLOADS.items():
            body = deployment(name, replicas)
            try:
                apps.create_namespaced_deployment(namespace, body)
            except client.ApiException as exc:
                if exc.status != 409:
                    raise
                apps.replace_namespaced_deployment(name, namespace, body)
        return list(WORKLOADS)
    finally:
        api.close()


def delete_namespace(kubeconfig: Path, namespace: str) -> None:
    api = config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    try:
        client.CoreV1Api(api).delete_namespace(namespace, propagation_policy="Background")
    except client.ApiException as exc:
        if exc.status != 404:
            raise
    finally:
        api.close()


def deployment(name: str, replicas: int, marker: tuple[str, str] = ("opsbus.io/demo", "true")) -> client.V1Deployment:
    """A small Deployment kwok runs: selected by `app=<name>`, its pods also carry the `marker` label."""
    labels = {"app": name, marker[0]: marker[1]}
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name, labels=labels),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels={"app": name}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(
                    containers=[
                        client.V1Container(
                            name=name,
                            image=f"registry.example/demo/{name}:1.0",
                            resources=client.V1ResourceRequirements(
                                requests={"cpu": "100m", "memory": "128Mi"}, limits={"memory": "256Mi"}
                            ),
                        )
                    ]
                ),
            ),
        ),
    )


class WebhookReceiver:
    """A local HTTP endpoint standing in for Slack or PagerDuty: records every JSON body it receives."""

    def __init__(self, on_body: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._on_body = on_body
        receiver = self

        class _Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {"_undecodable": raw.decode(errors="replace")}
                receiver._record(body, dict(self.headers.items()))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-receiver", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def received(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.bodies)

    def _record(self, body: dict[str, Any], headers: dict[str, str]) -> None:
        with self._lock:
            self.bodies.append(body)
            self.headers.append(headers)
        if self._on_body is not None:
            self._on_body(body)
