"""Scenario 2: a canary requested through the gateway whose new version crashes -> the deployer's analysis (restarts
of the new pods, read from the cluster) fails -> automatic rollback -> the notifier delivers it; ONE trace from the
gateway request through the deployer to the notification."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.cluster.kube import wait_until
from tests.e2e.conftest import logs_of
from tests.e2e.platform import Platform, trace_id_of

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

RESTARTS = {
    "name": "restarts",
    "provider": {"kind": "kubernetes", "check": "restarts"},
    "success_condition": {"operator": "<", "threshold": 1},
    "interval_seconds": 2,
    "count": 3,
}


def crashing_version(deployment: Any, image: str) -> dict[str, Any]:
    """The Deployment's manifest with a new image whose pods crash (the sandbox's crashloop stage label)."""
    template = deployment.spec.template
    labels = {**(template.metadata.labels or {}), "opsbus.io/chaos": "crashloop"}
    container = {"name": template.spec.containers[0].name, "image": image}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": deployment.metadata.name, "namespace": deployment.metadata.namespace},
        "spec": {
            "replicas": deployment.spec.replicas,
            "selector": {"matchLabels": dict(deployment.spec.selector.match_labels)},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
        },
    }


@pytest.mark.xfail(
    reason="observed 2026-11-22 and again 2026-11-23: deploy.started and deploy.progressed, the canary's pods "
    "crash-loop, but no deploy.failed within 150 s in the multi-process platform, although the same crashing canary "
    "fails its restarts check in seconds with the deployer in-process (tests/cluster/test_deployer_checks.py); "
    "not diagnosed yet. Strict: the day it passes, remove this marker",
    strict=True,
)
async def test_crashing_canary_fails_analysis_is_rolled_back_and_notified_in_one_trace(platform: Platform) -> None:
    kube = platform.kube
    app = "shop"
    kube.create_deployment(app, replicas=2, image="registry.example/shop:1")
    await asyncio.to_thread(wait_until, f"{app} running", lambda: kube.running_pods(app, 2), 120)
    before = kube.deployment(app)

    answer = await platform.gateway.post(
        "/v1/deployments",
        json={
            "workload": {"kind": "Deployment", "namespace": platform.namespace, "name": app},
            "strategy": "canary",
            "manifest": crashing_version(before, "registry.example/shop:2"),
            "canary": {"steps": [{"weight": 50, "analysis": {"metrics": [RESTARTS]}}]},
            "reason": "e2e: a release that crashes",
        },
    )
    assert answer.status_code in {200, 201, 202}, answer.text
    accepted = answer.json()
    request_id = accepted["request_id"]

    try:
        failed = await platform.wait_event("deploy.failed", timeout=150, correlation_id=accepted["correlation_id"])
    except BaseException:
        print(logs_of(platform.stack, "deployer", "gateway"))
        raise
    assert failed.data["reason"] == "analysis_failed", failed.data
    rolled = await platform.wait_event("deploy.rolledback", timeout=60, correlation_id=accepted["correlation_id"])
    assert rolled.data["automatic"] is True

    # the stable version was never touched and the canary is gone
    after = kube.deployment(app)
    assert after.spec.template.spec.containers[0].image == "registry.example/shop:1"
    assert after.metadata.generation == before.metadata.generation
    await asyncio.to_thread(
        wait_until,
        "the canary removed",
        lambda: (
            f"{app}-canary"
            not in {d.metadata.name for d in kube.apps.list_namespaced_deployment(kube.namespace).items if d.metadata}
        ),
        60,
    )

    # the notifier told people, and the rollout's status is served by the gateway
    async def notified() -> list[dict[str, Any]] | None:
        bodies = [
            b
            for b in platform.webhook.received()
            if any("deploy." in str(a.get("eventType", "")) for a in b.get("alerts", [])) and app in str(b)
        ]
        return bodies or None

    await platform.until("a deploy notification", notified, 60, lambda: str(platform.webhook.received()[-3:]))
    status = await platform.api(f"/v1/deployments/{request_id}")
    assert status["state"] not in {"requested", "running"}, status

    # one trace: gateway request -> deployer -> notifier
    requested = (
        next(e for e in platform.events if e.id == request_id)
        if any(e.id == request_id for e in platform.events)
        else await platform.wait_event("deploy.requested", timeout=10, correlation_id=accepted["correlation_id"])
    )
    trace_id = trace_id_of(requested)
    assert trace_id_of(failed) == trace_id and trace_id_of(rolled) == trace_id
    await platform.wait_trace(trace_id, {"opsbus-gateway", "opsbus-deployer", "opsbus-notifier"}, timeout=60)
