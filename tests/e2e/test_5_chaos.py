"""Scenario 5: chaos on the platform itself during scenario 1. The healer is killed with SIGKILL before the fault and
again in the middle of its recovery, nats-server and PostgreSQL are restarted while the alert waits on the bus.
Afterwards every event was processed once: one remediation action, one firing and one resolved notification,
nothing dead-lettered. Runs last: it restarts the servers the other scenarios share."""

from __future__ import annotations

import asyncio

import pytest

from tests.cluster.kube import wait_until
from tests.e2e.conftest import logs_of
from tests.e2e.platform import Platform

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]


async def test_healer_killed_and_nats_and_postgres_restarted_mid_incident_process_everything_once(
    platform: Platform,
) -> None:
    stack, kube = platform.stack, platform.kube
    app = "chaos"
    kube.create_deployment(app, replicas=2)
    pods = await asyncio.to_thread(wait_until, f"{app} running", lambda: kube.running_pods(app, 2), 120)
    victim = pods[0].metadata.name

    await asyncio.to_thread(stack.kill_service, "healer")
    await asyncio.to_thread(kube.chaos, "crashloop", f"pod/{victim}")
    fired = await platform.wait_event("alert.fired", alertname="KubePodCrashLooping", pod=victim, timeout=90)

    # the alert waits in the stream while the servers under every service restart
    await asyncio.to_thread(stack.restart_nats)
    await asyncio.to_thread(stack.restart_postgres)
    await asyncio.to_thread(stack.start_service, "healer")

    started = await platform.wait_event("recovery.started", correlation_id=fired.id, timeout=90)
    await asyncio.to_thread(stack.kill_service, "healer")  # in the middle of the step (verifying)
    await asyncio.to_thread(stack.start_service, "healer")

    try:
        await platform.wait_event("recovery.succeeded", recovery_id=started.data["recovery_id"], timeout=120)
        await platform.wait_event("alert.resolved", fingerprint=fired.data["fingerprint"], timeout=90)
    except BaseException:
        print(logs_of(stack, "healer", "watcher"))
        raise

    await platform.wait_notified(fired.id, victim, timeout=90)
    await asyncio.sleep(3)  # a duplicate would come right behind
    await platform.wait_notified(fired.id, victim, timeout=5)

    await platform.refresh()
    chain = platform.in_chain(fired.id)
    actions = {e.id for e in chain if e.family == "recovery" and e.verb == "started"}
    assert len(actions) == 1, [e.data for e in chain if e.verb == "started"]
    # the healer audits a step it carried out and verified as recovery.<action> with outcome executed, once
    deletes = await platform.api(
        "/v1/audit", correlation_id=fired.id, action="recovery.delete_pod", outcome="executed", limit=100
    )
    assert len(deletes["items"]) == 1, deletes["items"]
    assert len(platform.of("alert.fired", pod=victim)) == 1

    assert await platform.dead_lettered() == 0, "events were dead-lettered during the chaos"
