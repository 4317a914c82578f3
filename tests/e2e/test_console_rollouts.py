"""Console journeys (issue 22) in Debian's Chromium against real services on the sandbox: the real deployer,
optimizer and gateway (each through its own wiring, in-process) on real NATS JetStream and PostgreSQL, driving
the sandbox apiserver.

- A canary whose analysis fails (success rate 0.42 against >= 0.95, from a Prometheus stand-in) aborts on
  screen: the rollout page shows it failed, the analysis run's measurements against the threshold (chart and
  text), and the canary Deployment is gone from the sandbox with the stable one untouched.
- A recommendation (an over-provisioned Deployment, eight days of idle usage) is applied from the
  recommendations page: the page says it was applied and the Deployment's requests changed in the sandbox.

Both take the screenshots the docs show (docs/img/console-rollout.png, docs/img/console-recommendations.png) and
run axe-core in English and Chinese on the pages they visit.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import BrowserContext, Page, expect

from opsbus.common.bus import Bus
from opsbus.common.events.payloads.deploy import CanarySpec, DeployFailed, DeployStarted, Strategy
from opsbus.deployer.service import Deployer
from opsbus.optimizer.domain.planning import Action
from opsbus.optimizer.testing import FakePrometheus as UsagePrometheus
from tests.browser.harness import browser, no_serious_violations, require_console, sign_in
from tests.cluster.conftest import api_client, cluster, sandbox
from tests.cluster.kube import Cluster
from tests.cluster.test_deployer_canary import answer, metric
from tests.cluster.test_deployer_rollouts import (
    DeployEvents,
    FakePrometheus,
    client_bus,
    deploy_events,
    deployer,
    prometheus,
    request_event,
    rolled_out,
    settings,
)
from tests.cluster.test_optimizer_rightsizing import (
    Start,
    create_deployment,
    idle,
    requests_of,
    running,
    start_optimizer,
)
from tests.integration.gateway_stack import GatewayStack, gateway_stack

pytestmark = [pytest.mark.e2e, pytest.mark.cluster, pytest.mark.browser, pytest.mark.integration]
__all__ = [
    "api_client",
    "browser",
    "client_bus",
    "cluster",
    "deploy_events",
    "deployer",
    "prometheus",
    "sandbox",
    "settings",
]
__all__ += ["start_optimizer"]

IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
expect.set_options(timeout=30_000)  # the machine running CI is shared: a page may take seconds


@pytest.fixture
async def stack(database_url: str, nats_url: str) -> AsyncIterator[GatewayStack]:
    require_console()
    async for s in gateway_stack(database_url, nats_url):
        await s.start(key_cache_seconds=0, console={"insecure_loopback_cookie": True})
        yield s


async def in_chinese(page: Page, where: str) -> None:
    await page.get_by_label("Language").select_option("zh-CN")
    await expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    await no_serious_violations(page, f"{where} (zh-CN)")
    await page.get_by_label("语言").select_option("en")


async def test_a_canary_failing_its_analysis_aborts_on_screen_with_the_chart_showing_why(
    cluster: Cluster,
    deployer: Deployer,
    client_bus: Bus,
    deploy_events: DeployEvents,
    prometheus: FakePrometheus,
    stack: GatewayStack,
    browser: BrowserContext,
) -> None:
    cluster.create_deployment("api", replicas=2, image="registry.example/api:1")
    before = await rolled_out(cluster, "api")
    prometheus.answer = answer(0.42)
    spec = CanarySpec.model_validate({"steps": [{"weight": 50, "analysis": {"metrics": [metric(0.95)]}}]})
    request = request_event(
        cluster, "api", strategy=Strategy.CANARY, images={"app": "registry.example/api:2"}, canary=spec, reason="CHG-42"
    )
    admin = await stack.key("admin")
    page = await browser.new_page()
    await sign_in(page, stack.url, admin)
    await client_bus.publisher.publish(request)
    await deploy_events.wait(request.id, DeployStarted, timeout=60)

    await page.goto(f"{stack.url}/deployments/{request.id}")
    await expect(page.get_by_role("heading", name=f"Rollout of Deployment/{cluster.namespace}/api")).to_be_visible()
    await expect(page.get_by_text("50% of replicas")).to_be_visible()  # the step, while it runs
    await expect(page.get_by_test_id("rollout-state")).to_have_text("Rolled back", timeout=90_000)
    failed = (await deploy_events.wait(request.id, DeployFailed, timeout=30)).payload_as(DeployFailed)
    assert failed.failed_step == 1

    run = page.locator('[data-metric="success-rate"]')
    await expect(run).to_have_attribute("data-outcome", "failed")
    await expect(run.get_by_text("success-rate >= 0.95")).to_be_visible()
    await expect(run.get_by_text("#1: 0.42 (failed)")).to_be_visible()
    chart = run.get_by_role("img", name="Measurements of success-rate against the threshold success-rate >= 0.95")
    await expect(chart.locator("svg")).to_be_visible()  # drawn by ECharts, loaded on this page only
    await expect(page.get_by_test_id("rollout-message")).to_contain_text("success-rate")
    await expect(page.get_by_role("button", name="Retry")).to_be_visible()

    # the sandbox: the canary is gone, the stable Deployment was never touched
    names = await asyncio.to_thread(
        lambda: {
            d.metadata.name for d in cluster.apps.list_namespaced_deployment(cluster.namespace).items if d.metadata
        }
    )
    assert names == {"api"}
    after = cluster.deployment("api")
    assert after.metadata.generation == before.metadata.generation
    assert after.spec.template.spec.containers[0].image == "registry.example/api:1"

    await page.screenshot(path=str(IMG / "console-rollout.png"), full_page=True)
    await no_serious_violations(page, "rollout page")
    await in_chinese(page, "rollout page")
    await page.goto(f"{stack.url}/deployments")
    await expect(page.get_by_role("link", name=f"Deployment/{cluster.namespace}/api")).to_be_visible()
    await no_serious_violations(page, "deployments page")


async def test_apply_a_recommendation_and_the_requests_change_in_the_sandbox(
    cluster: Cluster, start_optimizer: Start, stack: GatewayStack, browser: BrowserContext
) -> None:
    async with AsyncExitStack() as exits:
        create_deployment(cluster, "web", 2)
        series = await running(cluster, "web", 2)
        before, _ = requests_of(cluster, "web")
        prom = await exits.enter_async_context(UsagePrometheus(idle, lambda: series).running())
        optimizer = await start_optimizer(cluster.namespace, prom.url, "recommend")
        assert [p.action for p in (await optimizer.cycle()).plans] == [Action.RECOMMEND]

        admin = await stack.key("admin")
        page = await browser.new_page()
        await sign_in(page, stack.url, admin)
        await page.goto(f"{stack.url}/recommendations?namespace={cluster.namespace}")
        card = page.locator("li.recommendation").first
        await expect(card).to_contain_text(f"{cluster.namespace}/web")
        await expect(card).to_contain_text("Saves")
        await expect(page.get_by_test_id("total-saved")).not_to_have_text("$0.00")
        await card.get_by_role("button", name="Usage against requests and limits").click()
        charts = card.get_by_role("img", name="Usage distribution of CPU in container app", exact=False)
        await expect(charts.first.locator("svg")).to_be_visible()
        await expect(card.get_by_text("request 1.00 cores")).to_be_visible()
        await page.screenshot(path=str(IMG / "console-recommendations.png"), full_page=True)
        await no_serious_violations(page, "recommendations page")
        await in_chinese(page, "recommendations page")

        await card.get_by_label("Comment (for the audit trail)").fill("from the console")
        await card.get_by_role("button", name="Apply").click()
        await expect(card.get_by_test_id("apply-result")).to_contain_text("Applied")

        after: dict[str, Any] = {}
        for _ in range(50):
            after, _ = requests_of(cluster, "web")
            if after != before:
                break
            await asyncio.sleep(0.2)
        assert after != before and after["cpu"] != before["cpu"], (before, after)
