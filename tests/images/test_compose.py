"""docker-compose.yml proven on the built images: the whole platform (the seven service containers and their
migrations; NATS, PostgreSQL, Jaeger and Prometheus from the local-binaries override) comes up under Debian's
docker-compose against podman's API socket, the gateway container serves the console and the API, a pod made to
crash-loop in the sandbox is detected, healed and notified by the containers, and `down` leaves no container,
volume or network of the project behind.
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml
from kubernetes import client

from opsbus.common.testing.servers import free_port, nats_server_binary
from opsbus.demo.jaeger import jaeger_binary
from opsbus.demo.seeding import WebhookReceiver
from tests.cluster.conftest import SANDBOX, SandboxHandle
from tests.cluster.kube import Cluster, wait_until
from tests.e2e.conftest import NOTIFIER, POLICIES
from tests.images.compose import Compose, Relay
from tests.images.engine import REPO_ROOT, HealthTicker, Image, api_socket, project_leftovers

pytestmark = [pytest.mark.images, pytest.mark.timeout(2400)]

# The healer's policy and the notifier's route are the e2e tier's (crash-loop ladder for namespaces e2e-*, webhook).
INFRASTRUCTURE = ("nats", "postgres", "jaeger", "prometheus")

OVERRIDE = """
version: "3.8"
x-kube: &kube
  - ${KUBECONFIG_FILE}:/etc/opsbus/kubeconfig:ro
services:
  watcher:
    environment:
      OPSBUS_WATCHER__NAMESPACES: '["${TEST_NAMESPACE}"]'
      OPSBUS_WATCHER__THRESHOLDS__RESOLVE_AFTER_SECONDS: "2"
      OPSBUS_WATCHER__LOG_TIMEOUT_SECONDS: "1"
  optimizer:
    environment:
      OPSBUS_OPTIMIZER__NAMESPACES: '["${TEST_NAMESPACE}"]'
  healer:
    environment:
      OPSBUS_HEALER__POLICY_FILE: /etc/opsbus/policies.yaml
      OPSBUS_HEALER__VERIFY_POLL_SECONDS: "0.25"
    volumes:
      - ${TEST_POLICIES}:/etc/opsbus/policies.yaml:ro
  notifier:
    volumes:
      - ${TEST_NOTIFIER}:/etc/opsbus/notifier.yaml:ro
