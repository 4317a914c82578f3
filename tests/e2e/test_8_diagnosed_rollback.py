"""Scenario 8: a bad release crash-loops in the sandbox -> the watcher records the rollout and fires -> the analyzer
names the rollout as the top cause -> the healer's ladder, conditioned on that cause, rolls back (through the
deployer) instead of restarting -> the Deployment is back on its previous template. Every service is its own
process; nothing is fed to the analyzer or the healer by the test."""

from __future__ import annotations

import asyncio

import pytest

from opsbus.common.events import Envelope
from tests.cluster.kube import wait_until
from tests.e2e.platform import Platform

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]
APP = "badrelease"


def _pod(e: Envelope) -> str:
    return str((e.data.get("labels") or {}).get("pod", ""))


async def test_the_analyzer_s_rollout_cause_makes_the_healer_roll_back_not_restart(platform: Platform) -> None:
    kube = platform.kube
    kube.create_deployment(APP, replicas=2, image="registry.example/badrelease:1.0")
    await asyncio.to_thread(wait_until, f"{APP} running", lambda: kube.running_pods(APP, 2), 120)
    await asyncio.sleep(3.0)  # the watcher's cache holds the healthy template: what follows is a change
    release = {
        "spec": {
            "template": {
                "metadata": {"labels": {"opsbus.io/chaos": "crashloop"}},  # the new version crashes (kwok stage)
                "spec": {"containers": [{"name": "app", "image": "registry.example/badrelease:1.1"}]},
            }
        }
    }
    kube.apps.patch_namespaced_deployment(APP, kube.namespace, release)

    async def crashing() -> Envelope | None:
        await platform.refresh()
        hits = [e for e in platform.of("alert.fired", alertname="KubePodCrashLooping") if _pod(e).startswith(APP)]
        return hits[0] if hits else None

    fired = await platform.until("a crash-loop alert of the new release", crashing, 120, platform.seen)
    made = await platform.wait_event("diagnosis.made", correlation_id=fired.id, timeout=30)
    top = made.data["causes"][0]
    assert (top["kind"], top["suggested_action"]) == ("rollout", "rollback"), made.data
    assert top["target"]["name"] == APP

    started = await platform.wait_event("recovery.started", correlation_id=fired.id, timeout=90)
    assert started.data["action"]["kind"] == "rollback", started.data
    requested = await platform.wait_event("deploy.requested", correlation_id=fired.id, timeout=30)
    assert requested.data["strategy"] == "rollback"
    await platform.wait_event("recovery.succeeded", recovery_id=started.data["recovery_id"], timeout=180)

    def rolled_back() -> bool | None:
        d = kube.deployment(APP)
        template = d.spec.template
        clean = "opsbus.io/chaos" not in (template.metadata.labels or {})
        return (clean and template.spec.containers[0].image == "registry.example/badrelease:1.0") or None

    await asyncio.to_thread(wait_until, f"{APP} back on 1.0", rolled_back, 60)
    await platform.refresh()
    actions = [e.data["action"]["kind"] for e in platform.of("recovery.started") if e.correlationid == fired.id]
    assert "rollout_restart" not in actions and "delete_pod" not in actions, actions
