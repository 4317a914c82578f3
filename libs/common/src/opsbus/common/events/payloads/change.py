"""`change.recorded`: one entry of the change timeline (what changed on a workload, config object or node).

The timeline is what makes a diagnosis possible ("the crash started 40 s after the image changed"): the watcher
records what it observes in the cluster (pod template, ConfigMap/Secret content, replicas, HPAs, node conditions
and taints) and the deployer, healer and optimizer record their own writes, with the request or alert that
caused them in the envelope's `causationid`/`correlationid`.

The diff is a summary, never the object: for ConfigMaps and Secrets it holds only a content digest per key
(`sha256:<hex>`), and the model refuses anything else for them, so a Secret's value cannot travel on the bus
even by a producer's mistake.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import ClassVar, Self

from pydantic import AwareDatetime, Field, model_validator

from opsbus.common.events.envelope import EventPayload
from opsbus.common.events.payloads.common import Actor, Frozen, ResourceRef, WorkloadRef

# Kinds whose diffs may only carry content digests.
CONTENT_DIGEST_KINDS = frozenset({"ConfigMap", "Secret"})
DIGEST_PATTERN = re.compile(r"^sha256:[0-9a-f]{16,64}$")
MAX_DIFF_ENTRIES = 64
MAX_VALUE_CHARS = 1024


class ChangeKind(StrEnum):
    """What aspect of the object changed (one change may have several, e.g. image and env in one rollout)."""

    IMAGE = "image"
    ENV = "env"
    COMMAND = "command"
    RESOURCES = "resources"
    TEMPLATE = "template"  # other pod template fields (probes, ports, volumes, labels...)
    CONFIG = "config"  # ConfigMap/Secret content (digests only)
    REPLICAS = "replicas"
    HPA = "hpa"
    NODE_CONDITION = "node_condition"
    NODE_TAINT = "node_taint"
    POLICY = "policy"
    ACTION = "action"  # a write opsbus itself made (restart, rollback, scale, resize, cordon...)
    CREATED = "created"
    DELETED = "deleted"


class ChangeOrigin(StrEnum):
    """Who made the change, as far as opsbus knows."""

    OBSERVED = "observed"  # seen in the cluster; nobody in opsbus made it
    DEPLOYER = "deployer"
    HEALER = "healer"
    OPTIMIZER = "optimizer"
    USER = "user"  # a human through the gateway (a policy edit, an applied recommendation)


class FieldChange(Frozen):
    """One changed field: its path in the object, the value before and after (absent = not set)."""

    path: str = Field(
        min_length=1,
        max_length=512,
        description="Path in the object, e.g. `spec.template.spec.containers[app].image`, `data[DB_URL]`, "
        "`status.conditions[Ready]`, `spec.taints[node.kubernetes.io/unreachable:NoSchedule]`, `spec.replicas`.",
    )
    before: str | None = Field(
        default=None, max_length=MAX_VALUE_CHARS, description="Value before (rendered, truncated); absent when added."
    )
    after: str | None = Field(
        default=None, max_length=MAX_VALUE_CHARS, description="Value after (rendered, truncated); absent when removed."
    )


class ChangeRecorded(EventPayload):
    """Something changed on a workload, config object, autoscaler, node or policy, observed or made by opsbus."""

    event_type: ClassVar[str] = "io.opsbus.change.recorded.v1"

    kinds: tuple[ChangeKind, ...] = Field(
        min_length=1, max_length=16, description="What changed (image, env, config, replicas, node_taint, ...)."
    )
    object: ResourceRef = Field(description="The object that changed (Deployment, ConfigMap, Secret, Node, ...).")
    workload: WorkloadRef | None = Field(
        default=None, description="The workload concerned: the object itself, or the HPA's scale target."
    )
    used_by: tuple[WorkloadRef, ...] = Field(
        default=(),
        max_length=64,
        description="ConfigMaps and Secrets: the workloads whose pod template reads the object (env, envFrom, "
        "volumes), as far as the watcher's cache knows them.",
    )
    diff: tuple[FieldChange, ...] = Field(
        default=(),
        max_length=MAX_DIFF_ENTRIES,
        description="Changed fields, before and after. ConfigMaps and Secrets: `sha256:` digests per key only.",
    )
    diff_truncated: bool = Field(default=False, description="True when more fields changed than `diff` lists.")
    summary: str = Field(
        min_length=1, max_length=512, description="One line for humans, e.g. `image app: checkout:1.41 -> 1.42`."
    )
    origin: ChangeOrigin = Field(description="observed (seen in the cluster) or the opsbus service / user that wrote.")
    actor: Actor | None = Field(
        default=None, description="Who wrote it, when opsbus knows (its own service, the user or API key)."
    )
    action: str | None = Field(
        default=None,
        max_length=128,
        description="For opsbus's own writes: what it did, e.g. `rollout_restart`, `rollback`, `deploy`, `resize`.",
    )
    observed_at: AwareDatetime = Field(description="When the change was observed or made.")
    resource_version: str | None = Field(default=None, description="metadata.resourceVersion after the change.")
    generation: int | None = Field(default=None, ge=0, description="metadata.generation after the change.")

    @model_validator(mode="after")
    def _digests_only(self) -> Self:
        if self.object.kind in CONTENT_DIGEST_KINDS:
            for entry in self.diff:
                for value in (entry.before, entry.after):
                    if value is not None and not DIGEST_PATTERN.match(value):
                        raise ValueError(
                            f"{self.object.kind} diff entry {entry.path!r} must carry `sha256:` digests, not values"
                        )
        return self


__all__ = [
    "CONTENT_DIGEST_KINDS",
    "DIGEST_PATTERN",
    "MAX_DIFF_ENTRIES",
    "MAX_VALUE_CHARS",
    "ChangeKind",
    "ChangeOrigin",
    "ChangeRecorded",
    "FieldChange",
]
