"""Console journey (issue 22) in Debian's Chromium against the real gateway and the real deployer (its own wiring,
in-process) on real NATS JetStream and PostgreSQL, driving the sandbox apiserver: an operator requests a canary
from the deployments page's form (one step at 50% that waits for promotion), follows it to the rollout page,
sees it paused, clicks Promote, and the sandbox's Deployment runs the new image with the canary gone. A rolling
update requested through the API then changes the pod template beyond its image (env, resources, args): the
workload's history shows what changed between the two revisions the deployer recorded, strategy included.

The gateway publishes the request for its own cluster ("prod"), so the deployer here serves that cluster."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from playwright.async_api import BrowserContext, expect

from opsbus.common.settings import DatabaseSettings, NatsSettings
from opsbus.common.store import upgrade
from opsbus.deployer.service import Deployer
from opsbus.deployer.settings import DeployerOptions, DeployerSettings
from opsbus.deployer.store import MIGRATIONS, SCHEMA
from tests.browser.harness import both_languages, browser, no_serious_violations, require_console, sign_in
from tests.cluster.conftest import api_client, cluster, sandbox
from tests.cluster.kube import Cluster
from tests.cluster.test_deployer_rollouts import FakePrometheus, deployer, image_of, prometheus, rolled_out
from tests.integration.gateway_stack import GatewayStack, gateway_stack

pytestmark = [pytest.mark.e2e, pytest.mark.cluster, pytest.mark.browser, pytest.mark.integration]
__all__ = ["api_client", "browser", "cluster", "deployer", "prometheus", "sandbox"]

expect.set_options(timeout=30_000)  # the machine running CI is shared: a page may take seconds


@pytest.fixture
async def settings(cluster: Cluster, nats_url: str, database_url: str, prometheus: FakePrometheus) -> DeployerSettings:
    """The deployer of the gateway's cluster: the form's request names no cluster, so it is the gateway's."""
    settings = DeployerSettings(
        cluster="prod",
        nats=NatsSettings(url=nats_url),
        database=DatabaseSettings(url=database_url),
        deployer=DeployerOptions(kubeconfig=str(cluster.kubeconfig), tick_seconds=0.5, prometheus_url=prometheus.url),
        shutdown_grace_seconds=5,
    )
    await upgrade(settings.database, MIGRATIONS, SCHEMA)
    return settings


@pytest.fixture
async def stack(database_url: str, nats_url: str) -> AsyncIterator[GatewayStack]:
    require_console()
    async for s in gateway_stack(database_url, nats_url):
        await s.start(key_cache_seconds=0, console={"insecure_loopback_cookie": True})
        yield s


async def test_request_a_canary_from_the_form_promote_it_when_paused_and_the_sandbox_runs_it(
    cluster: Cluster, deployer: Deployer, stack: GatewayStack, browser: BrowserContext
) -> None:
    cluster.create_deployment("web", replicas=2, image="registry.example/web:1")
    await rolled_out(cluster, "web")
    page = await browser.new_page()
    token = await stack.key("operator", namespaces=[cluster.namespace])
    await sign_in(page, stack.url, token)
    await page.get_by_role("link", name="Deployments").click()

    form = page.get_by_role("form", name="Request a deployment")
    await form.get_by_label("Namespace").fill(cluster.namespace)
    await form.get_by_label("Deployment").fill("web")
    await form.get_by_label("Image").fill("registry.example/web:2")
    await form.get_by_role("button", name="Remove step 1").click()  # one step: 50%, then wait for promotion
    await expect(form.get_by_label("Weight (%) of step 1")).to_have_value("50")
    await expect(form.get_by_label("Wait for promotion after step 1")).to_be_checked()
    await form.get_by_label("Reason (change ticket)").fill("CHG-7")
    await form.get_by_role("button", name="Request").click()
    accepted = page.get_by_role("status").filter(has_text="Requested: ")
    await expect(accepted).to_be_visible()
    await no_serious_violations(page, "deployments page, request accepted")
    await accepted.get_by_role("link", name="follow the rollout").click()

    await expect(page.get_by_role("heading", name=f"Rollout of Deployment/{cluster.namespace}/web")).to_be_visible()
    await expect(page.get_by_text("Why requested: CHG-7")).to_be_visible()
    state = page.get_by_test_id("rollout-state")
    await expect(state).to_have_text("Running", timeout=60_000)
    promote = page.get_by_role("button", name="Promote")
    await expect(promote).to_be_enabled(timeout=60_000)  # enabled only once the canary is paused
    canary = await asyncio.to_thread(cluster.deployment, "web-canary")
    assert canary.spec.template.spec.containers[0].image == "registry.example/web:2"
    assert image_of(cluster, "web") == "registry.example/web:1"  # the stable one untouched while paused

    await page.get_by_label("Reason (for the audit trail)").fill("canary looks healthy")
    await promote.click()
    await expect(state).to_have_text("Succeeded", timeout=90_000)
    assert image_of(cluster, "web") == "registry.example/web:2"
    names = await asyncio.to_thread(
        lambda: {
            d.metadata.name for d in cluster.apps.list_namespaced_deployment(cluster.namespace).items if d.metadata
        }
    )
    assert names == {"web"}  # the canary is gone
    history = page.get_by_role("region", name=f"History of Deployment/{cluster.namespace}/web")
    await expect(history).to_contain_text("app: none → registry.example/web:2")  # the first revision recorded
    await both_languages(page, "rollout page, promoted")

    # a rolling update that changes the pod template beyond its image, requested through the API (as the CLI does):
    # the history says what changed against the canary's revision, from what the deployer recorded
    template = {
        "metadata": {"labels": {"app": "web"}},
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": "registry.example/web:2",
                    "env": [{"name": "LOG_LEVEL", "value": "debug"}],
                    "resources": {"requests": {"cpu": "250m"}},
                    "args": ["--verbose"],
                }
            ]
        },
    }
    body = {
        "workload": {"kind": "Deployment", "namespace": cluster.namespace, "name": "web"},
        "strategy": "rolling",
        "manifest": {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {"template": template},
        },
        "reason": "CHG-8",
    }
    async with stack.client(token) as c:
        response = await c.post("/v1/deployments", json=body)
    assert response.status_code == 202, response.text
    await page.goto(f"{stack.url}/deployments/{response.json()['request_id']}")
    await expect(state).to_have_text("Succeeded", timeout=90_000)
    newest = history.locator("ol.revisions > li").first
    for line in (
        "strategy: canary → rolling",
        "app: env LOG_LEVEL: none → debug",
        "app: requests cpu: none → 250m",
        "app: args: none → --verbose",
    ):
        await expect(newest.get_by_text(line, exact=True)).to_be_visible()
    await expect(newest.locator('[data-field="image"]')).to_have_count(0)  # the image did not change
    await both_languages(page, "rollout page, history")
