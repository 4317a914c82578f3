"""The Zabbix acknowledgement: when one is due, what it says, and how Zabbix's answers are told apart (pure), and
the JSON-RPC client's retries on transport errors but not on Zabbix's refusals (an in-memory transport)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from opsbus.common.errors import TransientError
from opsbus.common.events.payloads.common import ResourceRef
from opsbus.common.events.payloads.recovery import (
    ActionKind,
    PolicyRef,
    RecoveryAction,
    RecoverySucceeded,
    VerificationResult,
)
from opsbus.gateway.domain import zabbix_ack
from opsbus.gateway.domain.zabbix_ack import Ack, AckOptions, Incident, Skip, ZabbixApiError
from opsbus.gateway.zabbixack import ZabbixClient

ZABBIX = Incident(id="ev-1", source="zabbix", labels={"zabbix_event_id": "4711", "host": "db-1"}, alertname="Lag")
OPTIONS = AckOptions(incident_url="https://opsbus.example.com/")


def recovery(kind: ActionKind = ActionKind.ROLLOUT_RESTART, *, dry_run: bool = False) -> RecoverySucceeded:
    return RecoverySucceeded(
        recovery_id="rec-9",
        alert_fingerprint="f" * 16,
        alertname="Lag",
        policy=PolicyRef(name="restart-db", version=3),
        step=1,
        steps_total=2,
        action=RecoveryAction(kind=kind, target=ResourceRef(kind="Deployment", name="pg", namespace="payments")),
        dry_run=dry_run,
        verification=VerificationResult(
            passed=True, check="alert resolved", observed="3/3 pods Ready", waited_seconds=4
        ),
        duration_seconds=9.5,
    )


def test_a_healed_zabbix_problem_is_acknowledged_with_what_opsbus_did_and_the_incident_link() -> None:
    ack = zabbix_ack.plan(recovery(), ZABBIX, OPTIONS)
    assert isinstance(ack, Ack)
    assert ack.event_id == "4711"
    assert ack.action == zabbix_ack.MESSAGE | zabbix_ack.ACKNOWLEDGE  # 6: message and acknowledge, not closed
    assert ack.message.startswith("Healed by opsbus: rollout_restart on Deployment payments/pg")
    assert "(policy restart-db v3, step 1/2)" in ack.message and "verified: 3/3 pods Ready." in ack.message
    assert "Incident: https://opsbus.example.com/incidents/ev-1" in ack.message
    assert ack.message.endswith("[opsbus recovery rec-9]") and ack.marker == "[opsbus recovery rec-9]"
    closing = zabbix_ack.plan(recovery(), ZABBIX, AckOptions(acknowledge=False, close=True))
    assert isinstance(closing, Ack) and closing.action == zabbix_ack.MESSAGE | zabbix_ack.CLOSE
    assert "Incident:" not in closing.message  # no console URL configured: no link


@pytest.mark.parametrize(
    ("payload", "incident", "why"),
    [
        (recovery(dry_run=True), ZABBIX, "dry run"),
        (recovery(ActionKind.NOTIFY_ONLY), ZABBIX, "notify_only"),
        (recovery(), None, "no incident"),
        (recovery(), Incident(id="x", source="watcher", labels={}, alertname="Crash"), "came from watcher"),
        (
            recovery(),
            Incident(id="x", source="zabbix", labels={"zabbix_event_id": "{EVENT.ID}"}, alertname="A"),
            "zabbix",
        ),
    ],
)
def test_nothing_healed_or_not_from_zabbix_is_not_acknowledged(
    payload: RecoverySucceeded, incident: Incident | None, why: str
) -> None:
    decision = zabbix_ack.plan(payload, incident, OPTIONS)
    assert isinstance(decision, Skip) and why in decision.reason


def test_a_long_message_keeps_its_marker_within_zabbixs_limit() -> None:
    long = Incident(id="i" * 190, source="zabbix", labels={"zabbix_event_id": "1"}, alertname="A")
    ack = zabbix_ack.plan(recovery(), long, AckOptions(incident_url="https://x/" + "p" * 3000))
    assert isinstance(ack, Ack)
    assert len(ack.message) <= zabbix_ack.MESSAGE_MAX and ack.message.endswith(ack.marker)


def test_answers_results_refusals_and_the_history_marker() -> None:
    assert zabbix_ack.result({"jsonrpc": "2.0", "result": {"eventids": ["4711"]}, "id": 1}) == {"eventids": ["4711"]}
    with pytest.raises(ZabbixApiError, match=r"-32602: Invalid params\. No permissions") as refused:
        zabbix_ack.result(
            {"jsonrpc": "2.0", "error": {"code": -32602, "message": "Invalid params.", "data": "No permissions"}}
        )
    assert refused.value.code == -32602
    ack = zabbix_ack.plan(recovery(), ZABBIX, OPTIONS)
    assert isinstance(ack, Ack)
    history = [{"eventid": "4711", "acknowledges": [{"message": "looking"}, {"message": f"done {ack.marker}"}]}]
    assert zabbix_ack.already_acknowledged(history, ack)
    assert not zabbix_ack.already_acknowledged([{"eventid": "4711", "acknowledges": [{"message": "looking"}]}], ack)
    assert zabbix_ack.bearer_supported("6.4.0") and zabbix_ack.bearer_supported("7.2.1")
    assert not zabbix_ack.bearer_supported("6.0.14")


class FakeZabbix:
    """Answers JSON-RPC like Zabbix `version`, failing the first `failures` calls of `event.get` as told."""

    def __init__(self, version: str, failures: list[int | str]) -> None:
        self.version = version
        self.failures = failures
        self.requests: list[tuple[dict[str, Any], str | None]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.requests.append((body, request.headers.get("authorization")))
        if body["method"] == "apiinfo.version":
            return httpx.Response(200, json={"jsonrpc": "2.0", "result": self.version, "id": body["id"]})
        if self.failures:
            failure = self.failures.pop(0)
            if failure == "connect":
                raise httpx.ConnectError("refused", request=request)
            return httpx.Response(int(failure), text="busy")
        return httpx.Response(200, json={"jsonrpc": "2.0", "result": [], "id": body["id"]})


async def call(fake: FakeZabbix, attempts: int = 3) -> tuple[Any, list[float]]:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async with httpx.AsyncClient(transport=httpx.MockTransport(fake)) as http:
        client = ZabbixClient(
            http, url="http://zabbix/api_jsonrpc.php", token=SecretStr("tok"), timeout=1, attempts=attempts, sleep=sleep
        )
        return await client.call("event.get", {"eventids": ["1"]}), slept


async def test_zabbix_6_0_gets_the_token_in_the_body_and_6_4_as_a_bearer_header() -> None:
    old = FakeZabbix("6.0.14", [])
    assert (await call(old))[0] == []
    (version, _), (get, header) = old.requests
    assert "auth" not in version and get["auth"] == "tok" and header is None
    new = FakeZabbix("7.0.5", [])
    await call(new)
    _, (get, header) = new.requests
    assert "auth" not in get and header == "Bearer tok"


async def test_transport_errors_are_retried_with_backoff_then_left_to_redelivery() -> None:
    flaky = FakeZabbix("6.0.14", ["connect", 503])
    result, slept = await call(flaky)
    assert result == [] and slept == [0.5, 1.0]
    down = FakeZabbix("6.0.14", ["connect", 502, 429])
    with pytest.raises(TransientError, match="after 3 attempts: HTTP 429"):
        await call(down)


async def test_a_refusal_is_not_retried() -> None:
    gone = FakeZabbix("6.0.14", [404])
    with pytest.raises(ZabbixApiError, match="HTTP 404"):
        await call(gone)
    assert [b["method"] for b, _ in gone.requests] == ["apiinfo.version", "event.get"]
