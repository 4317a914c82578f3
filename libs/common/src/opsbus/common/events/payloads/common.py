"""Sub-models shared by several event payloads: references, actors, container and resource snapshots.

Everything here is a frozen value object with `extra="forbid"`, so a typo in a producer fails at the
producer, not three services later. Field descriptions flow into the generated JSON Schemas and the
AsyncAPI document, so they are written for the teams that consume the events.

Quantities are normalised numbers (millicores, bytes), never Kubernetes quantity strings, so consumers can
compare and add them without a quantity parser. This module must stay free of I/O.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from opsbus.common.events.envelope import ObjectRef

# Kubernetes names: DNS-1123 subdomain (most objects) and label (containers, namespaces).
_DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"
_DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
_PROM_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


class Frozen(BaseModel):
    """Base of payload sub-models: immutable, unknown fields rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Severity(StrEnum):
    """How urgent a fault is, in Alertmanager's customary vocabulary."""

    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


class ActorKind(StrEnum):
    SERVICE = "service"
    USER = "user"
    APIKEY = "apikey"


class Actor(Frozen):
    """Who made a decision or a call: an opsbus service, a human (OIDC subject) or an API key."""

    kind: ActorKind = Field(description="service (an opsbus service), user (OIDC subject) or apikey.")
    id: str = Field(
        min_length=1,
        max_length=253,
        description="Service name (e.g. `healer`), OIDC subject or API key id (never the key itself).",
    )
    display_name: str | None = Field(
        default=None, max_length=253, description="Human-readable name or e-mail, for display only."
    )


class ResourceRef(Frozen):
    """Any Kubernetes object: the target of an action or the object an audit entry is about."""

    kind: str = Field(min_length=1, max_length=63, description="Kubernetes kind, e.g. `Pod`, `Node`.")
    name: str = Field(min_length=1, max_length=253, description="Object name.")
    namespace: str | None = Field(
        default=None,
        pattern=_DNS1123_LABEL,
        description="Namespace; absent for cluster-scoped objects (Node, Namespace, ...).",
    )
    api_version: str | None = Field(default=None, description="apiVersion, e.g. `apps/v1`, when it matters.")
    uid: str | None = Field(default=None, description="metadata.uid, to tell a recreated object from its predecessor.")

    def as_object_ref(self) -> ObjectRef:
        """The envelope's reference (CloudEvents `subject`) for this object."""
        return ObjectRef(kind=self.kind, name=self.name, namespace=self.namespace)


WorkloadKind = Literal["Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"]
_API_VERSIONS: dict[str, str] = {
    "Deployment": "apps/v1",
    "StatefulSet": "apps/v1",
    "DaemonSet": "apps/v1",
    "ReplicaSet": "apps/v1",
    "Job": "batch/v1",
    "CronJob": "batch/v1",
}