"""


def container_kubeconfig(source: Path, address: str, port: int) -> str:
    """The sandbox's kubeconfig as a container reads it: the server behind the relay on the network's gateway
    (the certificate is checked against its name `kubernetes`), every file inlined as data."""
    config: dict[str, Any] = yaml.safe_load(source.read_text())
    for entry in config["clusters"]:
        cluster = entry["cluster"]
        cluster["server"] = f"https://{address}:{port}"
        cluster["tls-server-name"] = "kubernetes"
        if "certificate-authority" in cluster:
            cluster["certificate-authority-data"] = _b64(cluster.pop("certificate-authority"))
    for entry in config["users"]:
        user = entry["user"]
        for key in ("client-certificate", "client-key"):
            if key in user:
                user[f"{key}-data"] = _b64(user.pop(key))
    return yaml.safe_dump(config)


def _b64(path: str) -> str:
    return base64.b64encode(Path(path).read_bytes()).decode()


def _readable(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o644)  # read by the containers' uid 10001 through a bind mount
    return path


def test_compose_platform_detects_heals_notifies_and_leaves_nothing_behind(
    images: dict[str, Image], sandbox: SandboxHandle, api_client: client.ApiClient, tmp_path: Path
) -> None:
    core = client.CoreV1Api(api_client)
    namespace = f"e2e-img-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    kube = Cluster(
        api=api_client, namespace=namespace, kubeconfig=sandbox.kubeconfig, kubectl_path=sandbox.kubectl,
        sandbox_script=SANDBOX,
    )  # fmt: skip
    project = f"opsbusimg{uuid.uuid4().hex[:6]}"
    gateway_port = free_port()
    webhook = WebhookReceiver()
    webhook.start()
    apiserver_port = urlsplit(yaml.safe_load(sandbox.kubeconfig.read_text())["clusters"][0]["cluster"]["server"]).port
    assert apiserver_port is not None
    files = {name: tmp_path / name for name in ("kubeconfig", "notifier.yaml", "policies.yaml")}
    override = _readable(tmp_path / "test-override.yml", OVERRIDE)
    _readable(files["policies.yaml"], POLICIES)
    env = {
        "OPSBUS_NATS_SERVER": str(nats_server_binary()),
        "OPSBUS_JAEGER": str(jaeger_binary()),
        "OPSBUS_GATEWAY_PORT": str(gateway_port),
        **{f"OPSBUS_{name}_PORT": str(free_port()) for name in ("NATS", "NATS_MONITOR", "POSTGRES", "JAEGER")},
        **{f"OPSBUS_{name}_PORT": str(free_port()) for name in ("OTLP", "PROMETHEUS", "GRAFANA")},
        # six migrations start at once: on a loaded machine a connection takes longer than the default 10 s
        "OPSBUS_DATABASE_CONNECT_TIMEOUT": "60",
        "KUBECONFIG_FILE": str(files["kubeconfig"]),
        "TEST_NAMESPACE": namespace,
        "TEST_POLICIES": str(files["policies.yaml"]),
        "TEST_NOTIFIER": str(files["notifier.yaml"]),
    }
    relays: list[Relay] = []
    timings: dict[str, float] = {}
    with api_socket(tmp_path) as docker_host, HealthTicker(project, INFRASTRUCTURE):
        compose = Compose(
            project=project,
            files=[REPO_ROOT / "docker-compose.yml", REPO_ROOT / "deploy/docker/compose.local-binaries.yml", override],
            env={**env, "DOCKER_HOST": docker_host},
            log_dir=tmp_path,
        )
        try:
            started = time.monotonic()
            compose.up(*INFRASTRUCTURE)
            address = compose.gateway_address()
            relays = [Relay(address, apiserver_port), Relay(address, int(urlsplit(webhook.url).port or 0))]
            _readable(files["kubeconfig"], container_kubeconfig(sandbox.kubeconfig, address, relays[0].port))
            _readable(files["notifier.yaml"], NOTIFIER.format(url=f"http://{address}:{relays[1].port}/hook"))
            compose.up()
            gateway = f"http://127.0.0.1:{gateway_port}"
            wait_until("the gateway container ready", lambda: _ready(gateway), 300, state=compose.logs)
            timings["up"] = time.monotonic() - started

            # the gateway image carries the console: `/` is the built index.html, not "console not built"
            # (its own build: compared by shape, as `make console` may have run again since the image was built)
            home = httpx.get(f"{gateway}/", timeout=10)
            assert home.status_code == 200, home.text
            script = re.search(r'src="(/assets/index-[^"]+\.js)"', home.text)
            assert script is not None and '<div id="root">' in home.text, home.text
            bundle = httpx.get(f"{gateway}{script.group(1)}", timeout=10)
            assert bundle.status_code == 200 and "javascript" in bundle.headers["content-type"]

            created = compose.run("exec", "-T", "gateway", "python", "-m", "opsbus.gateway", "create-admin-key")
            key = created.stdout.strip().splitlines()[-1]
            api = httpx.Client(base_url=gateway, headers={"Authorization": f"Bearer {key}"}, timeout=10)

            wait_until(f"the default service account in {namespace}", kube.has_default_service_account, 60)
            kube.create_deployment("crashy", replicas=3)
            pods = wait_until("crashy running", lambda: kube.running_pods("crashy", 3), 120)
            victim = pods[0].metadata.name
            injected = time.monotonic()
            kube.chaos("crashloop", f"pod/{victim}")

            def incident() -> dict[str, Any] | None:
                page = api.get("/v1/incidents", params={"namespace": namespace})
                assert page.status_code == 200, page.text
                hits = [i for i in page.json()["items"] if i["labels"].get("pod") == victim]
                return hits[0] if hits else None

            fired = wait_until("the crash loop detected", incident, 180, state=lambda: compose.logs("watcher"))
            timings["detected"] = time.monotonic() - injected
            assert fired["alertname"] == "KubePodCrashLooping"

            def healed() -> dict[str, Any] | None:
                detail = api.get(f"/v1/incidents/{fired['id']}").json()
                kinds = {event["type"].split(".")[3] for event in detail["recoveries"]}
                return detail if {"started", "succeeded"} <= kinds else None

            told = wait_until("the crash loop healed", healed, 240, state=lambda: compose.logs("healer"))
            timings["healed"] = time.monotonic() - injected
            assert [
                e["data"]["action"]["kind"] for e in told["recoveries"] if e["type"].split(".")[3] == "started"
            ] == ["delete_pod"]
            wait_until(
                f"{victim} replaced",
                lambda: victim not in {p.metadata.name for p in kube.pods("crashy")} and kube.running_pods("crashy", 3),
                120,
            )

            def notified() -> list[dict[str, Any]] | None:
                bodies = webhook.received()
                return [b for b in bodies if any(a["labels"].get("pod") == victim for a in b.get("alerts", []))] or None

            wait_until("the webhook notified", notified, 180, state=lambda: compose.logs("notifier"))
            timings["notified"] = time.monotonic() - injected
            api.close()
        finally:
            print(f"compose logs: {compose.save_logs()}; timings (s): {json.dumps(timings)}")
            down = compose.down()
            for relay in relays:
                relay.close()
            webhook.stop()
            core.delete_namespace(namespace, propagation_policy="Background")
    assert down.returncode == 0, down.stderr
    assert project_leftovers(project) == {}


def _ready(gateway: str) -> bool:
    try:
        return httpx.get(f"{gateway}/readyz", timeout=3).status_code == 200
    except httpx.HTTPError:
        return False
