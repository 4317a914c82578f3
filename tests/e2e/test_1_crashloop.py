"""Scenario 1: a pod crash-loops in the sandbox -> the watcher fires with evidence -> the healer's ladder deletes the
pod -> the alert resolves -> the notifier delivers firing and resolved to a webhook; the audit trail and the incident
API tell the story, and Jaeger holds ONE trace spanning watcher, healer and notifier. Every service is its own
process."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.cluster.kube import container_status, wait_until
from tests.e2e.conftest import logs_of
from tests.e2e.platform import Platform, trace_id_of

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]


async def crashloop_incident(platform: Platform, app: str) -> str:
    """Run scenario 1 on a fresh Deployment `app`; returns the alert.fired id (the incident's correlation id)."""
    kube = platform.kube
    kube.create_deployment(app, replicas=2)
    pods = await asyncio.to_thread(wait_until, f"{app} running", lambda: kube.running_pods(app, 2), 120)
    victim = pods[0].metadata.name
    await asyncio.to_thread(kube.chaos, "crashloop", f"pod/{victim}")

    fired = await platform.wait_event("alert.fired", alertname="KubePodCrashLooping", pod=victim, timeout=90)
    evidence = fired.data["evidence"]
    crashed = [c for c in evidence["containers"] if c["restart_count"] >= 1]
    assert crashed, f"no crashed container in the evidence: {evidence}"
    assert crashed[0]["last_termination_reason"] == "Error"

    started = await platform.wait_event("recovery.started", correlation_id=fired.id, timeout=90)
    assert started.correlationid == fired.id
    await platform.wait_event("recovery.succeeded", timeout=120, recovery_id=started.data["recovery_id"])
    await asyncio.to_thread(
        wait_until,
        f"{victim} replaced",
        lambda: victim not in {p.metadata.name for p in kube.pods(app)} and kube.running_pods(app, 2),
        90,
    )
    await platform.wait_event("alert.resolved", fingerprint=fired.data["fingerprint"], timeout=90)
    return fired.id


async def test_crashloop_is_detected_remediated_resolved_notified_and_one_trace(platform: Platform) -> None:
    app = "crashy"
    incident_id = await crashloop_incident(platform, app)
    fired = next(e for e in platform.events if e.id == incident_id)
    victim = fired.data["labels"]["pod"]

    # the notifier delivered the firing alert and its resolution to the webhook, nothing twice
    await platform.wait_notified(incident_id, victim)
    await platform.refresh()
    delivered = [e for e in platform.of("notify.delivered") if incident_id in e.data["event_ids"]]
    assert delivered, f"no notify.delivered covering {incident_id}: {platform.seen()}"

    # exactly one remediation action for this alert
    await platform.refresh()
    actions = [e for e in platform.of("recovery.started") if e.correlationid == incident_id]
    assert len(actions) == 1, [e.data for e in actions]
    assert actions[0].data["action"]["kind"] == "delete_pod"

    # the incident API tells the story: alert with evidence, recoveries, notifications
    async def told() -> dict[str, Any] | None:
        incident = await platform.api(f"/v1/incidents/{incident_id}")
        kinds = {e["type"].split(".")[3] for e in incident["recoveries"]}
        done = incident["status"] == "resolved" and {"planned", "started", "succeeded"} <= kinds
        return incident if done and incident["notifications"] else None

    incident = await platform.until("the incident told whole", told, 60, lambda: "incident incomplete")
    assert incident["alert"]["evidence"]["containers"]
    assert incident["labels"]["pod"] == victim

    # the audit trail: the healer's decision and its cluster write, under the same correlation id
    audit = await platform.api("/v1/audit", correlation_id=incident_id, limit=100)
    assert {"healer"} <= {row["service"] for row in audit["items"]}, audit
    assert any(row["target"]["name"] == victim for row in audit["items"]), audit

    # one trace from detection to delivery
    trace_id = trace_id_of(fired)
    for event in platform.in_chain(incident_id):
        if event.traceparent:
            assert trace_id_of(event) == trace_id, f"{event.type} left the trace"
    try:
        await platform.wait_trace(trace_id, {"opsbus-watcher", "opsbus-healer", "opsbus-notifier"}, timeout=60)
    except BaseException:
        print(logs_of(platform.stack, "notifier"))
        raise
    assert container_status(platform.kube.pods(app)[0]) is not None
