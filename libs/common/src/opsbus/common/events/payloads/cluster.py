"""`cluster.event`: a normalized change of one watched Kubernetes object.

The watcher publishes one event per ADDED/MODIFIED/DELETED it sees on Pods, Nodes, Deployments, ReplicaSets,
StatefulSets, DaemonSets, Jobs and events.k8s.io Events. The payload is a small summary (status, conditions,
owner, container states), never the full object: consumers that need more read the apiserver.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from pydantic import AwareDatetime, Field

from opsbus.common.events.envelope import EventPayload
from opsbus.common.events.payloads.common import (
    ConditionSummary,
    ContainerState,
    KubeEventSummary,
    OwnerRef,
    ReplicaCounts,
)


class ChangeType(StrEnum):
    """The watch event type that produced the change (a relist diff produces the same three)."""

    ADDED = "ADDED"
    MODIFIED = "MODIFIED"
    DELETED = "DELETED"


class ClusterEvent(EventPayload):
    """A watched Kubernetes object was added, modified or deleted."""

    event_type: ClassVar[str] = "io.opsbus.cluster.event.v1"

    change: ChangeType = Field(description="ADDED, MODIFIED or DELETED.")
    kind: str = Field(min_length=1, description="Object kind: Pod, Node, Deployment, ReplicaSet, Event, ...")
    api_version: str = Field(description="apiVersion of the object, e.g. `v1`, `apps/v1`, `events.k8s.io/v1`.")
    namespace: str | None = Field(default=None, description="Namespace; absent for cluster-scoped objects.")
    name: str = Field(min_length=1, description="Object name.")
    uid: str = Field(min_length=1, description="metadata.uid.")
    resource_version: str = Field(min_length=1, description="metadata.resourceVersion of the observed state.")
    generation: int | None = Field(default=None, ge=0, description="metadata.generation (workloads).")
    observed_generation: int | None = Field(default=None, ge=0, description="status.observedGeneration (workloads).")
    labels: dict[str, str] = Field(
        default_factory=dict, description="metadata.labels (Kubernetes keys, prefixes allowed)."
    )
    owner: OwnerRef | None = Field(default=None, description="The controlling owner, if any.")
    phase: str | None = Field(
        default=None,
        description="Summary of the object's state: Pod phase, `Ready`/`NotReady`/`Unknown` for nodes, "
        "`Complete`/`Failed` for jobs.",
    )
    conditions: tuple[ConditionSummary, ...] = Field(default=(), max_length=32, description="status.conditions.")
    replicas: ReplicaCounts | None = Field(default=None, description="Replica counts, for workloads.")
    node_name: str | None = Field(default=None, description="Node a pod is scheduled on.")
    containers: tuple[ContainerState, ...] = Field(
        default=(), max_length=64, description="Container states, for pods (init containers included)."
    )
    kube_event: KubeEventSummary | None = Field(
        default=None, description="The Kubernetes Event itself, when kind is `Event`."
    )
    deleted_at: AwareDatetime | None = Field(default=None, description="metadata.deletionTimestamp, when set.")
