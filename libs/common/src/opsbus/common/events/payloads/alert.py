"""`alert.fired` and `alert.resolved`: faults with a stable fingerprint, Alertmanager labels and evidence.

Two producers share these types: the watcher's detectors (`source=watcher`) and the gateway's Alertmanager
webhook receiver (`source=alertmanager`). Labels use Alertmanager's vocabulary so the notifier's routing tree
and the healer's policy matchers work the same on both. The evidence is what an on-call engineer opens first:
container states, the object's recent Kubernetes Events, and the last log lines of a crashing container.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar, Self

from pydantic import AnyUrl, AwareDatetime, Field, field_validator, model_validator

from opsbus.common.events.envelope import EventPayload
from opsbus.common.events.payloads.common import (
    ContainerState,
    Frozen,
    KubeEventSummary,
    LogExcerpt,
    Severity,
    WorkloadRef,
    check_label_names,
)


class AlertSource(StrEnum):
    WATCHER = "watcher"
    ALERTMANAGER = "alertmanager"
    ZABBIX = "zabbix"


class AlertAnnotations(Frozen):
    """Alertmanager annotations: the known keys as fields, any others in `extra`."""

    summary: str = Field(min_length=1, max_length=512, description="One line: what is wrong.")
    description: str | None = Field(default=None, max_length=4096, description="Details and likely cause.")
    runbook_url: AnyUrl | None = Field(default=None, description="Runbook for this alert.")
    dashboard_url: AnyUrl | None = Field(default=None, description="A dashboard showing the fault.")
    extra: dict[str, str] = Field(default_factory=dict, description="Any other annotations, verbatim.")


class MetricObservation(Frozen):
    """A metric value behind a saturation alert (memory near limit, CPU throttling, disk filling)."""

    name: str = Field(description="What was measured, e.g. `memory_working_set_ratio`.")
    value: float = Field(description="Observed value.")
    threshold: float | None = Field(default=None, description="Threshold the value crossed.")
    unit: str | None = Field(default=None, description="Unit of value and threshold, e.g. `ratio`, `bytes`.")
    query: str | None = Field(default=None, description="The metrics query that produced it (PromQL).")
    predicted_exhaustion_seconds: float | None = Field(
        default=None, ge=0, description="For trend alerts: seconds until the resource runs out at this rate."
    )


class AlertEvidence(Frozen):
    """What the detector saw when it fired: the on-call engineer's first look."""

    containers: tuple[ContainerState, ...] = Field(default=(), max_length=64, description="Container states.")
    events: tuple[KubeEventSummary, ...] = Field(
        default=(), max_length=20, description="Recent Kubernetes Events of the object, newest last."
    )
    logs: tuple[LogExcerpt, ...] = Field(default=(), max_length=8, description="Last log lines of failing containers.")
    metrics: tuple[MetricObservation, ...] = Field(default=(), max_length=20, description="Metric observations.")


class _Alert(EventPayload):
    """Fields common to fired and resolved alerts (abstract: no event type)."""

    fingerprint: str = Field(
        pattern=r"^[0-9a-f]{16,64}$",
        description="Stable identity of the alert (hex): the same fault keeps it while it lasts.",
    )
    alertname: str = Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Alert name, e.g. `KubePodCrashLooping`, `OOMKilled`.",
    )
    severity: Severity = Field(description="critical, warning or info.")
    labels: dict[str, str] = Field(
        description="Alertmanager labels: alertname, cluster, namespace, pod, container, node, workload, "
        "severity... Must contain `alertname` equal to the field."
    )
    annotations: AlertAnnotations = Field(description="summary, description, runbook_url, ...")
    starts_at: AwareDatetime = Field(description="When the fault began (Alertmanager `startsAt`).")
    generator_url: AnyUrl | None = Field(
        default=None, description="Link to what produced the alert (Alertmanager `generatorURL`)."
    )
    source: AlertSource = Field(description="watcher (opsbus detectors) or alertmanager (webhook receiver).")
    workload: WorkloadRef | None = Field(default=None, description="The workload the faulty object belongs to.")
    evidence: AlertEvidence = Field(default_factory=AlertEvidence, description="Container states, events, logs.")

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        return check_label_names(value)

    @model_validator(mode="after")
    def _alertname_label(self) -> Self:
        if self.labels.get("alertname") != self.alertname:
            raise ValueError(
                f"labels.alertname must equal alertname {self.alertname!r}, got {self.labels.get('alertname')!r}"
            )
        return self


class AlertFired(_Alert):
    """A fault started (or an Alertmanager alert is firing). Published once per fingerprint while firing."""

    event_type: ClassVar[str] = "io.opsbus.alert.fired.v1"

    ends_at: AwareDatetime | None = Field(
        default=None,
        description="Alertmanager's `endsAt` timeout for a firing alert; absent for watcher alerts.",
    )


class AlertResolved(_Alert):
    """The fault ended (the condition stayed absent for the watcher's confirmation bound, or its object was
    deleted) or Alertmanager resolved the alert."""

    event_type: ClassVar[str] = "io.opsbus.alert.resolved.v1"

    ends_at: AwareDatetime = Field(description="When the fault ended (Alertmanager `endsAt`).")
    resolution: str | None = Field(
        default=None,
        description="Why it resolved, e.g. `condition cleared`, `object deleted`, `alertmanager`.",
    )

    @model_validator(mode="after")
    def _ends_after_start(self) -> Self:
        if self.ends_at < self.starts_at:
            raise ValueError(f"ends_at {self.ends_at.isoformat()} is before starts_at {self.starts_at.isoformat()}")
        return self
