"""Scenario 3: a node goes NotReady -> the healer cordons it -> the node does not come back, so the next step of the
ladder, a drain, waits for a human -> approved through the `opsbus` CLI -> the node is drained -> the node recovers
and the alert resolves. The node is a kwok node of this test's own (`e2e-*`), never one of the shared sandbox's."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid

import pytest

from tests.cluster.kube import wait_until
from tests.e2e.conftest import logs_of
from tests.e2e.platform import Platform

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]


def opsbus_cli(platform: Platform, key: str, *args: str) -> str:
    env = {**os.environ, "OPSBUS_URL": platform.stack.gateway_url, "OPSBUS_API_KEY": key}
    done = subprocess.run(
        [sys.executable, "-m", "opsbus.cli", *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"opsbus {' '.join(args)} exited {done.returncode}:\n{done.stdout}{done.stderr}"
    return done.stdout


async def test_not_ready_node_is_cordoned_then_drained_after_approval_through_the_cli(
    platform: Platform, admin_key: str
) -> None:
    kube = platform.kube
    node = f"e2e-node-{uuid.uuid4().hex[:6]}"
    try:
        await asyncio.to_thread(kube.fake_node_with_pods, node, 2)

        await asyncio.to_thread(kube.chaos, "notready", f"node/{node}")
        fired = await platform.wait_event("alert.fired", alertname="KubeNodeNotReady", node=node, timeout=90)
        await asyncio.to_thread(wait_until, f"{node} cordoned", lambda: kube.node(node).spec.unschedulable, 60)

        # the cordon did not bring the node back: the drain is planned and waits for approval
        try:
            ask = await platform.approval_asked(fired.id)
        except BaseException:
            print(logs_of(platform.stack, "healer"))
            raise
        assert ask["action"]["kind"] == "drain_node"
        await asyncio.sleep(2)
        assert len(kube.pods_on(node)) == 2, "drained before anyone approved"
        listed = await asyncio.to_thread(opsbus_cli, platform, admin_key, "pending", "--output", "json")
        assert str(ask["recovery_id"]) in listed

        await asyncio.to_thread(
            opsbus_cli, platform, admin_key, "approve", str(ask["recovery_id"]), "--step", str(ask["step"]),
            "--comment", "e2e: node is gone, drain it",
        )  # fmt: skip
        await asyncio.to_thread(wait_until, f"{node} drained", lambda: not kube.pods_on(node), 90)
        await platform.wait_event("recovery.succeeded", recovery_id=str(ask["recovery_id"]), timeout=90)
        approved = await platform.wait_event("recovery.approved", recovery_id=str(ask["recovery_id"]), timeout=10)
        assert approved.data["approver"]

        await asyncio.to_thread(kube.heal, "notready", f"node/{node}")
        await platform.wait_event("alert.resolved", fingerprint=fired.data["fingerprint"], timeout=90)
        incident = await platform.api(f"/v1/incidents/{fired.id}")
        kinds = [e["type"].split(".")[3] for e in incident["recoveries"]]
        assert "approved" in kinds and "succeeded" in kinds, kinds
        audit = await platform.api("/v1/audit", correlation_id=fired.id, limit=100)
        assert any("approv" in row["action"] for row in audit["items"]), [r["action"] for r in audit["items"]]
    finally:
        await asyncio.to_thread(kube.heal, "notready", f"node/{node}")
        kube.core.delete_node(node)
