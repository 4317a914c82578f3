"""Scenario 4: Alertmanager's webhook (payload version 4, exactly as Alertmanager sends it) posted to the gateway is
handled like a native alert: alert.fired on the bus, the healer's ladder acts on the pod it names, the resolution
posted later resolves it, the notifier delivers both and the incident API shows its Alertmanager origin."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.cluster.kube import wait_until
from tests.e2e.conftest import ALERTMANAGER_TOKEN
from tests.e2e.platform import Platform

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]


def webhook_payload(status: str, namespace: str, pod: str, starts_at: str, ends_at: str) -> dict[str, Any]:
    labels = {
        "alertname": "KubePodCrashLooping",
        "namespace": namespace,
        "pod": pod,
        "container": "app",
        "severity": "warning",
        "job": "kube-state-metrics",
    }
    return {
        "version": "4",
        "groupKey": '{}:{alertname="KubePodCrashLooping"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "opsbus",
        "groupLabels": {"alertname": "KubePodCrashLooping"},
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": [
            {
                "status": status,
                "labels": labels,
                "annotations": {
                    "summary": f"Pod {namespace}/{pod} is crash looping.",
                    "description": "Pod is in waiting state (reason: CrashLoopBackOff).",
                    "runbook_url": "https://runbooks.prometheus-operator.dev/runbooks/kubernetes/kubepodcrashlooping",
                },
                "startsAt": starts_at,
                "endsAt": ends_at,
                "generatorURL": "http://prometheus.example:9090/graph?g0.expr=kube_pod_container_status_waiting",
                "fingerprint": "b1e5a3f0c2d4e6f8",
            }
        ],
    }


async def test_alertmanager_webhook_is_handled_like_a_native_alert(platform: Platform) -> None:
    kube = platform.kube
    app = "am-target"
    kube.create_deployment(app, replicas=2)
    pods = await asyncio.to_thread(wait_until, f"{app} running", lambda: kube.running_pods(app, 2), 120)
    victim = pods[0].metadata.name
    starts = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    auth = {"Authorization": f"Bearer {ALERTMANAGER_TOKEN}"}

    firing = webhook_payload("firing", platform.namespace, victim, starts, "0001-01-01T00:00:00Z")
    answer = await platform.gateway.post("/v1/alerts/alertmanager", json=firing, headers=auth)
    assert answer.status_code == 200, answer.text
    assert answer.json()["fired"] == 1

    fired = await platform.wait_event("alert.fired", alertname="KubePodCrashLooping", pod=victim, timeout=30)
    # the healer treats it as it treats the watcher's: plans and deletes the pod named in the labels
    started = await platform.wait_event("recovery.started", correlation_id=fired.id, timeout=60)
    assert started.data["action"]["kind"] == "delete_pod"
    assert started.data["action"]["target"]["name"] == victim
    await asyncio.to_thread(
        wait_until, f"{victim} deleted", lambda: victim not in {p.metadata.name for p in kube.pods(app)}, 60
    )

    ends = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    resolved = webhook_payload("resolved", platform.namespace, victim, starts, ends)
    answer = await platform.gateway.post("/v1/alerts/alertmanager", json=resolved, headers=auth)
    assert answer.status_code == 200, answer.text
    await platform.wait_event("alert.resolved", fingerprint=fired.data["fingerprint"], timeout=30)
    await platform.wait_event("recovery.succeeded", recovery_id=started.data["recovery_id"], timeout=60)

    await platform.wait_notified(fired.id, victim)

    incident = await platform.api(f"/v1/incidents/{fired.id}")
    assert incident["status"] == "resolved"
    assert incident["labels"]["pod"] == victim
    assert incident["recoveries"], incident

    # the same notification posted again (Alertmanager retries) is deduplicated: one alert.fired
    again = await platform.gateway.post("/v1/alerts/alertmanager", json=firing, headers=auth)
    assert again.status_code == 200
    await platform.refresh()
    assert len(platform.of("alert.fired", pod=victim)) == 1