class WorkloadRef(Frozen):
    """A namespaced workload: the unit deployments, scaling and most remediations act on."""

    kind: WorkloadKind = Field(description="Workload kind.")
    namespace: str = Field(pattern=_DNS1123_LABEL, description="Namespace of the workload.")
    name: str = Field(pattern=_DNS1123_SUBDOMAIN, description="Name of the workload.")

    def as_object_ref(self) -> ObjectRef:
        return ObjectRef(kind=self.kind, name=self.name, namespace=self.namespace)

    def as_resource_ref(self) -> ResourceRef:
        return ResourceRef(
            kind=self.kind, name=self.name, namespace=self.namespace, api_version=_API_VERSIONS[self.kind]
        )

    def __str__(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"


class OwnerRef(Frozen):
    """The controlling owner of an object (metadata.ownerReferences with controller=true)."""

    kind: str = Field(description="Owner kind, e.g. `ReplicaSet`.")
    name: str = Field(description="Owner name.")
    uid: str | None = Field(default=None, description="Owner uid.")


class ConditionSummary(Frozen):
    """One status condition of an object (Ready, Available, Progressing, MemoryPressure, ...)."""

    type: str = Field(description="Condition type.")
    status: Literal["True", "False", "Unknown"] = Field(description="Condition status, as Kubernetes spells it.")
    reason: str | None = Field(default=None, description="Machine-readable reason, e.g. `ProgressDeadlineExceeded`.")
    message: str | None = Field(default=None, max_length=1024, description="Human-readable message, truncated.")
    last_transition_time: AwareDatetime | None = Field(default=None, description="When the status last changed.")


class ReplicaCounts(Frozen):
    """Replica counts of a workload, as its status reports them."""

    desired: int = Field(ge=0, description="spec.replicas.")
    updated: int | None = Field(default=None, ge=0, description="Replicas running the newest pod template.")
    ready: int | None = Field(default=None, ge=0, description="Ready replicas.")
    available: int | None = Field(default=None, ge=0, description="Available replicas (ready for minReadySeconds).")
    unavailable: int | None = Field(default=None, ge=0, description="Unavailable replicas.")


ContainerStateName = Literal["waiting", "running", "terminated", "unknown"]


class ContainerState(Frozen):
    """A container's state as the kubelet reports it, with its last termination (the previous crash)."""

    name: str = Field(pattern=_DNS1123_LABEL, description="Container name.")
    image: str | None = Field(default=None, description="Image reference the container runs.")
    init: bool = Field(default=False, description="Whether this is an init container.")
    ready: bool = Field(default=False, description="Whether the container passes its readiness probe.")
    restart_count: int = Field(default=0, ge=0, description="Restarts since the pod started.")
    state: ContainerStateName = Field(description="Current state.")
    reason: str | None = Field(
        default=None, description="Reason of the current state, e.g. `CrashLoopBackOff`, `ImagePullBackOff`."
    )
    message: str | None = Field(default=None, max_length=1024, description="Message of the current state, truncated.")
    exit_code: int | None = Field(default=None, description="Exit code when terminated.")
    started_at: AwareDatetime | None = Field(default=None, description="When the current state began.")
    last_termination_reason: str | None = Field(
        default=None, description="Reason of the previous termination, e.g. `OOMKilled`, `Error`."
    )
    last_exit_code: int | None = Field(default=None, description="Exit code of the previous termination.")
    last_finished_at: AwareDatetime | None = Field(default=None, description="When the previous run ended.")


class KubeEventSummary(Frozen):
    """A Kubernetes Event (events.k8s.io/v1) about an object, condensed."""

    type: Literal["Normal", "Warning"] = Field(description="Event type.")
    reason: str = Field(description="Reason, e.g. `BackOff`, `FailedScheduling`, `Killing`.")
    message: str = Field(max_length=1024, description="Note of the event, truncated.")
    count: int = Field(default=1, ge=1, description="How many times it occurred (series count).")
    first_seen: AwareDatetime | None = Field(default=None, description="First occurrence.")
    last_seen: AwareDatetime | None = Field(default=None, description="Latest occurrence.")
    reporting_controller: str | None = Field(default=None, description="Who reported it, e.g. `default-scheduler`.")
    regarding: ResourceRef | None = Field(default=None, description="The object the event is about.")


class LogExcerpt(Frozen):
    """The last log lines of a container, usually of its previous (crashed) run."""

    container: str = Field(pattern=_DNS1123_LABEL, description="Container the lines come from.")
    previous: bool = Field(default=False, description="True when the lines are from the previous, terminated run.")
    lines: tuple[str, ...] = Field(max_length=200, description="Last lines, oldest first, each truncated.")
    truncated: bool = Field(default=False, description="True when earlier lines were dropped.")


class ResourceQuantities(Frozen):
    """CPU and memory amounts, normalised to millicores and bytes (absent = not set)."""

    cpu_millicores: int | None = Field(default=None, ge=0, description="CPU in millicores (1 core = 1000).")
    memory_bytes: int | None = Field(default=None, ge=0, description="Memory in bytes.")


class ResourceRequirements(Frozen):
    """Requests and limits of one container."""

    requests: ResourceQuantities = Field(default_factory=ResourceQuantities, description="resources.requests.")
    limits: ResourceQuantities = Field(default_factory=ResourceQuantities, description="resources.limits.")


def check_label_names(labels: dict[str, str]) -> dict[str, str]:
    """Reject label names Prometheus/Alertmanager would reject, so routing matchers can rely on them."""
    bad = sorted(name for name in labels if not _PROM_LABEL_NAME.match(name))
    if bad:
        raise ValueError(f"label names {bad} are invalid: use [a-zA-Z_][a-zA-Z0-9_]*")
    return labels


__all__ = [
    "Actor",
    "ActorKind",
    "ConditionSummary",
    "ContainerState",
    "ContainerStateName",
    "Frozen",
    "KubeEventSummary",
    "LogExcerpt",
    "OwnerRef",
    "ReplicaCounts",
    "ResourceQuantities",
    "ResourceRef",
    "ResourceRequirements",
    "Severity",
    "WorkloadKind",
    "WorkloadRef",
    "check_label_names",
]
