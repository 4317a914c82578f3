"""The Zabbix tier: a real Zabbix 6.0 server and API (tests/integration/zabbix_server.py) with the real gateway,
NATS and PostgreSQL, configured only through Zabbix's API as the five steps of deploy/zabbix/README.md say.

A trapper value crosses a trigger: the server runs the shipped media type (its own JavaScript engine) and the
gateway publishes `alert.fired` with the trigger, host and tags as labels. opsbus heals it (the healer's
`recovery.succeeded`, published here as the healer would, caused by that alert): the gateway acknowledges the
problem in Zabbix with its API token, and the message with the incident's link is in the problem's history;
a redelivered or replayed recovery acknowledges nothing twice. A recovery value resolves the problem and the
webhook gives `alert.resolved` with the same fingerprint.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select

from opsbus.common.bus import Bus
from opsbus.common.events import Envelope
from opsbus.common.events.payloads.common import ResourceRef
from opsbus.common.events.payloads.recovery import (
    ActionKind,
    PolicyRef,
    RecoveryAction,
    RecoverySucceeded,
    VerificationResult,
)
from opsbus.common.testing.servers import free_port
from opsbus.gateway import store
from tests.integration.gateway_stack import GatewayStack, gateway_stack
from tests.integration.test_gateway_api import collect
from tests.integration.zabbix_server import Zabbix, zabbix_server

pytestmark = pytest.mark.integration

MakeBus = Callable[..., Awaitable[Bus]]
SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "zabbix" / "opsbus-media-type.js"
TOKEN = "zbx-webhook-token-for-tests"
PUBLIC = "https://opsbus.example.com"
MACROS = {
    "event_id": "{EVENT.ID}",
    "event_value": "{EVENT.VALUE}",
    "event_nseverity": "{EVENT.NSEVERITY}",
    "event_date": "{EVENT.DATE}",
    "event_time": "{EVENT.TIME}",
    "recovery_date": "{EVENT.RECOVERY.DATE}",
    "recovery_time": "{EVENT.RECOVERY.TIME}",
    "host": "{HOST.HOST}",
    "trigger_id": "{TRIGGER.ID}",
    "trigger_name": "{EVENT.NAME}",
    "event_tags": "{EVENT.TAGSJSON}",
    "event_opdata": "{EVENT.OPDATA}",
    "zabbix_url": "{$ZABBIX.URL}",
}


@pytest.fixture
def zabbix(database_url: str) -> Iterator[Zabbix]:
    with zabbix_server(database_url) as z:
        yield z


@pytest.fixture
async def stack(database_url: str, nats_url: str) -> AsyncIterator[GatewayStack]:
    async for s in gateway_stack(database_url, nats_url):
        yield s


def configure(z: Zabbix, gateway_url: str) -> dict[str, str]:
    """The README's steps 2-5 through the API, then a host with a trapper item and a tagged trigger."""
    z.call("usermacro.createglobal", {"macro": "{$ZABBIX.URL}", "value": z.web_url})
    params = [{"name": "opsbus_url", "value": gateway_url}, {"name": "opsbus_token", "value": TOKEN}]
    params += [{"name": k, "value": v} for k, v in MACROS.items()]
    (media,) = z.call(
        "mediatype.create",
        {"type": 4, "name": "opsbus", "script": SCRIPT.read_text(), "parameters": params, "timeout": "10s"},
    )["mediatypeids"]
    everything = {"mediatypeid": media, "sendto": "opsbus", "active": 0, "severity": 63, "period": "1-7,00:00-24:00"}
    z.call("user.update", {"userid": "1", "medias": [everything]})
    (group,) = z.call("hostgroup.create", {"name": "Kubernetes"})["groupids"]
    (host,) = z.call("host.create", {"host": "db-1", "groups": [{"groupid": group}]})["hostids"]
    key = "pg.replication.lag"
    z.call("item.create", {"hostid": host, "name": "lag", "key_": key, "type": 2, "value_type": 3})
    (trigger,) = z.call(
        "trigger.create",
        {
            "description": "PostgreSQL replication lag is too high",
            "expression": f"last(/db-1/{key})>60",
            "priority": 4,
            "manual_close": 1,
            "tags": [{"tag": "namespace", "value": "payments"}, {"tag": "service", "value": "pg"}],
        },
    )["triggerids"]
    message = {"default_msg": 0, "subject": "{EVENT.NAME}", "message": "{EVENT.NAME}", "mediatypeid": media}
    operation = {"operationtype": 0, "opmessage": message, "opmessage_usr": [{"userid": "1"}]}
    z.call(
        "action.create",
        {
            "name": "opsbus",
            "eventsource": 0,
            "esc_period": "1m",
            "filter": {"evaltype": 0, "conditions": [{"conditiontype": 0, "operator": 0, "value": group}]},
            "operations": [operation],
            "recovery_operations": [operation],
        },
    )
    (token_id,) = z.call("token.create", {"name": "opsbus", "userid": "1"})["tokenids"]
    (generated,) = z.call("token.generate", [token_id])
    return {"key": key, "trigger": trigger, "token": generated["token"]}


async def sent(z: Zabbix, key: str, value: str, timeout: float = 60) -> None:
    """Send until the server takes it (it knows the item once its configuration cache has synced)."""
    deadline = time.monotonic() + timeout
    info = ""
    while time.monotonic() < deadline:
        info = await asyncio.to_thread(z.send, "db-1", key, value)
        if info.startswith("processed: 1;"):
            return
        await asyncio.sleep(0.5)
    pytest.fail(f"the trapper did not take {key}={value}: {info}\n{z.log_tail()}")


