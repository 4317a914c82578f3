"""The alert book: fire once per fingerprint while firing, resolve within seconds of the object being healthy
again, damp an alert that flaps, with ids that replicas share.

`AlertBook.evaluate(present, deleted, now)` compares the findings present now with the alerts it tracks and
returns decisions (data): `Fire` for a fingerprint that is not firing, `Resolve` once a firing alert's condition
stayed absent for its rule's confirmation bound (at once when its object was deleted), `Damp` when a flapping
alert's condition comes back (no event: the flap is only audited). Each fingerprint's lifecycle (pending,
firing, resolving, flapping, resolved) is the state machine of `lifecycle`; this module feeds it the
observations and turns its phases into decisions. The policy per rule (confirmation bound, flap window,
threshold, stable period) comes from `rules.Resolution`.

Event ids are derived, not random: uuid5(fingerprint, startsAt) for the fire and for the resolve. `startsAt`
comes from the object's status (see `detecting`), so two replicas watching the same cluster build the same
ids and JetStream's Nats-Msg-Id dedupe stores one; re-fires are counted on startsAt too, so replicas agree on
flapping. Across restarts the book is rebuilt from the ALERT stream (`restore`), so a fault that is still there
does not fire again, one that cleared meanwhile resolves, and a flapping alert stays damped.
Pure: no I/O.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from opsbus.common.events.payloads.alert import (
    AlertAnnotations,
    AlertEvidence,
    AlertFired,
    AlertResolved,
    AlertSource,
)
from opsbus.common.events.payloads.common import KubeEventSummary, LogExcerpt, ResourceRef
from opsbus.watcher.domain.detecting import Finding
from opsbus.watcher.domain.lifecycle import (
    Lifecycle,
    Phase,
    Policy,
    Trigger,
    forgettable,
    refires,
    resolution_due,
    step,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ID_NAMESPACE = uuid.UUID("0d7c6f9e-3b8a-4f3e-9a6c-5e1f2a7b8c90")
FLAPPING_LABEL = "flapping"  # label (value "true") and annotation (the reason) of a fire that announces flapping


def fired_id(fp: str, starts_at: datetime) -> str:
    return str(uuid.uuid5(_ID_NAMESPACE, f"fired:{fp}:{starts_at.isoformat()}"))


def resolved_id(fp: str, starts_at: datetime) -> str:
    return str(uuid.uuid5(_ID_NAMESPACE, f"resolved:{fp}:{starts_at.isoformat()}"))


@dataclass
class Active:
    """A published (firing) alert as the book remembers it."""

    fired: AlertFired
    event_id: str
    target: ResourceRef
    object_key: str  # "<kind>/<cache key>": which object's deletion resolves it


@dataclass(frozen=True)
class Fire:
    finding: Finding
    starts_at: datetime
    event_id: str
    object_key: str
    flapping: str | None = None  # why it announces flapping; None for an ordinary fire


@dataclass(frozen=True)
class Resolve:
    alert: Active
    ends_at: datetime
    event_id: str
    resolution: str


@dataclass(frozen=True)
class Damp:
    """A flapping alert's condition came back: no event, only the record of why."""

    alert: Active
    reason: str
    flap: int  # which flap of the episode (replicas count the same)


Decision = Fire | Resolve | Damp


@dataclass
class Tracked:
    """One fingerprint: its lifecycle and what was (or is about to be) published for it."""

    life: Lifecycle
    alertname: str
    object_key: str
    active: Active | None = None  # while published as firing
    pending: Fire | None = None  # while PENDING: the fire decided and not yet recorded as published


