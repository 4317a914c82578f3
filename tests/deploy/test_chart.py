"""The Helm chart, checked without a cluster: `helm lint`, `helm template` with the default and the production-like
values, the pod hardening every workload must carry, values.schema.json refusing bad values, and the rendered
environment read back through each service's own settings class (so a renamed setting cannot drift silently).
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from opsbus.common.settings import Environment, ServiceSettings, load
from opsbus.healer.domain.policy import parse_policies
from opsbus.notifier.domain.config import parse_config
from tests.deploy.tools import CHART, OBSERVABILITY, by_kind, helm, kube_version, ok, render, run

# These run the real tools (helm, hadolint, promtool, docker-compose, uv): not unit tests.
pytestmark = pytest.mark.integration

PRODUCTION = CHART / "ci" / "production-values.yaml"
SERVICES = ("watcher", "healer", "deployer", "optimizer", "notifier", "analyzer", "gateway")
KUBE_CLIENTS = ("watcher", "healer", "deployer", "optimizer", "analyzer")
MIGRATING = ("healer", "deployer", "optimizer", "notifier", "analyzer", "gateway")
SETTINGS = {
    "watcher": "opsbus.watcher.settings:WatcherSettings",
    "healer": "opsbus.healer.settings:HealerSettings",
    "deployer": "opsbus.deployer.settings:DeployerSettings",
    "optimizer": "opsbus.optimizer.settings:OptimizerSettings",
    "notifier": "opsbus.notifier.settings:NotifierSettings",
    "analyzer": "opsbus.analyzer.settings:AnalyzerSettings",
    "gateway": "opsbus.gateway.settings:GatewaySettings",
}
DATABASE_URL = "postgresql+asyncpg://opsbus:Vk3-from-the-secret@db.internal:5432/opsbus"


def _values(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


def _pod_specs(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        f"{o['kind']}/{o['metadata']['name']}": o["spec"]["template"]["spec"]
        for o in objects
        if o["kind"] in ("Deployment", "Job")
    }


def test_helm_lint_passes_for_default_and_production_values() -> None:
    ok(helm(), "lint", CHART, "--strict", "--kube-version", kube_version())
    ok(helm(), "lint", CHART, "--strict", "--kube-version", kube_version(), "--values", PRODUCTION)


@pytest.mark.parametrize("values", [(), (PRODUCTION,)], ids=["default", "production"])
def test_every_service_gets_its_deployment_service_and_account(values: tuple[Path, ...]) -> None:
    objects = render(*values)
    deployments = by_kind(objects, "Deployment")
    assert sorted(deployments) == sorted(f"opsbus-{s}" for s in SERVICES)
    assert sorted(by_kind(objects, "Service")) == sorted(deployments)
    assert sorted(by_kind(objects, "ServiceAccount")) == sorted(deployments)
    assert sorted(by_kind(objects, "NetworkPolicy")) == sorted(deployments)
    # The stateless services scale; the watcher (one publisher) and the optimizer (one planner) do not.
    assert sorted(by_kind(objects, "HorizontalPodAutoscaler")) == [
        "opsbus-analyzer",
        "opsbus-deployer",
        "opsbus-gateway",
        "opsbus-healer",
        "opsbus-notifier",
    ]
    # Secrets are referenced, never rendered.
    assert by_kind(objects, "Secret") == {}
    for name, deployment in deployments.items():
        hpa = by_kind(objects, "HorizontalPodAutoscaler").get(name)
        # With an HPA the Deployment leaves replicas to it (helm upgrade must not reset the scaled count).
        assert ("replicas" in deployment["spec"]) == (hpa is None), name


def test_default_values_render_no_operator_crds() -> None:
    kinds = {o["kind"] for o in render()}
    assert "ServiceMonitor" not in kinds and "PrometheusRule" not in kinds
    production = {o["kind"] for o in render(PRODUCTION)}
    assert {"ServiceMonitor", "PrometheusRule"} <= production


@pytest.mark.parametrize("values", [(), (PRODUCTION,)], ids=["default", "production"])
def test_every_pod_is_hardened_and_probed(values: tuple[Path, ...]) -> None:
    objects = render(*values)
    specs = _pod_specs(objects)
    assert "Job/opsbus-migrate" in specs
    for where, spec in specs.items():
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] != 0, where
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, where
        for container in spec.get("initContainers", []) + spec["containers"]:
            ctx = container["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False, (where, container["name"])
            assert ctx["readOnlyRootFilesystem"] is True, (where, container["name"])
            assert ctx["capabilities"] == {"drop": ["ALL"]}, (where, container["name"])
            assert container["resources"]["requests"], (where, container["name"])
            assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"], (where, container["name"])
        if where.startswith("Deployment/"):
            (container,) = spec["containers"]
            assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http-health"}, where
            assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http-health"}, where
            assert container["args"] == ["run"], where


def test_only_kubernetes_clients_get_a_token_and_a_role() -> None:
    objects = render()
    for name, spec in _pod_specs(objects).items():
        service = name.removeprefix("Deployment/opsbus-")
        expected = service in KUBE_CLIENTS or service == "notifier"  # the notifier reads its secretKeyRefs
        assert spec["automountServiceAccountToken"] is expected, name
    roles = by_kind(objects, "ClusterRole")
    assert sorted(roles) == sorted(f"opsbus-{s}-opsbus" for s in KUBE_CLIENTS)
    bindings = by_kind(objects, "ClusterRoleBinding")
    for name, binding in bindings.items():
        (subject,) = binding["subjects"]
        assert binding["roleRef"]["name"] == name
        assert subject == {"kind": "ServiceAccount", "name": name.removesuffix("-opsbus"), "namespace": "opsbus"}
    # The watcher only reads; it lists and watches Secrets (hashed in memory for the change timeline, never get),
    # no other role may touch Secrets, and none uses wildcards.
    for rule in roles["opsbus-watcher-opsbus"]["rules"]:
        assert set(rule["verbs"]) <= {"get", "list", "watch"}
        if "secrets" in rule["resources"]:
            assert rule["verbs"] == ["list", "watch"]
    for name, role in roles.items():
        for rule in role["rules"]:
            assert "*" not in rule["resources"] and "*" not in rule["verbs"]
            assert name == "opsbus-watcher-opsbus" or "secrets" not in rule["resources"]
    # The one namespaced Role: the notifier may get Secrets of its own namespace, nothing more.
    (role,) = by_kind(objects, "Role").values()
    assert role["metadata"]["name"] == "opsbus-notifier-secrets"
    assert role["rules"] == [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]
    (binding,) = by_kind(objects, "RoleBinding").values()
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "opsbus-notifier-secrets",
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "opsbus-notifier", "namespace": "opsbus"}]
    env = {e["name"]: e for e in _pod_specs(objects)["Deployment/opsbus-notifier"]["containers"][0]["env"]}
    assert env["OPSBUS_NOTIFIER__SECRETS__NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert "OPSBUS_NOTIFIER__SECRETS__KEYS" not in env  # no key Secret given: nothing can be stored


def test_notifier_secret_options_render_the_key_secret_and_can_drop_the_role() -> None:
    objects = render(sets=("notifier.secretKeysSecret=opsbus-notifier-keys", "notifier.readKubernetesSecrets=false"))
    assert not by_kind(objects, "Role") and not by_kind(objects, "RoleBinding")
    spec = _pod_specs(objects)["Deployment/opsbus-notifier"]
    assert spec["automountServiceAccountToken"] is False
    env = {e["name"]: e for e in spec["containers"][0]["env"]}
    assert env["OPSBUS_NOTIFIER__SECRETS__KEYS"]["valueFrom"] == {
        "secretKeyRef": {"name": "opsbus-notifier-keys", "key": "keys"}
    }


def test_migrate_hook_runs_every_schema_before_install_and_upgrade() -> None:
    job = by_kind(render(PRODUCTION), "Job")["opsbus-migrate"]
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    spec = job["spec"]["template"]["spec"]
    steps = spec["initContainers"] + spec["containers"]
    assert [c["name"] for c in steps] == [f"migrate-{s}" for s in MIGRATING]
    for container, service in zip(steps, MIGRATING, strict=True):
        assert container["args"] == ["migrate"]
        assert container["image"] == f"registry.example.com/platform/opsbus-{service}:0.1.0"
        env = {e["name"]: e for e in container["env"]}
        assert env["OPSBUS_DATABASE__URL"]["valueFrom"]["secretKeyRef"] == {"name": "opsbus-database", "key": "url"}


def test_disabled_service_renders_nothing_of_its_own() -> None:
    objects = render(sets=("optimizer.enabled=false", "notifier.enabled=false"))
    names = {o["metadata"]["name"] for o in objects}
    assert not {n for n in names if "optimizer" in n or "notifier" in n}
    job = by_kind(objects, "Job")["opsbus-migrate"]["spec"]["template"]["spec"]
    assert [c["name"] for c in job["initContainers"] + job["containers"]] == [
        "migrate-healer",
        "migrate-deployer",
        "migrate-analyzer",
        "migrate-gateway",
    ]


def _field_path(model: type[BaseModel], env_name: str) -> list[str]:
    """OPSBUS_A__B -> ["a", "b"], failing when a segment is no field of the settings model."""
    parts = env_name.removeprefix("OPSBUS_").lower().split("__")
    current: Any = model
    for part in parts:
        assert isinstance(current, type) and issubclass(current, BaseModel), f"{env_name}: {part} is not a group"
        field = current.model_fields.get(part)
        assert field is not None, f"{env_name}: {current.__name__} has no setting {part!r}"
        current = field.annotation
    return parts


@pytest.mark.parametrize("watch", [True, False])
def test_watch_secrets_decides_the_watchers_secret_rule_and_setting(
    watch: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = render(sets=() if watch else ("watcher.watchSecrets=false",))
    rules = by_kind(objects, "ClusterRole")["opsbus-watcher-opsbus"]["rules"]
    on_config = [r for r in rules if "configmaps" in r["resources"]]
    assert on_config == [
        {
            "apiGroups": [""],
            "resources": ["configmaps", "secrets"] if watch else ["configmaps"],
            "verbs": ["list", "watch"],
        }
    ]
    assert any("secrets" in r["resources"] for r in rules) is watch
    (container,) = _pod_specs(objects)["Deployment/opsbus-watcher"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["OPSBUS_WATCHER__WATCH_SECRETS"] == str(watch).lower()
    monkeypatch.setenv("OPSBUS_WATCHER__WATCH_SECRETS", env["OPSBUS_WATCHER__WATCH_SECRETS"])
    module = importlib.import_module("opsbus.watcher.settings")
    assert load(module.WatcherSettings).watcher.watch_secrets is watch


def _env_of(container: dict[str, Any]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in container["env"]:
        if "value" in item:
            env[item["name"]] = item["value"]
        elif "secretKeyRef" in item["valueFrom"]:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = DATABASE_URL if item["name"] == "OPSBUS_DATABASE__URL" else f"from-{ref['key']}"
        else:
            env[item["name"]] = "opsbus-pod-0"
    return env


@pytest.mark.parametrize("service", SERVICES)
def test_rendered_environment_is_what_the_service_reads(service: str, monkeypatch: pytest.MonkeyPatch) -> None:
    deployment = by_kind(render(PRODUCTION), "Deployment")[f"opsbus-{service}"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    env = _env_of(container)
    module_name, _, class_name = SETTINGS[service].partition(":")
    settings_type: type[ServiceSettings] = getattr(importlib.import_module(module_name), class_name)
    for name in env:
        assert name.startswith("OPSBUS_"), name
        _field_path(settings_type, name)
    for name in [n for n in os.environ if n.startswith("OPSBUS_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load(settings_type)
    assert settings.environment is Environment.PRODUCTION
    assert settings.cluster == "prod-eu-1"
    assert settings.http.host == "0.0.0.0" and settings.http.port == 8080
    assert settings.nats.servers[0] == "nats://nats-0.nats.nats.svc:4222" and settings.nats.stream_replicas == 3
    assert settings.nats.user == f"from-{service}-user"
    assert settings.telemetry.otlp_endpoint == "http://jaeger-collector.observability.svc:4318/v1/traces"
    assert settings.shutdown_grace_seconds < deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    # Every service gets the URL: even the watcher (no schema) refuses the built-in placeholder URL in production.
    assert settings.database.url.get_secret_value() == DATABASE_URL


def test_notifier_routes_and_healer_policy_in_values_are_valid() -> None:
    secrets = {"SLACK_WEBHOOK_URL": "https://hooks.example.com/services/T/B/x", "PAGERDUTY_ROUTING_KEY": "k" * 32}
    for values in (_values(CHART / "values.yaml"), _values(PRODUCTION)):
        config = parse_config(values["notifier"]["config"], env=secrets)
        assert config.receivers
    policies = parse_policies(_values(PRODUCTION)["healer"]["policy"])
    assert [p.name for p in policies.policies] == ["crashloop"]
    configmap = by_kind(render(PRODUCTION), "ConfigMap")["opsbus-healer"]
    assert configmap["data"]["policy.yaml"].strip() == _values(PRODUCTION)["healer"]["policy"].strip()


@pytest.mark.parametrize(
    ("assignment", "complaint"),
    [
        ("clusterName=Prod EU", "clusterName"),
        ("environment=prod", "environment"),
        ("database.url=postgresql://u:p@h/db", "database"),
        ("database.existingSecret=", "existingSecret"),
        ("watcher.replicas=-1", "replicas"),
        ("containerSecurityContext.allowPrivilegeEscalation=true", "allowPrivilegeEscalation"),
        ("podSecurityContext.runAsNonRoot=false", "runAsNonRoot"),
        ("nats.url=http://nats:4222", "url"),
        ("optimizer.defaultMode=aggressive", "defaultMode"),
        ("gateway.hpa.targetCPUUtilizationPercentage=150", "targetCPUUtilizationPercentage"),
        ("healer.resources.requests.memory=lots", "memory"),
        ("gateway.env.PATH=/tmp", "PATH"),
        ("notifier.unknownKnob=1", "unknownKnob"),
    ],
)
def test_schema_refuses_bad_values(assignment: str, complaint: str) -> None:
    result = run(helm(), "template", "opsbus", CHART, "--kube-version", kube_version(), "--set", assignment)
    assert result.returncode != 0, f"{assignment} was accepted"
    assert "values don't meet the specifications of the schema" in result.stderr
    assert complaint in result.stderr, result.stderr


def test_prometheus_rule_is_the_shipped_alert_rules() -> None:
    shipped = OBSERVABILITY / "prometheus" / "opsbus-alerts.yaml"
    copy = CHART / "files" / "opsbus-alerts.yaml"
    assert copy.read_bytes() == shipped.read_bytes(), f"{copy} drifted from {shipped}: copy it again"
    rule = by_kind(render(sets=("prometheusRule.enabled=true",)), "PrometheusRule")["opsbus-alerts"]
    assert rule["spec"] == yaml.safe_load(shipped.read_text(encoding="utf-8"))


def test_service_monitors_label_jobs_as_the_rules_expect() -> None:
    objects = render(sets=("serviceMonitor.enabled=true",), release="prod")
    services = by_kind(objects, "Service")
    for name, monitor in by_kind(objects, "ServiceMonitor").items():
        assert monitor["spec"]["jobLabel"] == "opsbus.io/job"
        service = name.removeprefix("prod-opsbus-")
        assert services[name]["metadata"]["labels"]["opsbus.io/job"] == f"opsbus-{service}"
        assert monitor["spec"]["endpoints"] == [{"port": "http-health", "path": "/metrics", "interval": "30s"}]


# --- NATS accounts and permissions --------------------------------------------------------------------------------


def _env_items(objects: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Workload name -> env var name -> its item, for every container of every Deployment and Job."""
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for name, spec in _pod_specs(objects).items():
        for container in spec["containers"]:
            found[name] = {item["name"]: item for item in container.get("env", [])}
    return found


