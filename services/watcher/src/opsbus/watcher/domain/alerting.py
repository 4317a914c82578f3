"""The alert book: fire once per fingerprint while firing, resolve with hysteresis, ids that replicas share.

`AlertBook.evaluate(present, deleted, now)` compares the findings present now with the alerts firing and
returns decisions (data): `Fire` for a new fingerprint, `Resolve` once a firing alert's condition has been
absent for `resolve_after` (at once when its object was deleted). A condition that returns within the
hysteresis keeps the alert firing without a second fire.

Event ids are derived, not random: uuid5(fingerprint, startsAt) for the fire and for the resolve. `startsAt`
comes from the object's status (see `detecting`), so two replicas watching the same cluster build the same
ids and JetStream's Nats-Msg-Id dedupe stores one. Across restarts the book is rebuilt from the ALERT stream
(`restore`), so a fault that is still there does not fire again and one that cleared meanwhile resolves.
Pure: no I/O.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from opsbus.common.events.payloads.alert import (
    AlertAnnotations,
    AlertEvidence,
    AlertFired,
    AlertResolved,
    AlertSource,
)
from opsbus.common.events.payloads.common import KubeEventSummary, LogExcerpt, ResourceRef
from opsbus.watcher.domain.detecting import Finding

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ID_NAMESPACE = uuid.UUID("0d7c6f9e-3b8a-4f3e-9a6c-5e1f2a7b8c90")


def fired_id(fp: str, starts_at: datetime) -> str:
    return str(uuid.uuid5(_ID_NAMESPACE, f"fired:{fp}:{starts_at.isoformat()}"))


def resolved_id(fp: str, starts_at: datetime) -> str:
    return str(uuid.uuid5(_ID_NAMESPACE, f"resolved:{fp}:{starts_at.isoformat()}"))


@dataclass
class Active:
    """A firing alert as the book remembers it."""

    fired: AlertFired
    event_id: str
    target: ResourceRef
    object_key: str  # "<kind>/<cache key>": which object's deletion resolves it
    absent_since: datetime | None = None


@dataclass(frozen=True)
class Fire:
    finding: Finding
    starts_at: datetime
    event_id: str
    object_key: str


@dataclass(frozen=True)
class Resolve:
    alert: Active
    ends_at: datetime
    event_id: str
    resolution: str


Decision = Fire | Resolve


@dataclass
class AlertBook:
    resolve_after: timedelta
    firing: dict[str, Active] = field(default_factory=dict)

    def evaluate(
        self,
        present: Mapping[str, tuple[Finding, str]],
        deleted: Iterable[str],
        now: datetime,
    ) -> list[Decision]:
        """Decisions for this moment. `present`: fingerprint -> (finding, object key); `deleted`: object keys
        removed from the cluster since the last evaluation."""
        gone = set(deleted)
        decisions: list[Decision] = []
        for fp, (finding, object_key) in present.items():
            active = self.firing.get(fp)
            if active is not None:
                active.absent_since = None
                continue
            starts_at = min(finding.since, now)
            decisions.append(Fire(finding, starts_at, fired_id(fp, starts_at), object_key))
        for fp, active in self.firing.items():
            if fp in present:
                continue
            if active.object_key in gone:
                ends = max(now, active.fired.starts_at)
                decisions.append(Resolve(active, ends, resolved_id(fp, active.fired.starts_at), "object deleted"))
                continue
            if active.absent_since is None:
                active.absent_since = now
            if now - active.absent_since >= self.resolve_after:
                ends = max(active.absent_since, active.fired.starts_at)
                decisions.append(Resolve(active, ends, resolved_id(fp, active.fired.starts_at), "condition cleared"))
        return decisions

    def fired(self, decision: Fire, payload: AlertFired) -> None:
        """Record that `decision` was published as `payload`."""
        self.firing[payload.fingerprint] = Active(
            fired=payload, event_id=decision.event_id, target=decision.finding.target, object_key=decision.object_key
        )

    def resolved(self, decision: Resolve) -> None:
        self.firing.pop(decision.alert.fired.fingerprint, None)

    def restore(self, alerts: Iterable[tuple[AlertFired, str, str]]) -> None:
        """Firing alerts read back from the ALERT stream: (payload, event id, object key)."""
        for payload, event_id, object_key in alerts:
            kind, _, rest = object_key.partition("/")
            ns, _, name = rest.rpartition("/")
            target = ResourceRef(kind=kind, name=name or rest, namespace=ns or None)
            self.firing[payload.fingerprint] = Active(
                fired=payload, event_id=event_id, target=target, object_key=object_key
            )


def fired_payload(
    finding: Finding,
    starts_at: datetime,
    events: tuple[KubeEventSummary, ...] = (),
    logs: tuple[LogExcerpt, ...] = (),
    extra: Mapping[str, str] | None = None,
) -> AlertFired:
    return AlertFired(
        fingerprint=finding.fingerprint,
        alertname=finding.alertname,
        severity=finding.severity,
        labels=dict(finding.labels),
        annotations=AlertAnnotations(
            summary=finding.summary[:512],
            description=finding.description[:4096] if finding.description else None,
            runbook_url=finding.runbook,
            extra=dict(extra or {}),
        ),
        starts_at=starts_at,
        source=AlertSource.WATCHER,
        workload=finding.workload,
        evidence=AlertEvidence(
            containers=finding.containers[:64], events=events[-20:], logs=logs[:8], metrics=finding.metrics[:20]
        ),
    )


def resolved_payload(decision: Resolve) -> AlertResolved:
    f = decision.alert.fired
    return AlertResolved(
        fingerprint=f.fingerprint,
        alertname=f.alertname,
        severity=f.severity,
        labels=dict(f.labels),
        annotations=f.annotations,
        starts_at=f.starts_at,
        source=AlertSource.WATCHER,
        workload=f.workload,
        ends_at=decision.ends_at,
        resolution=decision.resolution,
    )


def object_key(kind: str, target: ResourceRef) -> str:
    """`<kind>/<namespace>/<name>` (or `<kind>/<name>`), matching the cache's keys prefixed by kind."""
    return f"{kind}/{target.namespace}/{target.name}" if target.namespace else f"{kind}/{target.name}"


class EventIndex:
    """Kubernetes Events by the object they regard, for the evidence; bounded per object."""

    def __init__(self, per_object: int = 20) -> None:
        self._per_object = per_object
        self._by_object: dict[str, dict[str, KubeEventSummary]] = {}

    def put(self, event_key: str, summary: KubeEventSummary) -> None:
        if summary.regarding is None:
            return
        bucket = self._by_object.setdefault(object_key(summary.regarding.kind, summary.regarding), {})
        bucket[event_key] = summary
        if len(bucket) > self._per_object:
            oldest = min(bucket, key=lambda k: _when(bucket[k]))
            del bucket[oldest]

    def remove(self, event_key: str, summary: KubeEventSummary) -> None:
        if summary.regarding is None:
            return
        key = object_key(summary.regarding.kind, summary.regarding)
        bucket = self._by_object.get(key)
        if bucket is not None:
            bucket.pop(event_key, None)
            if not bucket:
                del self._by_object[key]

    def recent(self, target: ResourceRef, limit: int) -> tuple[KubeEventSummary, ...]:
        """The object's most recent Events, newest last."""
        if limit <= 0:
            return ()
        bucket = self._by_object.get(object_key(target.kind, target), {})
        return tuple(sorted(bucket.values(), key=_when)[-limit:])


def _when(e: KubeEventSummary) -> datetime:
    return e.last_seen or e.first_seen or _EPOCH
