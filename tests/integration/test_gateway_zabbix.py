"""The Zabbix receiver on the real gateway, NATS and PostgreSQL, fed by the shipped media type script.

deploy/zabbix/opsbus-media-type.js runs under Node with a Zabbix-like `HttpRequest` (tests/integration/
zabbix_media_type.cjs), as Zabbix's webhook runtime would run it, and posts to `POST /v1/alerts/zabbix`: a problem
becomes `alert.fired` with the trigger, host and tags as labels, its recovery `alert.resolved` with the same
fingerprint; forged or malformed calls get 401/422 problem+json and nothing reaches the bus.
(The tier with a real Zabbix server and the acknowledgement back is tests/integration/test_zabbix_server.py.)
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from opsbus.common.bus import Bus
from tests.integration.gateway_stack import GatewayStack, gateway_stack
from tests.integration.test_gateway_api import assert_problem, collect, eventually

pytestmark = pytest.mark.integration

MakeBus = Callable[..., Awaitable[Bus]]
REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "deploy" / "zabbix" / "opsbus-media-type.js"
RUNNER = Path(__file__).with_name("zabbix_media_type.cjs")
TOKEN = "zbx-token-for-tests"


@pytest.fixture
async def stack(database_url: str, nats_url: str) -> AsyncIterator[GatewayStack]:
    async for s in gateway_stack(database_url, nats_url):
        yield s


def params(url: str, **changes: str) -> dict[str, str]:
    """The media type's parameters as Zabbix resolves them for a problem (macros already replaced)."""
    base = {
        "opsbus_url": url,
        "opsbus_token": TOKEN,
        "event_id": "4711",
        "event_value": "1",
        "event_nseverity": "4",
        "event_date": "2026.12.07",
        "event_time": "20:01:00",
        "recovery_date": "{EVENT.RECOVERY.DATE}",
        "recovery_time": "{EVENT.RECOVERY.TIME}",
        "host": "db-1",
        "trigger_id": "20533",
        "trigger_name": "PostgreSQL replication lag is too high",
        "event_tags": json.dumps([{"tag": "namespace", "value": "payments"}, {"tag": "service", "value": "pg"}]),
        "event_opdata": "lag: 92 s",
        "zabbix_url": "https://zabbix.example.com/",
    }
    return {**base, **changes}


async def media_type(p: dict[str, Any]) -> tuple[int, str]:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed (make setup installs it for the console)")
    proc = await asyncio.to_thread(
        subprocess.run,
        [node, str(RUNNER), str(SCRIPT), json.dumps(p)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={"PATH": "/usr/bin:/bin", "TZ": "UTC"},
    )
    return proc.returncode, proc.stdout + proc.stderr


async def test_the_media_type_turns_a_problem_and_its_recovery_into_one_alert(
    stack: GatewayStack, make_bus: MakeBus
) -> None:
    await stack.start(zabbix={"bearer_token": TOKEN})
    bus = await make_bus("tester")
    await bus.ensure_streams()
    got = await collect(bus, "ALERT", ["alert.>"], "t-zabbix")

    code, out = await media_type(params(stack.url))
    assert (code, out) == (0, "OK")
    code, out = await media_type(
        params(stack.url, event_value="0", recovery_date="2026.12.07", recovery_time="20:04:30")
    )
    assert (code, out) == (0, "OK")
    await eventually(lambda: len(got) >= 2)
    fired, resolved = got[0].event, got[1].event
    assert fired.type == "io.opsbus.alert.fired.v1"
    assert got[0].subject == "alert.fired.prod.payments"
    data = fired.data
    assert data["source"] == "zabbix"
    assert data["alertname"] == "PostgreSQLReplicationLagIsTooHigh"
    assert data["severity"] == "critical"
    assert data["starts_at"].startswith("2026-12-07T20:01:00")
    labels = data["labels"]
    assert (labels["host"], labels["namespace"], labels["service"]) == ("db-1", "payments", "pg")
    assert labels["trigger"] == "PostgreSQL replication lag is too high"
    assert labels["zabbix_severity"] == "high"
    assert data["generator_url"] == "https://zabbix.example.com/tr_events.php?triggerid=20533&eventid=4711"
    assert resolved.type == "io.opsbus.alert.resolved.v1"
    assert resolved.data["fingerprint"] == data["fingerprint"]
    assert resolved.data["ends_at"].startswith("2026-12-07T20:04:30")
    assert resolved.correlationid == fired.id

    # Zabbix retries a webhook it thinks failed: the stream keeps one copy
    assert await media_type(params(stack.url)) == (0, "OK")
    await asyncio.sleep(0.5)
    assert len(got) == 2


async def test_forged_and_malformed_calls_get_problems_and_publish_nothing(
    stack: GatewayStack, make_bus: MakeBus
) -> None:
    await stack.start(zabbix={"bearer_token": TOKEN})
    bus = await make_bus("tester")
    await bus.ensure_streams()
    got = await collect(bus, "ALERT", ["alert.>"], "t-zabbix-bad")
    good = {
        "event_id": "1",
        "status": "problem",
        "severity": 2,
        "host": "h",
        "trigger_id": "2",
        "trigger_name": "Disk full",
        "started_at": "2026-12-07T20:00:00Z",
    }
    async with stack.client() as c:
        assert_problem(await c.post("/v1/alerts/zabbix", json=good), 401)
        forged = await c.post("/v1/alerts/zabbix", json=good, headers={"Authorization": "Bearer guessed"})
        assert_problem(forged, 401)
        auth = {"Authorization": f"Bearer {TOKEN}"}
        for bad in ({**good, "severity": 9}, {**good, "event_id": "x"}, {"hello": "world"}):
            assert_problem(await c.post("/v1/alerts/zabbix", json=bad, headers=auth), 422)
        assert_problem(await c.post("/v1/alerts/zabbix", content=b"{not json", headers=auth), 422)
    # the script itself reports a refusal to Zabbix (so the alert shows as failed there)
    code, out = await media_type(params(stack.url, opsbus_token="wrong"))
    assert code == 1
    assert "the gateway answered 401" in out
    await asyncio.sleep(0.5)
    assert got == []