def test_each_service_reads_its_own_nats_user_and_password_from_the_referenced_secret() -> None:
    envs = _env_items(render(PRODUCTION))
    for service in SERVICES:
        env = envs[f"Deployment/opsbus-{service}"]
        for setting, key in (("OPSBUS_NATS__USER", "user"), ("OPSBUS_NATS__PASSWORD", "password")):
            assert "value" not in env[setting], f"{service}: {setting} rendered as a literal"
            ref = env[setting]["valueFrom"]["secretKeyRef"]
            assert ref == {"name": "opsbus-nats", "key": f"{service}-{key}"}, (service, ref)


def test_without_a_nats_secret_no_credentials_are_rendered() -> None:
    for name, env in _env_items(render()).items():
        assert not {"OPSBUS_NATS__USER", "OPSBUS_NATS__PASSWORD", "OPSBUS_NATS__NKEY_SEED_FILE"} & set(env), name


def test_the_nats_authorization_configmap_is_the_generated_block() -> None:
    from opsbus.common.bus.permissions import nats_conf, user_name  # noqa: PLC0415

    assert "opsbus-nats-authorization" not in by_kind(render(), "ConfigMap")
    objects = render(PRODUCTION, sets=("nats.auth.authorizationConfigMap=true",))
    block = by_kind(objects, "ConfigMap")["opsbus-nats-authorization"]["data"]["authorization.conf"]
    assert block == nats_conf(cluster="prod-eu-1")  # its per-cluster consumers carry clusterName
    assert 'password: "' not in block  # passwords are server environment variables, never in the ConfigMap
    for service in SERVICES:
        assert f'user: "{user_name(service)}"' in block


