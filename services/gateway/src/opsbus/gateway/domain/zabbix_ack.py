"""What opsbus tells Zabbix when it healed one of Zabbix's problems: the decision and the JSON-RPC it takes.

Why this module exists: a problem that came in through the Zabbix receiver (`domain/zabbix.py`) and that the
healer fixed should not stay open and unexplained in Zabbix; operators there see it acknowledged with what
opsbus did and a link to the incident. This module decides whether a `recovery.succeeded` deserves an
acknowledgement (a real action, not a dry run or `notify_only`, on an incident whose alert came from Zabbix
with its problem's event id), writes the message (with a marker naming the recovery, so that an
acknowledgement already made is recognised in the problem's history and never made twice), builds the
`event.acknowledge` call and tells the answers apart: a JSON-RPC error is Zabbix refusing (permissions, a
trigger that does not allow manual closing, a bad token): retrying changes nothing.

Pure: plain data in, plain data out; the calls are made by `opsbus.gateway.zabbixack`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opsbus.common.events.payloads.recovery import ActionKind, RecoverySucceeded

# event.acknowledge's action flags (Zabbix 6.0: ZBX_PROBLEM_UPDATE_*).
CLOSE = 0x01
ACKNOWLEDGE = 0x02
MESSAGE = 0x04
MESSAGE_MAX = 2048  # Zabbix's acknowledges.message column


@dataclass(frozen=True, slots=True)
class AckOptions:
    """What the acknowledgement does (from the gateway's settings)."""

    acknowledge: bool = True  # mark the problem acknowledged (flag 2), beside the message (flag 4)
    close: bool = False  # also close it (flag 1; the trigger must allow manual closing)
    incident_url: str | None = None  # base URL of the console; the message links `<url>/incidents/<id>`


@dataclass(frozen=True, slots=True)
class Incident:
    """What the gateway's incident read model knows of the alert the recovery healed."""

    id: str
    source: str
    labels: Mapping[str, str]
    alertname: str


@dataclass(frozen=True, slots=True)
class Ack:
    """Acknowledge Zabbix event `event_id` with `message`; `marker` identifies this acknowledgement."""

    event_id: str
    action: int
    message: str
    marker: str


@dataclass(frozen=True, slots=True)
class Skip:
    reason: str


class ZabbixApiError(Exception):
    """Zabbix answered with a JSON-RPC error: it refuses, and will refuse again (no retry)."""

    def __init__(self, code: int, message: str, data: str) -> None:
        super().__init__(f"Zabbix API error {code}: {message} {data}".strip())
        self.code = code


def marker(recovery: RecoverySucceeded) -> str:
    """The words that identify this acknowledgement in the problem's history (one per recovery)."""
    return f"[opsbus recovery {recovery.recovery_id}]"


def plan(recovery: RecoverySucceeded, incident: Incident | None, options: AckOptions) -> Ack | Skip:
    """An acknowledgement for a real healing of a Zabbix problem; otherwise why none."""
    if recovery.dry_run:
        return Skip("dry run: nothing was healed")
    if recovery.action.kind is ActionKind.NOTIFY_ONLY:
        return Skip("notify_only: nothing was healed")
    if incident is None:
        return Skip("no incident for this recovery's correlation id")
    event_id = incident.labels.get("zabbix_event_id", "")
    if incident.source != "zabbix" or not event_id.isdigit():
        return Skip(f"the alert came from {incident.source}, not from Zabbix")
    action = MESSAGE | (ACKNOWLEDGE if options.acknowledge else 0) | (CLOSE if options.close else 0)
    return Ack(event_id=event_id, action=action, message=message(recovery, incident, options), marker=marker(recovery))


def message(recovery: RecoverySucceeded, incident: Incident, options: AckOptions) -> str:
    target = recovery.action.target
    where = f"{target.namespace}/{target.name}" if target.namespace else target.name
    parts = [
        f"Healed by opsbus: {recovery.action.kind.value} on {target.kind} {where}",
        f"(policy {recovery.policy.name} v{recovery.policy.version}, step {recovery.step}/{recovery.steps_total})",
    ]
    if recovery.verification is not None and recovery.verification.observed:
        parts.append(f"verified: {recovery.verification.observed}.")
    if options.incident_url:
        parts.append(f"Incident: {options.incident_url.rstrip('/')}/incidents/{incident.id}")
    text = " ".join(parts)
    tail = f" {marker(recovery)}"
    return text[: MESSAGE_MAX - len(tail)] + tail


def request(
    method: str, params: Mapping[str, Any] | Sequence[Any], *, call_id: int, auth: str | None
) -> dict[str, Any]:
    """A JSON-RPC 2.0 request; `auth` is the token in the body (Zabbix before 6.4, which has no Bearer header)."""
    body: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params, "id": call_id}
    if auth is not None:
        body["auth"] = auth
    return body


def acknowledge_params(ack: Ack) -> dict[str, Any]:
    return {"eventids": [ack.event_id], "action": ack.action, "message": ack.message}


def find_params(ack: Ack) -> dict[str, Any]:
    """`event.get` of the problem with its acknowledgement history (to find an earlier one of ours)."""
    return {"eventids": [ack.event_id], "output": ["eventid"], "select_acknowledges": ["message", "action"]}


def result(answer: Any) -> Any:
    """The `result` of a JSON-RPC answer; ZabbixApiError when it is an error."""
    if not isinstance(answer, dict):
        raise ZabbixApiError(0, "not a JSON-RPC answer", str(answer)[:200])
    error = answer.get("error")
    if isinstance(error, dict):
        raise ZabbixApiError(int(error.get("code") or 0), str(error.get("message", "")), str(error.get("data", "")))
    if "result" not in answer:
        raise ZabbixApiError(0, "JSON-RPC answer without result", str(answer)[:200])
    return answer["result"]


def already_acknowledged(events: Any, ack: Ack) -> bool:
    """Whether the problem's history (an `event.get` result) holds an acknowledgement with our marker."""
    for event in events if isinstance(events, list) else []:
        for entry in event.get("acknowledges") or []:
            if ack.marker in str(entry.get("message") or ""):
                return True
    return False


def bearer_supported(version: str) -> bool:
    """Zabbix 6.4 and later take the API token as `Authorization: Bearer` (and 7.2 refuses it in the body)."""
    try:
        major, minor = (int(x) for x in version.split(".")[:2])
    except ValueError:
        return True
    return (major, minor) >= (6, 4)
