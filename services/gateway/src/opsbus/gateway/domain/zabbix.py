"""The opsbus media type's payload (deploy/zabbix/opsbus-media-type.js, Zabbix 6.0+) and its mapping to
`alert.fired` / `alert.resolved` events.

Why this module exists: Zabbix has no Alertmanager-like webhook format of its own; its webhook media types run
JavaScript that posts whatever it builds. Ours posts one event per call, built from macros, and this module turns
it into the same alert vocabulary as Alertmanager's (`alertname`, `severity`, `namespace`, `pod`...), so routing,
silences and healing policies treat both alike:

- `alertname` is the trigger's name in CamelCase (an alertname is an identifier: "PostgreSQL replication lag is
  too high" -> `PostgreSQLReplicationLagIsTooHigh`), the name itself is the `trigger` label; `host`,
  `zabbix_trigger_id`, `zabbix_event_id` and `zabbix_severity` (Zabbix's own name) are labels; every Zabbix
  event tag becomes a label (`namespace`, `pod`, `deployment`... tags then name the Kubernetes object, as
  Alertmanager labels do);
- severity 5 Disaster and 4 High -> critical, 3 Average and 2 Warning -> warning, 1 Information and
  0 Not classified -> info;
- the fingerprint is derived from the *problem* event id, which Zabbix also gives the recovery
  (`{EVENT.ID}` in a recovery operation), so a problem and its recovery are one alert identity;
  ids are deterministic, so a retried webhook is deduplicated by the stream.

Pure: no I/O. A payload that cannot map raises MappingError (the receiver answers 422, nothing is published).
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from opsbus.common.events import Envelope
from opsbus.common.events.payloads.alert import AlertSource
from opsbus.gateway.domain.alertmanager import AlertmanagerAlert, MappingError, MappingProblem, one_event

SEVERITIES = ("not_classified", "information", "warning", "average", "high", "disaster")
_OPSBUS_SEVERITY = ("info", "info", "warning", "warning", "critical", "critical")  # by Zabbix severity 0..5
_LABEL = re.compile(r"[^A-Za-z0-9_]")
_RESERVED = {"alertname", "severity", "trigger", "host", "zabbix_trigger_id", "zabbix_event_id", "zabbix_severity"}
_WORD = re.compile(r"[A-Za-z0-9]+")


class ZabbixTag(BaseModel):
    model_config = ConfigDict(extra="ignore")

    tag: str = Field(min_length=1, max_length=255)
    value: str = Field(default="", max_length=255)


class ZabbixEvent(BaseModel):
    """What the opsbus media type posts for one problem or recovery (Zabbix macros in brackets)."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "event_id": "4711",
                    "status": "problem",
                    "severity": 4,
                    "host": "db-1",
                    "trigger_id": "20533",
                    "trigger_name": "PostgreSQL replication lag is too high",
                    "started_at": "2026-12-07T20:01:00Z",
                    "tags": [{"tag": "namespace", "value": "payments"}, {"tag": "service", "value": "postgres"}],
                    "opdata": "lag: 92 s",
                    "event_url": "https://zabbix.example.com/tr_events.php?triggerid=20533&eventid=4711",
                }
            ]
        },
    )

    event_id: str = Field(pattern=r"^[0-9]{1,20}$", description="The problem's event id ({EVENT.ID}).")
    status: Literal["problem", "resolved"] = Field(description="problem, or resolved for a recovery.")
    severity: int = Field(ge=0, le=5, description="{EVENT.NSEVERITY}: 0 Not classified .. 5 Disaster.")
    host: str = Field(min_length=1, max_length=255, description="{HOST.HOST}")
    trigger_id: str = Field(pattern=r"^[0-9]{1,20}$", description="{TRIGGER.ID}")
    trigger_name: str = Field(min_length=1, max_length=512, description="{EVENT.NAME}")
    started_at: datetime = Field(description="When the problem began ({EVENT.DATE} {EVENT.TIME}, as ISO 8601).")
    ended_at: datetime | None = Field(default=None, description="Recovery time ({EVENT.RECOVERY.DATE/TIME}).")
    tags: list[ZabbixTag] = Field(default_factory=list, max_length=100, description="{EVENT.TAGSJSON}")
    opdata: str = Field(default="", max_length=1024, description="{EVENT.OPDATA}: the operational data.")
    event_url: str | None = Field(default=None, max_length=2048, description="Link to the event in Zabbix.")


def fingerprint(event: ZabbixEvent) -> str:
    """One identity for a problem and its recovery: Zabbix gives both the problem's event id."""
    return hashlib.sha256(f"zabbix\x00{event.event_id}".encode()).hexdigest()[:16]


def alertname(trigger_name: str) -> str:
    """The trigger's name as an alertname: its words in CamelCase (`Zabbix` in front when it starts with a digit
    or has no word at all), at most 128 characters."""
    name = "".join(w[0].upper() + w[1:] for w in _WORD.findall(trigger_name))
    if not name or name[0].isdigit():
        name = f"Zabbix{name}"
    return name[:128]


def labels_of(event: ZabbixEvent) -> dict[str, str]:
    """The alert's labels: the trigger and host, Zabbix's ids and severity, then every tag (first value wins;
    tag names are made label names: anything but letters, digits and `_` becomes `_`)."""
    labels = {
        "alertname": alertname(event.trigger_name),
        "trigger": event.trigger_name,
        "severity": _OPSBUS_SEVERITY[event.severity],
        "host": event.host,
        "zabbix_trigger_id": event.trigger_id,
        "zabbix_event_id": event.event_id,
        "zabbix_severity": SEVERITIES[event.severity],
    }
    for tag in event.tags:
        name = _LABEL.sub("_", tag.tag)
        if name not in _RESERVED and name not in labels:
            labels[name] = tag.value
    return labels


def to_events(event: ZabbixEvent, *, default_cluster: str, now: datetime) -> list[Envelope]:
    """The event as `alert.fired` (a problem) or `alert.resolved` (its recovery)."""
    annotations = {"summary": f"{event.host}: {event.trigger_name}"[:512]}
    if event.opdata:
        annotations["description"] = event.opdata
    alert = AlertmanagerAlert(
        status="firing" if event.status == "problem" else "resolved",
        labels=labels_of(event),
        annotations=annotations,
        startsAt=event.started_at,
        endsAt=event.ended_at,
        generatorURL=event.event_url,
        fingerprint=fingerprint(event),
    )
    try:
        return [
            one_event(
                alert, alert.labels["alertname"], default_cluster=default_cluster, now=now, source=AlertSource.ZABBIX
            )
        ]
    except ValueError as exc:  # a ValidationError of the event models included
        raise MappingError([MappingProblem("", str(exc)[:1000])]) from None