@pytest.mark.parametrize(
    ("assignment", "complaint"),
    [
        ("nats.auth.password=hunter2", "password"),
        ("nats.auth.existingSecret=Not_A_Secret_Name", "existingSecret"),
        ("nats.auth.authorizationConfigMap=yes", "authorizationConfigMap"),
    ],
)
def test_schema_refuses_nats_credentials_in_values(assignment: str, complaint: str) -> None:
    result = run(helm(), "template", "opsbus", CHART, "--kube-version", kube_version(), "--set", assignment)
    assert result.returncode != 0, f"{assignment} was accepted"
    assert "values don't meet the specifications of the schema" in result.stderr
    assert complaint in result.stderr, result.stderr


def test_the_analyzer_reads_the_cluster_only_when_asked() -> None:
    """Default: a read-only ClusterRole (pods, pods/log, workload objects; get/list only) and a token; with
    analyzer.readCluster=false no role, no token, and the service is told not to read."""
    objects = render()
    (rules,) = [r["rules"] for n, r in by_kind(objects, "ClusterRole").items() if n == "opsbus-analyzer-opsbus"]
    assert {v for rule in rules for v in rule["verbs"]} == {"get", "list"}
    assert {res for rule in rules for res in rule["resources"]} == {
        "pods",
        "pods/log",
        "deployments",
        "statefulsets",
        "daemonsets",
        "replicasets",
    }
    assert _pod_specs(objects)["Deployment/opsbus-analyzer"]["automountServiceAccountToken"] is True
    off = render(sets=("analyzer.readCluster=false",))
    assert "opsbus-analyzer-opsbus" not in by_kind(off, "ClusterRole")
    spec = _pod_specs(off)["Deployment/opsbus-analyzer"]
    assert spec["automountServiceAccountToken"] is False
    env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
    assert env["OPSBUS_ANALYZER__READ_CLUSTER"] == "false"