async def wait_for(what: str, check: Callable[[], Any], z: Zabbix, timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if asyncio.iscoroutine(found):
            found = await found
        if found:
            return found
        await asyncio.sleep(0.5)
    pytest.fail(f"{what} not seen within {timeout:.0f}s\n{z.log_tail()}")


def healed(fired: Envelope, event_id: str | None = None) -> Envelope:
    """The healer's `recovery.succeeded` for the alert, caused by it."""
    payload = RecoverySucceeded(
        recovery_id=f"rec-{fired.id[:8]}",
        alert_fingerprint=str(fired.data["fingerprint"]),
        alertname=str(fired.data["alertname"]),
        policy=PolicyRef(name="restart-replica", version=2),
        step=1,
        steps_total=1,
        action=RecoveryAction(
            kind=ActionKind.ROLLOUT_RESTART, target=ResourceRef(kind="Deployment", name="pg", namespace="payments")
        ),
        verification=VerificationResult(passed=True, check="alert resolved", observed="lag 3 s", waited_seconds=5),
        duration_seconds=12.0,
    )
    ref = ResourceRef(kind="Deployment", name="pg", namespace="payments").as_object_ref()
    return Envelope.build(payload, service="healer", cluster="prod", obj=ref, cause=fired, event_id=event_id)


def acknowledgements(z: Zabbix, event_id: str, marker: str) -> list[dict[str, Any]]:
    (event,) = z.call(
        "event.get", {"eventids": [event_id], "output": ["acknowledged"], "select_acknowledges": "extend"}
    )
    return [a for a in event["acknowledges"] if marker in a["message"]]


async def test_a_zabbix_problem_fires_is_acknowledged_when_healed_and_resolves(
    zabbix: Zabbix, stack: GatewayStack, make_bus: MakeBus
) -> None:
    started = time.monotonic()
    bus = await make_bus("tester")
    await bus.ensure_streams()
    alerts = await collect(bus, "ALERT", ["alert.>"], "t-zabbix-alerts")
    audits = await collect(await make_bus("auditor"), "AUDIT", ["audit.recorded.>"], "t-zabbix-audit")
    # The media type needs the gateway's URL and the gateway the token Zabbix makes: the port is chosen first.
    port = free_port()
    made = await asyncio.to_thread(configure, zabbix, f"http://127.0.0.1:{port}")
    gateway = await stack.start(
        zabbix={"bearer_token": TOKEN, "api_url": zabbix.api_url, "api_token": made["token"]},
        public_url=PUBLIC,
        port=port,
    )

    await sent(zabbix, made["key"], "92")  # crosses the trigger (> 60)
    fired_delivery = await wait_for(
        "alert.fired", lambda: [d for d in alerts if d.event.type.startswith("io.opsbus.alert.fired")], zabbix
    )
    fired = fired_delivery[0].event
    assert fired_delivery[0].subject == "alert.fired.prod.payments"
    labels = fired.data["labels"]
    assert fired.data["source"] == "zabbix" and fired.data["alertname"] == "PostgreSQLReplicationLagIsTooHigh"
    assert (labels["host"], labels["namespace"], labels["service"]) == ("db-1", "payments", "pg")
    assert labels["zabbix_trigger_id"] == made["trigger"] and labels["zabbix_severity"] == "high"
    problem_id = labels["zabbix_event_id"]
    assert str(fired.data["generator_url"]).startswith(f"{zabbix.web_url}/tr_events.php?triggerid=")

    recovery = healed(fired)
    await bus.publisher.publish(recovery)
    marker = f"[opsbus recovery {recovery.data['recovery_id']}]"
    (ack,) = await wait_for(
        "the acknowledgement in Zabbix", lambda: acknowledgements(zabbix, problem_id, marker), zabbix
    )
    assert ack["message"].startswith("Healed by opsbus: rollout_restart on Deployment payments/pg")
    assert f"Incident: {PUBLIC}/incidents/{fired.id}" in ack["message"]
    assert int(ack["action"]) & 0x06 == 0x06  # message and acknowledge; not closed (the default)
    (problem,) = zabbix.call("event.get", {"eventids": [problem_id], "output": ["acknowledged"]})
    assert problem["acknowledged"] == "1"
    audit = await wait_for(
        "the audit entry", lambda: [d for d in audits if d.event.data.get("action") == "zabbix.acknowledge"], zabbix
    )
    assert audit[0].event.data["outcome"] == "executed" and audit[0].event.causationid == recovery.id

    # The same recovery again (a redelivery after the dedupe window: a new id), then once more after the
    # gateway lost its record (a crash between Zabbix's answer and the commit): Zabbix keeps one acknowledgement.
    await bus.publisher.publish(healed(fired))
    db = gateway.db
    t = store.zabbix_acks
    async with db.sessions.begin() as s:
        await s.execute(delete(t))
    await bus.publisher.publish(healed(fired))

    async def found() -> bool:
        async with db.engine.connect() as conn:
            return (await conn.execute(select(t.c.state))).scalar() == "found"

    await wait_for("the replay recorded as found", found, zabbix, timeout=60)
    assert len(acknowledgements(zabbix, problem_id, marker)) == 1

    await sent(zabbix, made["key"], "3")  # back under the trigger: Zabbix's recovery
    resolved = await wait_for(
        "alert.resolved", lambda: [d for d in alerts if d.event.type.startswith("io.opsbus.alert.resolved")], zabbix
    )
    assert resolved[0].event.data["fingerprint"] == fired.data["fingerprint"]
    assert resolved[0].event.correlationid == fired.id
    print(f"zabbix tier: {time.monotonic() - started:.1f}s after the server was up")
