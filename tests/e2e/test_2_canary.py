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
        # in seconds, by the restarts watch while the canary scales up; the progress deadline (600 s) is far later
        failed = await platform.wait_event("deploy.failed", timeout=120, correlation_id=accepted["correlation_id"])
    except BaseException:
        print(logs_of(platform.stack, "deployer", "gateway"))
        raise
    assert failed.data["reason"] == "analysis_failed", failed.data
    (result,) = failed.data["analysis"]
    assert result["metric"] == "restarts" and result["outcome"] == "failed", result
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

    # the notifier told people: the failure and the rollback reached the webhook, each delivery on the bus
    chain = accepted["correlation_id"]

    async def notified() -> list[dict[str, Any]] | None:
        await platform.refresh()
        delivered = {i for e in platform.of("notify.delivered") for i in e.data["event_ids"]}
        bodies = [
            b
            for b in platform.webhook.received()
            if any(a.get("eventId") in {failed.id, rolled.id} for a in b.get("alerts", []))
        ]
        return bodies if bodies and {failed.id, rolled.id} <= delivered else None

    bodies = await platform.until(
        "the failure and the rollback notified", notified, 90, lambda: str(platform.webhook.received()[-3:])
    )
    keys = [(b.get("notificationId"), b.get("sequence")) for b in bodies]
    assert len(keys) == len(set(keys)), f"a notification was delivered twice: {keys}"
    told = {a.get("eventType") for b in bodies for a in b.get("alerts", [])}
    assert {"deploy.failed", "deploy.rolledback"} <= {
        str(t).removeprefix("io.opsbus.").removesuffix(".v1") for t in told
    }, told

    # the rollout's status is served by the gateway
    status = await platform.api(f"/v1/deployments/{request_id}")
    assert status["state"] == "rolledback", status
    assert status["rollout"]["reason"] == "analysis_failed", status

    # the audit trail, under the request's correlation id: who asked (gateway), what the deployer did
    audit = await platform.api("/v1/audit", correlation_id=chain, limit=100)
    actions = {(row["service"], row["action"]) for row in audit["items"]}
    assert {
        ("gateway", "deploy.request"),
        ("deployer", "deploy.canary.create"),
        ("deployer", "deploy.canary.abort"),
    } <= actions, actions
    assert all(row["target"]["name"] in {app, f"{app}-canary"} for row in audit["items"]), audit

    # the healer left the canary's crashing pods to the deployer (the crashloop policy matches them): it acted on
    # none. Each canary alert the watcher fired before the canary was gone is skipped by the rollout guard, or, when
    # the healer plans only after the deployer removed the canary, by the alert having resolved or the pod being gone
    # (the guard itself is pinned by tests/cluster/test_healer_remediation.py)
    await platform.refresh()
    canary_alerts = [e for e in platform.of("alert.fired") if str(e.data["labels"].get("pod", "")).startswith(app)]
    guards: list[str] = []
    for fired in canary_alerts:

        async def left_alone(alert_id: str = fired.id) -> list[dict[str, Any]] | None:
            rows = (await platform.api("/v1/audit", correlation_id=alert_id, limit=100))["items"]
            # skipped by a guard, or joined the canary's incident (whose lead was skipped): no action either way
            decided = [
                r for r in rows if r["outcome"] == "skipped" and r["action"] in {"recovery.plan", "recovery.group"}
            ]
            return decided or None

        (row, *_) = await platform.until(f"the healer's decision on {fired.id}", left_alone, 120, lambda: "none")
        if row["action"] == "recovery.plan":
            assert row["details"]["guard"] in {"rollout", "alert_firing", "target"}, row
            guards.append(row["details"]["guard"])
        else:
            assert row["details"]["incident"], row
            guards.append("joined an incident")
    acted = [
        e
        for e in [*platform.of("recovery.started"), *platform.of("recovery.planned")]
        if str(e.data["action"]["target"]["name"]).startswith(app)
    ]
    assert not acted, [e.data for e in acted]
    print(f"\nthe healer left {len(canary_alerts)} canary alert(s) to the deployer, guards {guards}")

    # one trace: gateway request -> deployer -> notifier
    await platform.refresh()
    requested = await platform.wait_event("deploy.requested", timeout=10, correlation_id=chain)
    trace_id = trace_id_of(requested)
    for event in [*platform.in_chain(chain), *platform.of("notify.delivered")]:
        if event.correlationid == chain or set(event.data.get("event_ids", ())) & {failed.id, rolled.id}:
            assert trace_id_of(event) == trace_id, f"{event.type} {event.id} left the trace"
    await platform.wait_trace(trace_id, {"opsbus-gateway", "opsbus-deployer", "opsbus-notifier"}, timeout=60)