def test_the_gateways_sso_settings_reach_it(monkeypatch: pytest.MonkeyPatch) -> None:
    (container,) = by_kind(render(PRODUCTION), "Deployment")["opsbus-gateway"]["spec"]["template"]["spec"]["containers"]
    secret = next(e for e in container["env"] if e["name"] == "OPSBUS_GATEWAY__OIDC__CLIENT_SECRET")
    assert secret["valueFrom"]["secretKeyRef"] == {"name": "opsbus-oidc", "key": "client-secret"}
    for name in [n for n in os.environ if n.startswith("OPSBUS_")]:
        monkeypatch.delenv(name)
    for name, value in _env_of(container).items():
        monkeypatch.setenv(name, value)
    module_name, _, class_name = SETTINGS["gateway"].partition(":")
    oidc = load(getattr(importlib.import_module(module_name), class_name)).gateway.oidc
    assert oidc.sign_in_enabled and oidc.client_id == "opsbus-console"
    assert oidc.client_secret is not None and oidc.client_secret.get_secret_value() == "from-client-secret"
    assert oidc.scopes == ["openid", "email", "opsbus"] and oidc.acr_values


def test_the_gateways_feishu_settings_reach_it(monkeypatch: pytest.MonkeyPatch) -> None:
    (container,) = by_kind(render(PRODUCTION), "Deployment")["opsbus-gateway"]["spec"]["template"]["spec"]["containers"]
    refs = {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in container["env"]
        if "FEISHU" in e["name"] and "valueFrom" in e
    }
    assert refs == {
        "OPSBUS_GATEWAY__FEISHU__VERIFICATION_TOKEN": {"name": "opsbus-feishu", "key": "verification-token"},
        "OPSBUS_GATEWAY__FEISHU__ENCRYPT_KEY": {"name": "opsbus-feishu", "key": "encrypt-key", "optional": True},
    }
    for name in [n for n in os.environ if n.startswith("OPSBUS_")]:
        monkeypatch.delenv(name)
    for name, value in _env_of(container).items():
        monkeypatch.setenv(name, value)
    module_name, _, class_name = SETTINGS["gateway"].partition(":")
    feishu = load(getattr(importlib.import_module(module_name), class_name)).gateway.feishu
    assert feishu.verification_token is not None
    assert feishu.verification_token.get_secret_value() == "from-verification-token"
    assert feishu.encrypt_key is not None and feishu.encrypt_key.get_secret_value() == "from-encrypt-key"
    alice = feishu.approvers["ou_7d8a6e6df7621556ce0d21922b676706"]
    assert (alice.identity, alice.role, alice.namespaces) == ("alice@example.com", "operator", ["payments"])


def test_the_gateways_slack_settings_reach_it(monkeypatch: pytest.MonkeyPatch) -> None:
    (container,) = by_kind(render(PRODUCTION), "Deployment")["opsbus-gateway"]["spec"]["template"]["spec"]["containers"]
    secret = next(e for e in container["env"] if e["name"] == "OPSBUS_GATEWAY__SLACK__SIGNING_SECRET")
    assert secret["valueFrom"]["secretKeyRef"] == {"name": "opsbus-slack", "key": "signing-secret"}
    for name in [n for n in os.environ if n.startswith("OPSBUS_")]:
        monkeypatch.delenv(name)
    for name, value in _env_of(container).items():
        monkeypatch.setenv(name, value)
    module_name, _, class_name = SETTINGS["gateway"].partition(":")
    slack = load(getattr(importlib.import_module(module_name), class_name)).gateway.slack
    assert slack.signing_secret is not None and slack.signing_secret.get_secret_value() == "from-signing-secret"
    alice = slack.approvers["U024BE7LH"]
    assert (alice.identity, alice.role, alice.namespaces, alice.clusters) == (
        "alice@example.com",
        "operator",
        ["payments"],
        ["*"],
    )
