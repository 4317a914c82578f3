"""The whole platform for the e2e tier: one `Stack` (nats-server, PostgreSQL, Jaeger, seven service processes) per
session against the sandbox cluster, in a namespace of its own, plus a local webhook receiver for notifications and
stand-ins of DingTalk, Alibaba Cloud SMS and Slack (tests/e2e/providers.py) for scenario 9, and a real OIDC provider
(tests/integration/oidc_provider.py) the console's journey signs in through.

The sandbox is shared with other test tiers: it is reused when up, brought up when not and taken down only if this
session started it (`tests.cluster.conftest.sandbox`). The watcher watches only this session's namespace, and the
healer's node policy matches only nodes named `e2e-*`, so the platform under test never acts on anyone else's objects.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from kubernetes import client

from opsbus.demo.seeding import WebhookReceiver
from opsbus.demo.stack import Stack, StackOptions
from tests.cluster.conftest import SANDBOX, SandboxHandle, api_client, sandbox
from tests.cluster.kube import Cluster, wait_until
from tests.e2e.platform import Platform
from tests.e2e.providers import ProviderThread, StandIns
from tests.integration.chat_providers import receiver as chat_receiver
from tests.integration.oidc_provider import CALLBACK, free_port, gateway_oidc_env, installed, oidc_provider
from tests.integration.slack_clicks import SIGNING_SECRET
from tests.integration.sms_providers import receiver as sms_receiver

__all__ = ["api_client", "sandbox"]  # session fixtures reused from the cluster tier

ALERTMANAGER_TOKEN = "e2e-alertmanager-token"  # a throwaway credential of the test platform

POLICIES = """
policies:
  - name: diagnosed-rollout
    # scenario 8: a bad release crash-loops; the analyzer's top cause is the rollout, so the healer rolls back
    match: {alertname: [KubePodCrashLooping], namespaces: {include: ["e2e-*"]}, labels: ['pod=~"badrelease-.*"']}
    cooldown: 0s
    max_attempts: 3
    ladder:
      - action: rollback
        when: {cause: rollout, min_confidence: 0.5, without_diagnosis: changed, wait: 20s}
        verify: deploy_succeeded
        timeout: 120s
      - {action: rollout_restart, when: unchanged, verify: alert_resolved, timeout: 60s}
  - name: approved-crashloop
    # scenario 9: a crash whose pod deletion waits for a person, who approves it with a Slack button
    match: {alertname: [KubePodCrashLooping], namespaces: {include: ["e2e-*"]}, labels: ['pod=~"approval-.*"']}
    cooldown: 0s
    approval: {required_for: [delete_pod], expires_after: 10m}
    ladder:
      - {action: delete_pod, params: {grace_period_seconds: 0}, verify: alert_resolved, timeout: 60s}
  - name: crashloop
    # scenario 2's crashing canary matches too: the healer must leave a rollout's canary to the deployer
    match: {alertname: [KubePodCrashLooping], namespaces: {include: ["e2e-*"]}}
    cooldown: 0s
    max_attempts: 6
    ladder:
      - {action: delete_pod, params: {grace_period_seconds: 0}, verify: alert_resolved, timeout: 60s}
      - {action: rollout_restart, verify: alert_resolved, timeout: 60s}
      - {action: notify_only, timeout: 1s}
  - name: node
    match: {alertname: [KubeNodeNotReady], labels: ['node=~"e2e-.*"']}
    cooldown: 0s
    blast_radius: {max_nodes: 1}
    approval: {required_for: [drain_node], expires_after: 10m}
    ladder:
      # cordon, and if the node is not back within 10 s, drain it (a human approves)
      - {action: cordon_node, verify: alert_resolved, timeout: 10s}
      - {action: drain_node, params: {grace_period_seconds: 0}, verify: node_drained, timeout: 60s}
"""

NOTIFIER = """
route:
  receiver: e2e
  group_by: [alertname, namespace, pod, node, workload]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: e2e
    webhook_configs:
      - url: {url}
"""
SMS_TO = "+8613800138000"  # scenario 9's on-call phone
SLACK_APPROVER = "U0ONCALL"  # scenario 9's on-call engineer in Slack, mapped to an opsbus operator


def notifier_config(webhook_url: str, stand_ins: StandIns) -> str:
    """The routing tree with scenario 9's receivers, at the stand-ins' addresses (a page is told once: no resolve)."""
    config = yaml.safe_load(NOTIFIER.format(url=webhook_url))
    page = chat_receiver("dingtalk", stand_ins.chat, send_resolved=False)
    page |= sms_receiver("aliyun_sms", stand_ins.sms, [SMS_TO], send_resolved=False)
    slack = {"slack_configs": [{"url": stand_ins.slack.webhook}]}
    config["receivers"] += [{"name": "page", **page}, {"name": "slack", **slack}]
    # scenario 9's crash pages by DingTalk and SMS; its step waiting for approval goes to Slack, with buttons
    config["route"]["routes"] = [
        {"matchers": ['pod=~"approval-.*"', 'event_type="alert"'], "receiver": "page"},
        {"matchers": ['pod=~"approval-.*"', 'event_type="recovery.planned"'], "receiver": "slack"},
    ]
    return str(yaml.safe_dump(config, allow_unicode=True))


def slack_env(namespace: str, stand_ins: StandIns) -> dict[str, str]:
    """The gateway's Slack interactivity: the test app's signing secret, the on-call engineer's mapping."""
    approver = {"identity": "oncall@example.com", "role": "operator", "namespaces": [namespace]}
    return {
        "OPSBUS_GATEWAY__SLACK__SIGNING_SECRET": SIGNING_SECRET,
        "OPSBUS_GATEWAY__SLACK__APPROVERS": json.dumps({SLACK_APPROVER: approver}),
        "OPSBUS_GATEWAY__SLACK__RESPONSE_URL_PREFIX": stand_ins.slack.actions,
    }


