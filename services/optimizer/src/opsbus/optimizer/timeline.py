"""The optimizer's writes on the change timeline: an applied resize or scale as `change.recorded`.

Why this module exists: a right-sizing the optimizer applies (a memory limit lowered, replicas cut) can be
the cause of the next incident, and the analyzer can only say so if the write is on the timeline with who made
it: the optimizer on its own, caused by the OOM alert it answered, or the person who applied a recommendation
(origin `user`). The executor adds the event to its outbox in the transaction that records the applied change.
The id derives from the workload and its resourceVersion after the patch, so a replay records it once.
Pure: builds the event, no I/O.
"""

from __future__ import annotations

from datetime import UTC, datetime

from opsbus.common.changes import Entry, Write, entry, written
from opsbus.common.events import Envelope
from opsbus.common.events.payloads import ChangeKind
from opsbus.common.events.payloads.common import ResourceQuantities
from opsbus.common.events.payloads.scale import ScaleApplied

SERVICE = "optimizer"


def applied_change(
    cluster: str, applied: ScaleApplied, resource_version: str | None, cause: Envelope | None, now: float
) -> Envelope:
    """`change.recorded` for the patch that carried out `applied` at `now` (epoch seconds; never a dry run)."""
    entries: list[Entry] = []
    for c in applied.containers:
        path = f"spec.template.spec.containers[{c.container}].resources"
        for part in ("requests", "limits"):
            old: ResourceQuantities = getattr(c.current, part)
            new: ResourceQuantities = getattr(c.recommended, part)
            entries += entry(ChangeKind.RESOURCES, f"{path}.{part}.cpu", _cpu(old), _cpu(new))
            entries += entry(ChangeKind.RESOURCES, f"{path}.{part}.memory", old.memory_bytes, new.memory_bytes)
    if applied.replicas is not None:
        entries += entry(ChangeKind.REPLICAS, "spec.replicas", applied.replicas.current, applied.replicas.recommended)
    workload = applied.workload
    write = Write(
        action="scale.apply",
        object=workload.as_resource_ref(),
        workload=workload,
        entries=entries,
        detail=f"recommendation {applied.recommendation_id} ({applied.mode.value})",
        resource_version=resource_version,
    )
    key = f"{workload}:{resource_version or applied.recommendation_id}"
    at = datetime.fromtimestamp(now, UTC)
    return written(write, service=SERVICE, cluster=cluster, key=key, now=at, cause=cause, actor=applied.applied_by)


def _cpu(q: ResourceQuantities) -> str | None:
    return f"{q.cpu_millicores}m" if q.cpu_millicores is not None else None
