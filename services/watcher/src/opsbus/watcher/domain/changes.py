"""The change timeline as the watcher sees it: which cache changes are `change.recorded`, and their diff.

`record(observed)` compares an object's previous and new state (both as the cache keeps them: stripped, with
pod templates summarised and ConfigMap/Secret data reduced to digests by `objects.strip`) and returns the
`ChangeRecorded` payload, or None when nothing the timeline follows changed: a Deployment's status counters,
a node's heartbeat, a pod, a ReplicaSet. It never sees a Secret's value, so it cannot put one in an event.

The first list after a start is not a change (the informer says `initial`; the executor does not call this).
Ids are derived from the cluster, the object's uid, its resourceVersion and the change type, so two watcher
replicas that observe the same update publish the same id and JetStream's dedupe window stores one.
Pure: no I/O.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from opsbus.common.changes import Entry, short
from opsbus.common.changes import entry as _field
from opsbus.common.events.payloads.change import (
    CONTENT_DIGEST_KINDS,
    MAX_DIFF_ENTRIES,
    ChangeKind,
    ChangeOrigin,
    ChangeRecorded,
    FieldChange,
)
from opsbus.common.events.payloads.cluster import ChangeType
from opsbus.common.events.payloads.common import ResourceRef, WorkloadKind, WorkloadRef
from opsbus.watcher.domain.cache import Cache, Change
from opsbus.watcher.domain.objects import TEMPLATED, Obj, Resource, conditions, resource_version

_ID_NAMESPACE = uuid.UUID("5b0e6f3c-8a1d-4c2e-9f47-2d6a1c3b7e58")
_WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"})
_SUMMARY_MAX = 512
FOLLOWED = frozenset({*TEMPLATED, "ConfigMap", "Secret", "HorizontalPodAutoscaler", "Node"})


@dataclass(frozen=True)
class Observed:
    """One effective cache change of a followed object, with what `record` needs around it."""

    resource: Resource
    change: Change
    now: datetime
    cache: Cache | None = None  # to name the workloads that read a changed ConfigMap/Secret


def change_id(cluster: str, change: Change) -> str:
    """The same for every replica observing the same update of the same object."""
    meta = change.obj.get("metadata") or {}
    seed = f"change:{cluster}:{meta.get('uid')}:{resource_version(change.obj)}:{change.type.value}"
    return str(uuid.uuid5(_ID_NAMESPACE, seed))


def record(observed: Observed) -> ChangeRecorded | None:
    """The timeline entry for this change, or None when nothing the timeline follows changed."""
    change = observed.change
    kind = observed.resource.kind
    if kind not in FOLLOWED:
        return None
    if change.type == ChangeType.DELETED:
        entries: list[Entry] = [(ChangeKind.DELETED, existence(kind, change.obj, created=False))]
    elif change.type == ChangeType.ADDED:
        # A new object: its followed fields as the diff (images, keys' digests, taints), all under `created`.
        entries = [(ChangeKind.CREATED, existence(kind, change.obj, created=True))]
        entries += [(ChangeKind.CREATED, entry) for _, entry in _diff(kind, {}, change.obj)]
    else:
        entries = _diff(kind, change.old or {}, change.obj)
    if not entries:
        return None
    meta = change.obj.get("metadata") or {}
    ref = ResourceRef(
        kind=kind,
        name=str(meta.get("name")),
        namespace=meta.get("namespace") or None,
        api_version=observed.resource.api_version,
        uid=meta.get("uid") or None,
    )
    diffs = [entry for _, entry in entries]
    return ChangeRecorded(
        kinds=tuple(dict.fromkeys(k for k, _ in entries)),
        object=ref,
        workload=_workload(kind, change.obj),
        used_by=_used_by(observed.cache, ref) if kind in CONTENT_DIGEST_KINDS else (),
        diff=tuple(diffs[:MAX_DIFF_ENTRIES]),
        diff_truncated=len(diffs) > MAX_DIFF_ENTRIES,
        summary=summary(ref, entries),
        origin=ChangeOrigin.OBSERVED,
        observed_at=observed.now,
        resource_version=resource_version(change.obj) or None,
        generation=meta.get("generation"),
    )


def existence(kind: str, obj: Obj, *, created: bool) -> FieldChange:
    """The `metadata` entry of a creation or deletion: the object's name as its value, except for a ConfigMap or
    Secret, whose diff may carry nothing but digests (`ChangeRecorded` refuses any other value for them, and a
    refused payload used to break that kind's watch): there the entry carries no value, and the change's kind
    (`created`/`deleted`) says which it was; the name is in the event's `object` anyway."""
    if kind in CONTENT_DIGEST_KINDS:
        return FieldChange(path="metadata")
    name = _name(obj)
    return FieldChange(path="metadata", after=name) if created else FieldChange(path="metadata", before=name)


# --- diffs per kind --------------------------------------------------------------------------------------


def _diff(kind: str, old: Obj, new: Obj) -> list[Entry]:
    if kind in TEMPLATED:
        return workload_diff(old.get("spec") or {}, new.get("spec") or {})
    if kind in {"ConfigMap", "Secret"}:
        return config_diff(old.get("digests") or {}, new.get("digests") or {})
    if kind == "HorizontalPodAutoscaler":
        return hpa_diff(old.get("spec") or {}, new.get("spec") or {})
    if kind == "Node":
        return node_diff(old, new)
    return []


def workload_diff(old: Obj, new: Obj) -> list[Entry]:
    """Replicas and pod template (as `objects.template_summary` keeps it) of a Deployment/StatefulSet/DaemonSet."""
    out: list[Entry] = []
    if "replicas" in new or "replicas" in old:
        out += _field(ChangeKind.REPLICAS, "spec.replicas", old.get("replicas"), new.get("replicas"))
    before, after = old.get("template") or {}, new.get("template") or {}
    for group in ("initContainers", "containers"):
        out += _containers(group, _by_name(before.get(group)), _by_name(after.get(group)))
    out += _mapping(
        ChangeKind.TEMPLATE,
        "spec.template.metadata.annotations",
        before.get("annotations") or {},
        after.get("annotations") or {},
    )
    if before.get("other") != after.get("other"):
        out += _field(ChangeKind.TEMPLATE, "spec.template (other fields)", before.get("other"), after.get("other"))
    return out


def _containers(group: str, old: Mapping[str, Obj], new: Mapping[str, Obj]) -> list[Entry]:
    out: list[Entry] = []
    for name in _keys(old, new):
        path = f"spec.template.spec.{group}[{name}]"
        before, after = old.get(name), new.get(name)
        if before is None or after is None:
            image = (before or after or {}).get("image")
            out += _field(ChangeKind.TEMPLATE, path, image if before else None, image if after else None)
            continue
        out += _field(ChangeKind.IMAGE, f"{path}.image", before.get("image"), after.get("image"))
        for field, kind in (("command", ChangeKind.COMMAND), ("envFrom", ChangeKind.ENV)):
            out += _field(kind, f"{path}.{field}", before.get(field) or None, after.get(field) or None)
        out += _mapping(ChangeKind.ENV, f"{path}.env", before.get("env") or {}, after.get("env") or {})
        for part in ("requests", "limits"):
            out += _mapping(
                ChangeKind.RESOURCES,
                f"{path}.resources.{part}",
                (before.get("resources") or {}).get(part) or {},
                (after.get("resources") or {}).get(part) or {},
                dotted=True,
            )
    return out


def config_diff(old: Mapping[str, str], new: Mapping[str, str]) -> list[Entry]:
    """ConfigMap/Secret keys added, removed or changed, as digests (the cache holds nothing else)."""
    return _mapping(ChangeKind.CONFIG, "data", old, new)


def hpa_diff(old: Obj, new: Obj) -> list[Entry]:
    out: list[Entry] = []
    for field in ("scaleTargetRef", "minReplicas", "maxReplicas", "metrics", "behavior"):
        out += _field(ChangeKind.HPA, f"spec.{field}", old.get(field), new.get(field))
    return out


def node_diff(old: Obj, new: Obj) -> list[Entry]:
    """Condition statuses (not heartbeats), taints and cordoning of a node."""
    before = {t: str(c.get("status")) for t, c in conditions(old).items()}
    after = {t: str(c.get("status")) for t, c in conditions(new).items()}
    out = _mapping(ChangeKind.NODE_CONDITION, "status.conditions", before, after)
    out += _mapping(ChangeKind.NODE_TAINT, "spec.taints", _taints(old), _taints(new))
    old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
    out += _field(
        ChangeKind.NODE_TAINT,
        "spec.unschedulable",
        bool(old_spec.get("unschedulable")) if old else None,
        bool(new_spec.get("unschedulable")),
    )
    return out


def _taints(node: Obj) -> dict[str, str]:
    return {
        f"{t.get('key')}:{t.get('effect')}": str(t.get("value") or "")
        for t in (node.get("spec") or {}).get("taints") or []
        if isinstance(t, dict)
    }


# --- building blocks -------------------------------------------------------------------------------------


def _mapping(
    kind: ChangeKind, path: str, old: Mapping[str, Any], new: Mapping[str, Any], *, dotted: bool = False
) -> list[Entry]:
    out: list[Entry] = []
    for key in _keys(old, new):
        out += _field(kind, f"{path}.{key}" if dotted else f"{path}[{key}]", old.get(key), new.get(key))
    return out


def _keys(*maps: Mapping[str, Any]) -> list[str]:
    return sorted({key for m in maps for key in m})


def _by_name(items: Any) -> dict[str, Obj]:
    return {str(c.get("name")): c for c in items or [] if isinstance(c, dict)}


def _name(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{ns}/{meta.get('name')}" if ns else str(meta.get("name"))


def _workload(kind: str, obj: Obj) -> WorkloadRef | None:
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace")
    if kind in TEMPLATED and namespace:
        return WorkloadRef(kind=cast(WorkloadKind, kind), namespace=namespace, name=str(meta.get("name")))
    if kind == "HorizontalPodAutoscaler" and namespace:
        target = (obj.get("spec") or {}).get("scaleTargetRef") or {}
        if target.get("kind") in _WORKLOAD_KINDS and target.get("name"):
            return WorkloadRef(kind=target["kind"], namespace=namespace, name=str(target["name"]))
    return None


def _used_by(cache: Cache | None, ref: ResourceRef) -> tuple[WorkloadRef, ...]:
    if cache is None or ref.namespace is None:
        return ()
    wanted = f"{ref.kind}/{ref.name}"
    users: list[WorkloadRef] = []
    for kind in sorted(TEMPLATED):
        for key, obj in cache.items(kind):
            namespace, _, name = key.partition("/")
            refs = ((obj.get("spec") or {}).get("template") or {}).get("configRefs") or ()
            if namespace == ref.namespace and wanted in refs:
                users.append(WorkloadRef(kind=cast(WorkloadKind, kind), namespace=namespace, name=name))
    return tuple(sorted(users, key=str)[:64])


def summary(ref: ResourceRef, entries: Iterable[Entry]) -> str:
    """One line: `Deployment payments/web: containers[app].image a -> b; spec.replicas 3 -> 5`."""
    parts = [_describe(kind, d, digests=ref.kind in CONTENT_DIGEST_KINDS) for kind, d in entries]
    head = f"{ref.kind} {ref.namespace + '/' if ref.namespace else ''}{ref.name}: "
    text = head + "; ".join(parts[:4]) + (f" (+{len(parts) - 4} more)" if len(parts) > 4 else "")
    return text if len(text) <= _SUMMARY_MAX else text[: _SUMMARY_MAX - 1] + "\u2026"


def _describe(kind: ChangeKind, entry: FieldChange, *, digests: bool) -> str:
    path = entry.path.removeprefix("spec.template.spec.")
    if path == "metadata" and kind in {ChangeKind.CREATED, ChangeKind.DELETED}:
        return kind.value
    if digests or entry.before is None or entry.after is None:
        verb = "added" if entry.before is None else "removed" if entry.after is None else "changed"
        return f"{path} {verb}"
    return f"{path} {short(entry.before)} -> {short(entry.after)}"
