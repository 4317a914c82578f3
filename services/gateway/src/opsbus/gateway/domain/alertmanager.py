"""Alertmanager's webhook payload (version 4, as documented for `webhook_config`) and its mapping to
`alert.fired` / `alert.resolved` events.

Alertmanager sends camelCase (`startsAt`, `generatorURL`); opsbus payloads are snake_case, so the mapping
lives here, at the edge. Each alert of a notification becomes one event with a deterministic id derived from
(cluster, fingerprint, startsAt, status): Alertmanager re-sends a group every `repeat_interval` and retries
on errors, and JetStream's duplicate window turns those repeats into one stored event.

Unset `endsAt` arrives as `0001-01-01T00:00:00Z`. Severity comes from the `severity` label in the usual
vocabularies (`critical|page|error|high` -> critical, `warning|warn|medium` -> warning, `info|low|none` ->
info; anything else or absent -> warning). The cluster comes from the `cluster` label when it is a valid
subject token, else the gateway's configured cluster. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import AnyUrl, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from opsbus.common.events import Envelope, ObjectRef
from opsbus.common.events.payloads import AlertFired, AlertResolved
from opsbus.common.events.payloads.alert import AlertAnnotations, AlertSource
from opsbus.common.events.payloads.common import Severity, WorkloadRef
from opsbus.common.events.subjects import SubjectError, validate_token

_NAMESPACE_IDS = uuid.UUID("2b0c8d52-6f43-4c0e-9a8e-3c1f5e7d9a21")
_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)
_URL = TypeAdapter(AnyUrl)
_SEVERITY = {
    "critical": Severity.CRITICAL,
    "page": Severity.CRITICAL,
    "error": Severity.CRITICAL,
    "high": Severity.CRITICAL,
    "warning": Severity.WARNING,
    "warn": Severity.WARNING,
    "medium": Severity.WARNING,
    "info": Severity.INFO,
    "low": Severity.INFO,
    "none": Severity.INFO,
}
_KNOWN_ANNOTATIONS = {"summary", "description", "message", "runbook_url", "runbook", "dashboard_url", "dashboard"}


class AlertmanagerAlert(BaseModel):
    """One alert of a webhook notification."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime  # Alertmanager's field names, camelCase as it sends them
    endsAt: datetime | None = None
    generatorURL: str | None = None
    fingerprint: str | None = None


