"""The change timeline as the planner sees it: one `Entry` per change, from `change.recorded` or a deployer
event, reduced to what scoring needs (when, what object, which workload, what kinds of change, the diff).

Pure: the executor stores entries and hands them back; nothing here reads a database or the bus.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opsbus.common.events.payloads import DeployRolledBack, DeployStarted
from opsbus.common.events.payloads.change import ChangeRecorded


@dataclass(frozen=True, slots=True)
class FieldDiff:
    path: str
    before: str | None
    after: str | None


@dataclass(frozen=True, slots=True)
class Entry:
    """One change, in one namespace (None for cluster-scoped objects such as nodes)."""

    event_id: str
    at: datetime
    source: str  # "change" (change.recorded) or "deploy" (a deployer event)
    namespace: str | None
    object_kind: str
    object_name: str
    workload_kind: str | None
    workload_name: str | None
    kinds: frozenset[str]  # ChangeKind values; a deploy is {"image"} (or {"template"} without images)
    summary: str
    origin: str
    diff: tuple[FieldDiff, ...] = ()
    used_by: frozenset[tuple[str, str]] = frozenset()  # ConfigMaps/Secrets: (kind, name) of workloads reading it

    def touches_workload(self, kind: str, name: str) -> bool:
        return (self.workload_kind, self.workload_name) == (kind, name) or (
            (self.object_kind, self.object_name) == (kind, name)
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "at": self.at.isoformat(),
            "source": self.source,
            "namespace": self.namespace,
            "object_kind": self.object_kind,
            "object_name": self.object_name,
            "workload_kind": self.workload_kind,
            "workload_name": self.workload_name,
            "kinds": sorted(self.kinds),
            "summary": self.summary,
            "origin": self.origin,
            "diff": [[d.path, d.before, d.after] for d in self.diff],
            "used_by": sorted([k, n] for k, n in self.used_by),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Entry:
        return cls(
            event_id=data["event_id"],
            at=datetime.fromisoformat(data["at"]),
            source=data["source"],
            namespace=data["namespace"],
            object_kind=data["object_kind"],
            object_name=data["object_name"],
            workload_kind=data["workload_kind"],
            workload_name=data["workload_name"],
            kinds=frozenset(data["kinds"]),
            summary=data["summary"],
            origin=data["origin"],
            diff=tuple(FieldDiff(p, b, a) for p, b, a in data["diff"]),
            used_by=frozenset((k, n) for k, n in data.get("used_by", [])),
        )


def from_change(event_id: str, change: ChangeRecorded) -> Entry:
    w = change.workload
    return Entry(
        event_id=event_id,
        at=change.observed_at,
        source="change",
        namespace=change.object.namespace,
        object_kind=change.object.kind,
        object_name=change.object.name,
        workload_kind=w.kind if w else None,
        workload_name=w.name if w else None,
        kinds=frozenset(k.value for k in change.kinds),
        summary=change.summary,
        origin=change.origin.value,
        diff=tuple(FieldDiff(d.path, d.before, d.after) for d in change.diff),
        used_by=frozenset((u.kind, u.name) for u in change.used_by),
    )


def from_deploy(event_id: str, at: datetime, deploy: DeployStarted | DeployRolledBack) -> Entry:
    w = deploy.workload
    images = deploy.images if isinstance(deploy, DeployStarted) else {}
    if isinstance(deploy, DeployRolledBack):
        summary = f"rollback of {w.kind}/{w.name} (deployment {deploy.deployment_id})"
    elif images:
        shown = ", ".join(f"{c}={i}" for c, i in sorted(images.items()))
        summary = f"rollout of {w.kind}/{w.name} started: {shown}"
    else:
        summary = f"rollout of {w.kind}/{w.name} started ({deploy.strategy.value})"
    return Entry(
        event_id=event_id,
        at=at,
        source="deploy",
        namespace=w.namespace,
        object_kind=w.kind,
        object_name=w.name,
        workload_kind=w.kind,
        workload_name=w.name,
        kinds=frozenset({"image"} if images else {"template"}),
        summary=summary[:512],
        origin="deployer",
        diff=tuple(FieldDiff(f"spec.template.spec.containers[{c}].image", None, i) for c, i in sorted(images.items())),
    )
