"""`diagnosis.made` and `diagnosis.revised`: the analyzer's answer to "why" for one incident.

An incident is the alerts of one workload (or node) that fire together; it is named by the id of its first
`alert.fired` event, which is also the correlation id the gateway files the incident under. A diagnosis ranks
candidate causes, best first, each with the evidence it rests on (change event ids, Kubernetes Event reasons,
a log template and a sample line, a node name), a confidence and the healer action it suggests, and lists
what was examined (`checked`). When nothing examined explains the incident the outcome is `unknown` and the
cause list is empty: a diagnosis never invents a cause.

`diagnosis.made` is the first answer (revision 1); `diagnosis.revised` follows when later evidence (another
alert of the incident, a change, a deploy outcome) changes the ranking.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar, Self

from pydantic import AwareDatetime, Field, model_validator

from opsbus.common.events.envelope import EventPayload
from opsbus.common.events.payloads.common import Frozen, ResourceRef, WorkloadRef
from opsbus.common.events.payloads.recovery import ActionKind


class CauseKind(StrEnum):
    """What kind of thing caused the incident."""

    ROLLOUT = "rollout"  # a pod template change: image, env, command, probes (by the deployer or anyone)
    CONFIG_CHANGE = "config_change"  # a ConfigMap or Secret the workload reads changed content
    RESOURCE_CHANGE = "resource_change"  # requests or limits changed (a memory-limit cut, a request raise)
    SCALING = "scaling"  # replicas or an HPA changed
    NODE = "node"  # a node the failing pods share went NotReady, came under pressure or was tainted
    SHARED_DEPENDENCY = "shared_dependency"  # something the failing pods all depend on is failing
    LOG_SIGNATURE = "log_signature"  # a log template seen only in the failing pods
    OPSBUS_ACTION = "opsbus_action"  # a write opsbus itself made (restart, resize, scale)


class EvidenceKind(StrEnum):
    CHANGE = "change"  # ref: id of the change.recorded event
    DEPLOY = "deploy"  # ref: id of the deploy.* event
    KUBE_EVENT = "kube_event"  # ref: the Event's reason
    CONTAINER_STATE = "container_state"  # ref: the state's reason, e.g. OOMKilled, ImagePullBackOff
    LOG_TEMPLATE = "log_template"  # ref: the mined template; detail: a sample line
    NODE = "node"  # ref: node name
    ALERT = "alert"  # ref: fingerprint of an alert of the incident
    METRIC = "metric"  # ref: the PromQL query; detail: the step (a rise of the level) it showed


class Evidence(Frozen):
    """One thing a cause rests on, by reference: a reader can look each one up."""

    kind: EvidenceKind = Field(
        description="change, deploy, kube_event, container_state, log_template, node, alert, metric."
    )
    ref: str = Field(
        min_length=1,
        max_length=1024,
        description="The reference: an event id, an Event or state reason, a log template, a node name.",
    )
    detail: str | None = Field(
        default=None, max_length=1024, description="What it shows, e.g. the change summary or a sample log line."
    )
    at: AwareDatetime | None = Field(default=None, description="When it happened, if known.")


class ScoreParts(Frozen):
    """The three terms a cause's confidence is built from, each 0-1, so a ranking can be explained."""

    proximity: float = Field(ge=0, le=1, description="How close in time before the first alert (1 = just before).")
    scope: float = Field(ge=0, le=1, description="How much of the incident it covers (same workload, same pods).")
    signature: float = Field(ge=0, le=1, description="How strongly the failure matches the change's known signature.")


class Cause(Frozen):
    """One candidate cause, with its evidence, confidence and the healer action that would address it."""

    kind: CauseKind = Field(description="rollout, config_change, resource_change, node, log_signature, ...")
    summary: str = Field(min_length=1, max_length=512, description="One sentence an SRE reads.")
    confidence: float = Field(ge=0, le=1, description="How sure the analyzer is, 0-1.")
    target: ResourceRef | None = Field(
        default=None, description="The object at fault: the changed workload or config object, the node."
    )
    evidence: tuple[Evidence, ...] = Field(min_length=1, max_length=20, description="What the cause rests on.")
    suggested_action: ActionKind = Field(
        description="A healer action that addresses it: rollback, rollout_restart, raise_memory_limit, "
        "cordon_node, notify_only, ..."
    )
    scores: ScoreParts = Field(description="The terms of the confidence.")


