"""The healer's own writes on the change timeline, against a real PostgreSQL (the outbox the relay publishes).

The cluster is the one port replaced (the recorder of writes of test_healer_deferrals): what is proven is the
`change.recorded` the healer queues in its outbox for an applied action - once, origin healer, caused by the
alert - and that nothing is recorded for an action it did not apply. The same on the bus, against the sandbox,
is tests/cluster/test_healer_changes.py.
"""

# ruff: noqa: F401, F811 - `make` is the fixture imported from the deferral tests' harness

from __future__ import annotations

import pytest

from opsbus.common.events.payloads import ChangeKind, ChangeOrigin
from tests.integration.test_healer_deferrals import Clock, Make, RecordedCluster, fired, make, outbox, settle

pytestmark = pytest.mark.integration
CHANGE = "io.opsbus.change.recorded.v1"


async def test_an_applied_restart_is_queued_once_as_a_change_caused_by_the_alert(make: Make) -> None:
    clock, kube = Clock(), RecordedCluster()
    ex = await make(clock, kube)
    alert = fired("web-1")
    await ex.on_alert_fired(alert)
    await settle(ex, "select 1 from healer.recoveries where status = 'resolved'")
    assert kube.restarts == ["web"]
    (change,) = await outbox(ex, CHANGE)
    assert change["causationid"] == alert.id and change["correlationid"] == alert.id
    assert change["subject"] == "Deployment/shop/web"
    data = change["data"]
    assert data["origin"] == ChangeOrigin.HEALER.value and data["action"] == "rollout_restart"
    assert data["kinds"] == [ChangeKind.ACTION.value, ChangeKind.TEMPLATE.value]
    assert data["workload"] == {"kind": "Deployment", "namespace": "shop", "name": "web"}
    assert data["actor"] == {"kind": "service", "id": "healer"}
    assert data["diff"][0]["path"] == "spec.template.metadata.annotations[kubectl.kubernetes.io/restartedAt]"
    assert "KubePodCrashLooping" in data["summary"]

    second = fired("web-2")  # same workload within the cooldown: deferred, nothing applied, nothing recorded
    await ex.on_alert_fired(second)
    await settle(ex, "select 1 from healer.recoveries where status = 'deferred'")
    assert kube.restarts == ["web"] and len(await outbox(ex, CHANGE)) == 1