# the console journey's on-call operator at the identity provider: operator of every namespace and cluster
SSO_USERS = {
    "oncall": {
        "email": "oncall@example.com",
        "opsbus_role": "operator",
        "opsbus_namespaces": ["*"],
        "opsbus_clusters": ["*"],
    }
}


@dataclass(frozen=True)
class IdentityProvider:
    issuer: str
    gateway_port: int  # the port its registered redirect URI names


@pytest.fixture(scope="session")
def identity_provider() -> Iterator[IdentityProvider | None]:
    """The console's SSO provider (oidc-provider) on another site than the gateway (`localhost`; the gateway is on
    127.0.0.1), as in production; None when `make setup` did not install it (the console journey then skips)."""
    if not installed():
        yield None
        return
    port = free_port()
    with oidc_provider(f"http://127.0.0.1:{port}{CALLBACK}", host="localhost", users=SSO_USERS) as issuer:
        yield IdentityProvider(issuer=issuer, gateway_port=port)


@pytest.fixture(scope="session")
def e2e_namespace(sandbox: SandboxHandle, api_client: client.ApiClient) -> Iterator[str]:
    core = client.CoreV1Api(api_client)
    namespace = f"e2e-{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    try:
        yield namespace
    finally:
        core.delete_namespace(namespace, propagation_policy="Background")


@pytest.fixture(scope="session")
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture(scope="session")
def stand_ins() -> Iterator[StandIns]:
    providers = ProviderThread()
    try:
        yield providers.start()
    finally:
        providers.stop()


@pytest.fixture(scope="session")
def stack(
    sandbox: SandboxHandle,
    e2e_namespace: str,
    webhook: WebhookReceiver,
    stand_ins: StandIns,
    identity_provider: IdentityProvider | None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    config_dir = tmp_path_factory.mktemp("e2e-config")
    policies = config_dir / "policies.yaml"
    policies.write_text(POLICIES)
    notifier = config_dir / "notifier.yaml"
    notifier.write_text(notifier_config(webhook.url, stand_ins))
    sso = gateway_oidc_env(identity_provider.issuer) if identity_provider else {}
    platform = Stack(
        StackOptions(
            kubeconfig=sandbox.kubeconfig,
            namespaces=[e2e_namespace],
            notifier_config=notifier,
            healer_policy=policies,
            gateway_port=identity_provider.gateway_port if identity_provider else 0,
            service_env={
                "watcher": {
                    "OPSBUS_WATCHER__THRESHOLDS__RESOLVE_AFTER_SECONDS": "2",
                    "OPSBUS_WATCHER__LOG_TIMEOUT_SECONDS": "1",
                    # scenario 6's flapping pod resolves after 20 s of calm instead of the default 120 s
                    "OPSBUS_WATCHER__RESOLUTION__RULES": '{"KubePodImagePullFailing": {"flap_stable_seconds": 20}}',
                },
                "deployer": {"OPSBUS_DEPLOYER__TICK_SECONDS": "0.5"},
                "healer": {"OPSBUS_HEALER__VERIFY_POLL_SECONDS": "0.25"},
                "gateway": {
                    "OPSBUS_GATEWAY__ALERTMANAGER__BEARER_TOKEN": ALERTMANAGER_TOKEN,
                    **slack_env(e2e_namespace, stand_ins),
                    **sso,
                },
            },
        )
    )
    platform.start()
    try:
        yield platform
    except BaseException:
        raise
    finally:
        platform.stop()


@pytest.fixture(scope="session")
def admin_key(stack: Stack) -> str:
    return stack.admin_key


@pytest.fixture
def kube(sandbox: SandboxHandle, api_client: client.ApiClient, e2e_namespace: str) -> Cluster:
    cluster = Cluster(
        api=api_client,
        namespace=e2e_namespace,
        kubeconfig=sandbox.kubeconfig,
        kubectl_path=sandbox.kubectl,
        sandbox_script=SANDBOX,
    )
    wait_until(f"the default service account in {e2e_namespace}", cluster.has_default_service_account, timeout=60)
    return cluster


@pytest.fixture
async def platform(
    stack: Stack, admin_key: str, webhook: WebhookReceiver, kube: Cluster, e2e_namespace: str
) -> AsyncIterator[Platform]:
    async with httpx.AsyncClient(
        base_url=stack.gateway_url, headers={"Authorization": f"Bearer {admin_key}"}, timeout=10.0
    ) as gateway:
        view = Platform(stack=stack, gateway=gateway, webhook=webhook, kube=kube, namespace=e2e_namespace)
        await view.connect()
        try:
            yield view
        finally:
            await view.close()
            await asyncio.sleep(0)


def logs_of(stack: Stack, *names: str) -> str:
    """The last lines of each service's log, for a failure message."""
    return "\n".join(f"--- {name}\n{stack.services[name].tail(2000)}" for name in names if name in stack.services)


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]