class AlertmanagerWebhook(BaseModel):
    """Alertmanager webhook payload, version 4."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "version": "4",
                    "groupKey": '{}:{alertname="KubePodCrashLooping"}',
                    "truncatedAlerts": 0,
                    "status": "firing",
                    "receiver": "opsbus",
                    "groupLabels": {"alertname": "KubePodCrashLooping"},
                    "commonLabels": {"alertname": "KubePodCrashLooping", "namespace": "payments"},
                    "commonAnnotations": {},
                    "externalURL": "http://alertmanager.example.com:9093",
                    "alerts": [
                        {
                            "status": "firing",
                            "labels": {
                                "alertname": "KubePodCrashLooping",
                                "namespace": "payments",
                                "pod": "checkout-7d9f8b6c5-x2x4q",
                                "severity": "critical",
                            },
                            "annotations": {"summary": "Pod payments/checkout-7d9f8b6c5-x2x4q is crash looping"},
                            "startsAt": "2025-03-14T09:26:53.000Z",
                            "endsAt": "0001-01-01T00:00:00Z",
                            "generatorURL": "http://prometheus.example.com:9090/graph?g0.expr=up",
                            "fingerprint": "8f3a9c2d41e07b65",
                        }
                    ],
                }
            ]
        },
    )

    version: Literal["4"]
    groupKey: str
    truncatedAlerts: int = Field(default=0, ge=0)
    status: Literal["firing", "resolved"]
    receiver: str
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""
    alerts: list[AlertmanagerAlert] = Field(max_length=1000)


@dataclass(frozen=True, slots=True)
class MappingProblem:
    """Why one alert could not become an event: `pointer` is an RFC 6901 pointer into the request body."""

    pointer: str
    detail: str


class MappingError(ValueError):
    def __init__(self, problems: list[MappingProblem]) -> None:
        super().__init__("; ".join(f"{p.pointer}: {p.detail}" for p in problems))
        self.problems = problems


def _url(value: str | None) -> AnyUrl | None:
    if not value:
        return None
    try:
        return _URL.validate_python(value)
    except ValidationError:
        return None


def _token(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return validate_token(value, what="label")
    except SubjectError:
        return None


def _fingerprint(alert: AlertmanagerAlert) -> str:
    fp = (alert.fingerprint or "").lower()
    if 16 <= len(fp) <= 64 and all(c in "0123456789abcdef" for c in fp):
        return fp
    canonical = "\x00".join(f"{k}\x01{v}" for k, v in sorted(alert.labels.items()))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def severity(labels: dict[str, str]) -> Severity:
    return _SEVERITY.get(labels.get("severity", "").strip().lower(), Severity.WARNING)


def annotations_of(alert: AlertmanagerAlert, alertname: str) -> AlertAnnotations:
    a = alert.annotations
    summary = (a.get("summary") or a.get("message") or a.get("description") or alertname)[:512]
    runbook = a.get("runbook_url") or a.get("runbook")
    dashboard = a.get("dashboard_url") or a.get("dashboard")
    extra = {k: v for k, v in a.items() if k not in _KNOWN_ANNOTATIONS}
    runbook_url, dashboard_url = _url(runbook), _url(dashboard)
    if runbook and runbook_url is None:
        extra["runbook_url"] = runbook
    if dashboard and dashboard_url is None:
        extra["dashboard_url"] = dashboard
    description = a.get("description") if a.get("summary") or a.get("message") else None
    return AlertAnnotations(
        summary=summary,
        description=description[:4096] if description else None,
        runbook_url=runbook_url,
        dashboard_url=dashboard_url,
        extra=extra,
    )


def object_of(labels: dict[str, str], namespace: str | None, alertname: str) -> ObjectRef:
    """The Kubernetes object the alert is about, as well as labels tell: pod, workload, node, else the alert."""
    if namespace and labels.get("pod"):
        return ObjectRef(kind="Pod", namespace=namespace, name=labels["pod"])
    for label, kind in (("deployment", "Deployment"), ("statefulset", "StatefulSet"), ("daemonset", "DaemonSet")):
        if namespace and labels.get(label):
            return ObjectRef(kind=kind, namespace=namespace, name=labels[label])
    if labels.get("node") and not namespace:
        return ObjectRef(kind="Node", name=labels["node"])
    return ObjectRef(kind="Alert", namespace=namespace, name=alertname)


def workload_of(labels: dict[str, str], namespace: str | None) -> WorkloadRef | None:
    if not namespace:
        return None
    for label, kind in (("deployment", "Deployment"), ("statefulset", "StatefulSet"), ("daemonset", "DaemonSet")):
        if labels.get(label):
            try:
                return WorkloadRef(kind=kind, namespace=namespace, name=labels[label])
            except ValidationError:
                return None
    return None


def event_id(cluster: str, fingerprint: str, starts_at: datetime, status: str, origin: str = "alertmanager") -> str:
    return str(uuid.uuid5(_NAMESPACE_IDS, f"{origin}:{cluster}:{fingerprint}:{starts_at.isoformat()}:{status}"))


def to_events(hook: AlertmanagerWebhook, *, default_cluster: str, now: datetime) -> list[Envelope]:
    """One `alert.fired` or `alert.resolved` envelope per alert; `MappingError` lists every alert that cannot map."""
    events: list[Envelope] = []
    problems: list[MappingProblem] = []
    for index, alert in enumerate(hook.alerts):
        where = f"/alerts/{index}"
        alertname = alert.labels.get("alertname", "")
        if not alertname:
            problems.append(MappingProblem(f"{where}/labels/alertname", "every alert needs an alertname label"))
            continue
        try:
            events.append(one_event(alert, alertname, default_cluster=default_cluster, now=now))
        except (ValidationError, ValueError) as exc:
            detail = (
                "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False))
                if isinstance(exc, ValidationError)
                else str(exc)
            )
            problems.append(MappingProblem(where, detail))
    if problems:
        raise MappingError(problems)
    return events


def one_event(
    alert: AlertmanagerAlert,
    alertname: str,
    *,
    default_cluster: str,
    now: datetime,
    source: AlertSource = AlertSource.ALERTMANAGER,
) -> Envelope:
    """One alert as an event; `source` names the system it came from (Alertmanager, or Zabbix through the same
    shape), which also keeps the two systems' deterministic event ids apart."""
    labels = alert.labels
    cluster = _token(labels.get("cluster")) or default_cluster
    namespace = _token(labels.get("namespace"))
    fingerprint = _fingerprint(alert)
    starts_at = alert.startsAt if alert.startsAt.tzinfo else alert.startsAt.replace(tzinfo=UTC)
    ends_at = alert.endsAt if alert.endsAt is None or alert.endsAt.tzinfo else alert.endsAt.replace(tzinfo=UTC)
    if ends_at is not None and ends_at <= _ZERO_TIME.replace(year=2):
        ends_at = None
    common: dict[str, Any] = {
        "fingerprint": fingerprint,
        "alertname": alertname,
        "severity": severity(labels),
        "labels": dict(labels),
        "annotations": annotations_of(alert, alertname),
        "starts_at": starts_at,
        "generator_url": _url(alert.generatorURL),
        "source": source,
        "workload": workload_of(labels, namespace),
    }
    payload: AlertFired | AlertResolved
    if alert.status == "firing":
        payload = AlertFired(**common, ends_at=ends_at if ends_at and ends_at > starts_at else None)
    else:
        end = ends_at if ends_at and ends_at >= starts_at else max(now, starts_at)
        payload = AlertResolved(**common, ends_at=end, resolution=source.value)
    fired_id = event_id(cluster, fingerprint, starts_at, "firing", source.value)
    eid = event_id(cluster, fingerprint, starts_at, alert.status, source.value)
    envelope = Envelope.build(
        payload,
        service="gateway",
        cluster=cluster,
        obj=object_of(labels, namespace, alertname),
        event_id=eid,
        time=now,
    )
    if alert.status == "resolved":
        # The resolution continues the chain its firing started, even though that event is not at hand.
        envelope = envelope.model_copy(update={"correlationid": fired_id, "causationid": fired_id})
    return envelope