@dataclass
class AlertBook:
    policy: Callable[[str], Policy]  # alertname -> how that rule resolves and damps
    alerts: dict[str, Tracked] = field(default_factory=dict)

    @property
    def firing(self) -> dict[str, Active]:
        """Alerts published as firing and not (yet) resolved: FIRING, RESOLVING or FLAPPING."""
        return {fp: t.active for fp, t in self.alerts.items() if t.active is not None}

    def phase(self, fp: str) -> Phase | None:
        tracked = self.alerts.get(fp)
        return tracked.life.phase if tracked is not None else None

    def evaluate(
        self,
        present: Mapping[str, tuple[Finding, str]],
        deleted: Iterable[str],
        now: datetime,
    ) -> list[Decision]:
        """Decisions for this moment. `present`: fingerprint -> (finding, object key); `deleted`: object keys
        removed from the cluster since the last evaluation."""
        gone = set(deleted)
        for fp, tracked in list(self.alerts.items()):
            if tracked.object_key in gone:
                self._deleted(fp, tracked, now)
        decisions: list[Decision] = []
        for fp, (finding, object_key) in present.items():
            decision = self._present(fp, finding, object_key, now)
            if decision is not None:
                decisions.append(decision)
        for fp, tracked in list(self.alerts.items()):
            if fp not in present:
                self._absent(fp, tracked, now)
            resolve = self._due(fp, now)
            if resolve is not None:
                decisions.append(resolve)
        return decisions

    def _deleted(self, fp: str, tracked: Tracked, now: datetime) -> None:
        life = tracked.life
        if life.phase in (Phase.RESOLVED, None):
            del self.alerts[fp]
        elif not life.gone:
            tracked.life = step(life, Trigger.DELETED, now, "object deleted", gone=True)
            if tracked.life.phase == Phase.RESOLVED:  # withdrawn before its fire was published
                del self.alerts[fp]

    def _present(self, fp: str, finding: Finding, object_key: str, now: datetime) -> Decision | None:
        tracked = self.alerts.get(fp)
        if tracked is not None and tracked.pending is not None:
            return tracked.pending  # decided, not recorded as published: decide it again
        if tracked is not None and tracked.active is not None:
            life = tracked.life
            if life.gone:
                return None  # its object was deleted: it resolves; a new object's fault fires afterwards
            if life.phase == Phase.RESOLVING:
                reason = "condition back within the confirmation bound"
                tracked.life = step(life, Trigger.RETURNED, now, reason, absent_since=None)
            elif life.phase == Phase.FLAPPING and life.absent_since is not None:
                flaps = life.flaps + 1
                reason = f"flap {flaps} damped: condition back, the stable period starts over"
                tracked.life = step(life, Trigger.RETURNED, now, reason, absent_since=None, flaps=flaps)
                return Damp(tracked.active, reason, flaps)
            return None
        life = tracked.life if tracked is not None else Lifecycle()
        policy = self.policy(finding.alertname)
        starts_at = min(finding.since, now)
        count = refires(life, starts_at, policy.window)
        flapping = None
        if policy.threshold > 0 and count >= policy.threshold:
            flapping = (
                f"fired {count + 1} times within {policy.window.total_seconds():.0f}s: flapping; "
                f"resolves after {policy.stable.total_seconds():.0f}s without the condition"
            )
            reason = flapping
        else:
            reason = f"condition detected ({count} earlier fires within the window)" if count else "condition detected"
        fire = Fire(finding, starts_at, fired_id(fp, starts_at), object_key, flapping)
        life = step(life, Trigger.DETECTED, now, reason, absent_since=None, gone=False, flaps=0)
        self.alerts[fp] = Tracked(life=life, alertname=finding.alertname, object_key=object_key, pending=fire)
        return fire

    def _absent(self, fp: str, tracked: Tracked, now: datetime) -> None:
        life = tracked.life
        if life.phase == Phase.FIRING:
            tracked.life = step(life, Trigger.CLEARED, now, "condition no longer present", absent_since=now)
        elif life.phase == Phase.FLAPPING and life.absent_since is None and not life.gone:
            reason = "condition cleared: the stable period starts"
            tracked.life = step(life, Trigger.CLEARED, now, reason, absent_since=now)
        elif life.phase == Phase.PENDING:
            tracked.life = step(life, Trigger.CLEARED, now, "withdrawn: cleared before the fire was published")
            tracked.pending = None
        if tracked.life.phase == Phase.RESOLVED and forgettable(tracked.life, self.policy(tracked.alertname), now):
            del self.alerts[fp]

    def _due(self, fp: str, now: datetime) -> Resolve | None:
        tracked = self.alerts.get(fp)
        if tracked is None or tracked.active is None:
            return None
        life = tracked.life
        due = resolution_due(life, self.policy(tracked.alertname), now)
        if due is None:
            return None
        active = tracked.active
        starts = active.fired.starts_at
        ends = max(now if life.gone or life.absent_since is None else life.absent_since, starts)
        return Resolve(active, ends, resolved_id(fp, starts), due)

    def fired(self, decision: Fire, payload: AlertFired, at: datetime) -> None:
        """Record that `decision` was published as `payload` at `at`."""
        tracked = self.alerts[payload.fingerprint]
        window = self.policy(payload.alertname).window
        trigger = Trigger.FLAP_PUBLISHED if decision.flapping else Trigger.FIRE_PUBLISHED
        earlier = tuple(t for t in tracked.life.fires if decision.starts_at - window <= t < decision.starts_at)
        reason = f"published as {decision.event_id}"
        tracked.life = step(tracked.life, trigger, at, reason, fires=(*earlier, decision.starts_at))
        tracked.pending = None
        tracked.active = Active(
            fired=payload, event_id=decision.event_id, target=decision.finding.target, object_key=decision.object_key
        )

    def resolved(self, decision: Resolve, at: datetime) -> None:
        """Record that `decision` was published at `at`."""
        fp = decision.alert.fired.fingerprint
        tracked = self.alerts.get(fp)
        if tracked is None or tracked.active is None:
            return
        reason = f"{decision.resolution}; published as {decision.event_id}"
        tracked.life = step(tracked.life, Trigger.RESOLVE_PUBLISHED, at, reason, absent_since=None, flaps=0)
        tracked.active = None
        if tracked.life.gone:
            del self.alerts[fp]

    def restore(self, alerts: Iterable[tuple[AlertFired, str, str]], now: datetime) -> None:
        """Firing alerts read back from the ALERT stream: (payload, event id, object key). One that announced
        flapping comes back FLAPPING, so it stays damped."""
        for payload, event_id, object_key in alerts:
            kind, _, rest = object_key.partition("/")
            ns, _, name = rest.rpartition("/")
            target = ResourceRef(kind=kind, name=name or rest, namespace=ns or None)
            flapping = payload.labels.get(FLAPPING_LABEL) == "true"
            life = step(Lifecycle(), Trigger.DETECTED, now, "restored from the ALERT stream")
            trigger = Trigger.FLAP_PUBLISHED if flapping else Trigger.FIRE_PUBLISHED
            life = step(life, trigger, now, f"restored: published as {event_id}", fires=(payload.starts_at,))
            self.alerts[payload.fingerprint] = Tracked(
                life=life,
                alertname=payload.alertname,
                object_key=object_key,
                active=Active(fired=payload, event_id=event_id, target=target, object_key=object_key),
            )


def fired_payload(
    finding: Finding,
    starts_at: datetime,
    events: tuple[KubeEventSummary, ...] = (),
    logs: tuple[LogExcerpt, ...] = (),
    extra: Mapping[str, str] | None = None,
    *,
    flapping: str | None = None,
) -> AlertFired:
    """The `alert.fired` payload. A fire that announces flapping carries the label `flapping="true"` (routable,
    shown by every receiver), the reason as annotation, and says so in its summary; its fingerprint is the
    finding's, so it stays the same alert for the notifier."""
    labels = dict(finding.labels)
    notes = dict(extra or {})
    summary = finding.summary
    if flapping:
        labels[FLAPPING_LABEL] = "true"
        notes[FLAPPING_LABEL] = flapping
        summary = f"Flapping: {summary}"
    return AlertFired(
        fingerprint=finding.fingerprint,
        alertname=finding.alertname,
        severity=finding.severity,
        labels=labels,
        annotations=AlertAnnotations(
            summary=summary[:512],
            description=finding.description[:4096] if finding.description else None,
            runbook_url=finding.runbook,
            extra=notes,
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