class DiagnosisOutcome(StrEnum):
    EXPLAINED = "explained"  # at least one cause, ranked
    UNKNOWN = "unknown"  # nothing examined explains the incident: no cause is offered


class Checked(Frozen):
    """One source the analyzer examined, and how much of it."""

    source: str = Field(
        min_length=1,
        max_length=64,
        description="changes, deploys, kube_events, container_states, logs, nodes, ...",
    )
    count: int = Field(ge=0, description="How many items of it were examined.")
    detail: str | None = Field(default=None, max_length=512, description="The window or scope examined.")


class IncidentRef(Frozen):
    """The incident diagnosed: named by its first alert's event id (the gateway's incident id)."""

    incident_id: str = Field(
        min_length=1, max_length=200, description="Id of the first alert.fired event; the incident's correlation id."
    )
    alert_fingerprint: str = Field(description="Fingerprint of the first alert.")
    alertname: str = Field(description="Name of the first alert.")
    workload: WorkloadRef | None = Field(default=None, description="The workload the incident is about, if any.")
    node: str | None = Field(default=None, description="The node the incident is about, if it is a node's.")
    first_alert_at: AwareDatetime = Field(description="When the first alert's fault began (`startsAt`).")
    alerts: tuple[str, ...] = Field(
        min_length=1, max_length=256, description="Fingerprints of every alert of the incident so far."
    )


class _Diagnosis(EventPayload):
    """Fields of every diagnosis (abstract: no event type)."""

    incident: IncidentRef = Field(description="The incident diagnosed.")
    revision: int = Field(ge=1, description="1 for diagnosis.made, then +1 per revision.")
    outcome: DiagnosisOutcome = Field(description="explained, or unknown when nothing explains it.")
    causes: tuple[Cause, ...] = Field(
        default=(), max_length=10, description="Candidate causes, best first; empty when unknown."
    )
    checked: tuple[Checked, ...] = Field(min_length=1, max_length=32, description="What was examined.")
    diagnosed_at: AwareDatetime = Field(description="When this diagnosis was made.")

    @model_validator(mode="after")
    def _outcome_matches_causes(self) -> Self:
        if (self.outcome is DiagnosisOutcome.UNKNOWN) != (not self.causes):
            raise ValueError("outcome is unknown exactly when no cause is given")
        confidences = [c.confidence for c in self.causes]
        if confidences != sorted(confidences, reverse=True):
            raise ValueError("causes must be ranked best first (by confidence)")
        return self

    def top(self) -> Cause | None:
        """The best-ranked cause, or None when the outcome is unknown."""
        return self.causes[0] if self.causes else None


class DiagnosisMade(_Diagnosis):
    """The first diagnosis of an incident, published shortly after its first alert."""

    event_type: ClassVar[str] = "io.opsbus.diagnosis.made.v1"

    @model_validator(mode="after")
    def _first(self) -> Self:
        if self.revision != 1:
            raise ValueError("diagnosis.made is revision 1; later ones are diagnosis.revised")
        return self


class DiagnosisRevised(_Diagnosis):
    """A later diagnosis of the same incident whose ranking differs from the one before."""

    event_type: ClassVar[str] = "io.opsbus.diagnosis.revised.v1"

    reason: str = Field(
        min_length=1, max_length=512, description="What arrived that changed the ranking, e.g. `change <id>`."
    )
    previous_top: CauseKind | None = Field(default=None, description="The kind of the previous top cause, if any.")

    @model_validator(mode="after")
    def _later(self) -> Self:
        if self.revision < 2:
            raise ValueError("diagnosis.revised has revision 2 or more")
        return self


__all__ = [
    "Cause",
    "CauseKind",
    "Checked",
    "DiagnosisMade",
    "DiagnosisOutcome",
    "DiagnosisRevised",
    "Evidence",
    "EvidenceKind",
    "IncidentRef",
    "ScoreParts",
]
