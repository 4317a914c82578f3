"""The diagnosis planner: `diagnose(Snapshot, Tuning) -> Verdict`, pure and deterministic.

Candidates come from the change timeline and the evidence, never from nowhere:

* a change to the incident's workload, or to a ConfigMap/Secret it reads, before the first alert;
* a change to a node the failing pods share (or the incident's own node);
* a change to another workload in the namespace only when a log line new in the failing pods names it
  (`connection refused to postgres:5432` and `postgres` rolled out): a shared dependency;
* a log template that appears only in the failing pods (drain3, against the healthy baseline; without a
  baseline only a dependency failure, `connection refused to <host>:<port>`, is offered, and weaker).

Each is scored `confidence = 0.5 signature + 0.3 proximity + 0.2 scope` (signature: how well the kind of
change explains the symptoms, `domain.signatures`; proximity: halves every `half_life` before the first alert;
scope: same workload 1, referenced config object 0.9, share of failing pods on a node or showing a line).
Candidates below `min_confidence` are dropped; when none is left the outcome is `unknown`, with what was
checked. Time is the snapshot's, never the wall clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from opsbus.analyzer.domain.logs import Mined, NovelTemplate
from opsbus.analyzer.domain.metrics import Series, Step, following, steps
from opsbus.analyzer.domain.signatures import Symptom, cause_kind, match, symptoms
from opsbus.analyzer.domain.timeline import Entry
from opsbus.common.events.payloads import ActionKind, AlertFired, ResourceRef
from opsbus.common.events.payloads.diagnosis import (
    Cause,
    CauseKind,
    Checked,
    DiagnosisOutcome,
    Evidence,
    EvidenceKind,
    ScoreParts,
)

WEIGHTS = (0.5, 0.3, 0.2)  # signature, proximity, scope


@dataclass(frozen=True, slots=True)
class AlertFact:
    event_id: str
    alert: AlertFired
    # A workload alert names no pod: its unready pods and their nodes, read when it arrived (pod -> node).
    pod_nodes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything one diagnosis looks at. `alerts[0]` is the incident's first alert."""

    incident_id: str
    alerts: tuple[AlertFact, ...]
    timeline: tuple[Entry, ...]  # the namespace's changes and cluster-scoped ones (nodes), any order
    now: datetime
    logs: Mined | None = None
    config_refs: frozenset[tuple[str, str]] | None = None  # (kind, name) the workload reads; None: unknown
    metrics: tuple[Series, ...] | None = None  # the workload's series before the alert; None: no Prometheus

    @property
    def first_alert_at(self) -> datetime:
        return min(a.alert.starts_at for a in self.alerts)

    @property
    def last_alert_at(self) -> datetime:
        return max(a.alert.starts_at for a in self.alerts)


@dataclass(frozen=True, slots=True)
class Tuning:
    lookback: timedelta = timedelta(hours=1)
    grace: timedelta = timedelta(seconds=15)  # a change observed this long after the alert still counts
    half_life_seconds: float = 300.0
    min_confidence: float = 0.35
    max_causes: int = 5
    metric_follow: timedelta = timedelta(minutes=5)  # a metric step this long after a change supports it
    metric_boost: float = 0.2  # added to the signature term of a change a metric step follows


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: DiagnosisOutcome
    causes: tuple[Cause, ...]
    checked: tuple[Checked, ...]
    symptoms: frozenset[Symptom] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True)
class _Scope:
    workload: tuple[str, str] | None
    namespace: str | None
    node: str | None  # the incident's own node (a node alert)
    pods: frozenset[str]
    pod_nodes: dict[str, str]  # failing pod -> node

    def pods_on(self, node: str) -> float:
        if self.node == node:
            return 1.0
        if not self.pod_nodes:
            return 0.0
        return sum(1 for n in self.pod_nodes.values() if n == node) / len(self.pod_nodes)


def _scope(alerts: Sequence[AlertFact]) -> _Scope:
    first = alerts[0].alert
    w = next((a.alert.workload for a in alerts if a.alert.workload), None)
    labels = first.labels
    pods = frozenset(a.alert.labels["pod"] for a in alerts if a.alert.labels.get("pod"))
    pod_nodes = {pod: node for a in alerts for pod, node in a.pod_nodes.items()}
    pod_nodes |= {
        a.alert.labels["pod"]: a.alert.labels["node"]
        for a in alerts
        if a.alert.labels.get("pod") and a.alert.labels.get("node")
    }
    own_node = labels.get("node") if not labels.get("pod") and not w else None
    return _Scope(
        workload=(w.kind, w.name) if w else None,
        namespace=w.namespace if w else labels.get("namespace"),
        node=own_node,
        pods=pods,
        pod_nodes=pod_nodes,
    )


def nodes_of(alerts: Sequence[AlertFact]) -> frozenset[str]:
    """The nodes whose changes can bear on the incident: its own node (a node alert) and its failing pods'.
    Changes of any other node score 0 (`_scope_of`), so the executor need not read them."""
    scope = _scope(alerts)
    return frozenset(n for n in (scope.node, *scope.pod_nodes.values()) if n)


def _proximity(entry: Entry, first: datetime, half_life: float) -> float:
    dt = max(0.0, (first - entry.at).total_seconds())
    return round(float(0.5 ** (dt / half_life)), 4)


def _confidence(parts: ScoreParts) -> float:
    ws, wp, wc = WEIGHTS
    return round(ws * parts.signature + wp * parts.proximity + wc * parts.scope, 4)


def _target(entry: Entry) -> ResourceRef:
    return ResourceRef(kind=entry.object_kind, name=entry.object_name, namespace=entry.namespace)


def _change_evidence(entry: Entry) -> Evidence:
    kind = EvidenceKind.DEPLOY if entry.source == "deploy" else EvidenceKind.CHANGE
    return Evidence(kind=kind, ref=entry.event_id, detail=entry.summary, at=entry.at)


def _log_evidence(t: NovelTemplate) -> Evidence:
    pods = ", ".join(sorted(t.pods)[:3])
    return Evidence(kind=EvidenceKind.LOG_TEMPLATE, ref=t.template[:1024], detail=f"{t.sample[:900]} (in {pods})")


def _symptom_evidence(alerts: Sequence[AlertFact]) -> list[Evidence]:
    """The container state and Event reasons that show the symptom (a few, de-duplicated)."""
    out: dict[tuple[EvidenceKind, str], Evidence] = {}
    for fact in alerts:
        a = fact.alert
        for c in a.evidence.containers:
            for reason in (c.reason, c.last_termination_reason):
                if reason and reason not in {"Completed"}:
                    key = (EvidenceKind.CONTAINER_STATE, reason)
                    out.setdefault(
                        key, Evidence(kind=key[0], ref=reason, detail=f"container {c.name}", at=c.started_at)
                    )
        for e in a.evidence.events:
            if e.type == "Warning":
                key = (EvidenceKind.KUBE_EVENT, e.reason)
                out.setdefault(key, Evidence(kind=key[0], ref=e.reason, detail=e.message[:1024], at=e.last_seen))
    return list(out.values())[:4]


def _in_window(entry: Entry, snap: Snapshot, tuning: Tuning, own: frozenset[str]) -> bool:
    if entry.event_id in own:
        return False
    return snap.first_alert_at - tuning.lookback <= entry.at <= snap.last_alert_at + tuning.grace


def _scope_of(entry: Entry, scope: _Scope, refs: frozenset[tuple[str, str]] | None) -> float:
    """How much of the incident a change covers; 0 when it does not touch it at all."""
    if scope.workload and entry.touches_workload(*scope.workload):
        return 1.0
    if entry.object_kind in {"ConfigMap", "Secret"} and entry.namespace == scope.namespace:
        if scope.workload and scope.workload in entry.used_by:
            return 0.9
        if refs is not None:
            return 0.9 if (entry.object_kind, entry.object_name) in refs else 0.0
        name = scope.workload[1] if scope.workload else None
        return 0.6 if name and entry.object_name.startswith(name) else 0.0
    if entry.object_kind == "Node":
        return scope.pods_on(entry.object_name)
    return 0.0


def _summary(entry: Entry, because: str, ago: float) -> str:
    when = f"{int(ago)} s before the first alert" if ago < 600 else f"{int(ago // 60)} min before the first alert"
    text = f"{because}: {entry.summary} ({entry.object_kind}/{entry.object_name}, {when})"
    return text[:512]


def _metric_evidence(step: Step, entry: Entry) -> Evidence:
    dt = int((step.at - entry.at).total_seconds())
    when = f"{dt} s after the change" if dt >= 0 else "with the change"
    return Evidence(kind=EvidenceKind.METRIC, ref=step.query[:1024], detail=f"{step.describe()} {when}", at=step.at)


def _change_causes(snap: Snapshot, tuning: Tuning, scope: _Scope, found: frozenset[Symptom]) -> list[Cause]:
    own = frozenset(a.event_id for a in snap.alerts)
    symptom_ev = _symptom_evidence(snap.alerts)
    moved = steps(snap.metrics or ())
    causes = []
    for entry in snap.timeline:
        if not _in_window(entry, snap, tuning, own):
            continue
        reach = _scope_of(entry, scope, snap.config_refs)
        if reach <= 0.0:
            continue
        m = match(entry, found)
        step = following(moved, entry.at, tuning.metric_follow) if moved else None
        parts = ScoreParts(
            proximity=_proximity(entry, snap.first_alert_at, tuning.half_life_seconds),
            scope=reach,
            signature=m.strength if step is None else min(1.0, m.strength + tuning.metric_boost),
        )
        ago = max(0.0, (snap.first_alert_at - entry.at).total_seconds())
        because = m.because if step is None else f"{m.because} ({step.describe()} after it)"
        metric_ev = () if step is None else (_metric_evidence(step, entry),)
        causes.append(
            Cause(
                kind=cause_kind(entry),
                summary=_summary(entry, because, ago),
                confidence=_confidence(parts),
                target=_target(entry),
                evidence=(_change_evidence(entry), *metric_ev, *symptom_ev),
                suggested_action=m.action,
                scores=parts,
            )
        )
    return causes


def _log_causes(snap: Snapshot, tuning: Tuning, scope: _Scope) -> list[Cause]:
    mined = snap.logs
    if mined is None or not mined.novel:
        return []
    own = frozenset(a.event_id for a in snap.alerts)
    failing = len(mined.failing_pods) or 1
    causes = []
    for t in [t for t in mined.novel if t.errorish][:3]:
        reach = min(1.0, len(t.pods) / failing)
        dep = t.dependency
        changed = [
            e
            for e in snap.timeline
            if dep
            and e.namespace == scope.namespace
            and _in_window(e, snap, tuning, own)
            and dep in (e.workload_name, e.object_name)
            and not (scope.workload and e.touches_workload(*scope.workload))
        ]
        if changed:
            entry = max(changed, key=lambda e: e.at)
            parts = ScoreParts(
                proximity=_proximity(entry, snap.first_alert_at, tuning.half_life_seconds),
                scope=reach,
                signature=0.85,
            )
            summary = (
                f"the failing pods cannot reach {dep}, which changed: {entry.summary}; new log line `{t.template}`"
            )
            evidence: tuple[Evidence, ...] = (_change_evidence(entry), _log_evidence(t))
            kind, target = CauseKind.SHARED_DEPENDENCY, _target(entry)
        elif dep:
            parts = ScoreParts(proximity=0.5, scope=reach, signature=0.7 if t.baseline_checked else 0.45)
            summary = f"the failing pods cannot reach {dep}: new log line `{t.template}` appears only in them"
            evidence, kind, target = (_log_evidence(t),), CauseKind.SHARED_DEPENDENCY, None
        elif not t.baseline_checked:
            continue  # "only in the failing pods" needs healthy pods to compare with
        else:
            parts = ScoreParts(proximity=0.5, scope=reach, signature=0.5)
            summary = f"new log line `{t.template}` appears only in the failing pods"
            evidence, kind, target = (_log_evidence(t),), CauseKind.LOG_SIGNATURE, None
        causes.append(
            Cause(
                kind=kind,
                summary=summary[:512],
                confidence=_confidence(parts),
                target=target,
                evidence=evidence,
                suggested_action=ActionKind.NOTIFY_ONLY,
                scores=parts,
            )
        )
    return causes


def _with_log_support(causes: list[Cause], mined: Mined | None) -> list[Cause]:
    """A change cause of the workload gains the first new error template as supporting evidence."""
    if mined is None:
        return causes
    t = next((t for t in mined.novel if t.errorish), None)
    if t is None:
        return causes
    out = []
    for c in causes:
        supported = c.kind in {CauseKind.ROLLOUT, CauseKind.CONFIG_CHANGE} and len(c.evidence) < 20
        out.append(c.model_copy(update={"evidence": (*c.evidence, _log_evidence(t))}) if supported else c)
    return out


def _dedupe(causes: list[Cause]) -> list[Cause]:
    """One cause per (kind, target): a deploy event and the change it made are the same rollout."""
    best: dict[tuple[CauseKind, str | None], Cause] = {}
    for c in sorted(causes, key=_rank_key):
        key = (c.kind, f"{c.target.kind}/{c.target.name}" if c.target else c.summary)
        kept = best.get(key)
        if kept is None:
            best[key] = c
        elif c.evidence[0].ref not in {e.ref for e in kept.evidence} and len(kept.evidence) < 20:
            best[key] = kept.model_copy(update={"evidence": (*kept.evidence, c.evidence[0])})
    return sorted(best.values(), key=_rank_key)


def _rank_key(c: Cause) -> tuple[float, float, str]:
    return (-c.confidence, -c.scores.signature, c.summary)


def _checked(snap: Snapshot, tuning: Tuning, scope: _Scope, found: frozenset[Symptom]) -> tuple[Checked, ...]:
    own = frozenset(a.event_id for a in snap.alerts)
    window = [e for e in snap.timeline if _in_window(e, snap, tuning, own)]
    minutes = int(tuning.lookback.total_seconds() // 60)
    where = scope.namespace or "cluster-scoped objects"
    a = [f.alert for f in snap.alerts]
    checked = [
        Checked(
            source="changes",
            count=sum(1 for e in window if e.source == "change"),
            detail=f"{where} and the failing pods' nodes, {minutes} min before the first alert",
        ),
        Checked(source="deploys", count=sum(1 for e in window if e.source == "deploy"), detail=where),
        Checked(source="alerts", count=len(a), detail=", ".join(sorted({x.alertname for x in a}))[:512]),
        Checked(
            source="container_states",
            count=sum(len(x.evidence.containers) for x in a),
            detail=", ".join(sorted(found)) or "no known symptom",
        ),
        Checked(source="kube_events", count=sum(len(x.evidence.events) for x in a)),
        Checked(
            source="config_objects",
            count=len(snap.config_refs or ()),
            detail="read from the workload" if snap.config_refs is not None else "workload not readable: by name",
        ),
    ]
    if snap.metrics is None:
        checked.append(Checked(source="metrics", count=0, detail="no Prometheus configured"))
    else:
        moved = ", ".join(f"{s.describe()} at {s.at:%H:%M:%S}" for s in steps(snap.metrics))
        checked.append(
            Checked(
                source="metrics",
                count=len(snap.metrics),
                detail=(moved or f"no step in {', '.join(s.name for s in snap.metrics) or 'no series'}")[:512],
            )
        )
    if snap.logs is not None:
        checked.append(
            Checked(
                source="logs",
                count=snap.logs.failing_lines + snap.logs.baseline_lines,
                detail=f"{snap.logs.failing_lines} lines of failing pods, {snap.logs.baseline_lines} of healthy ones",
            )
        )
    else:
        checked.append(Checked(source="logs", count=0, detail="no log lines available"))
    return tuple(checked)


def diagnose(snap: Snapshot, tuning: Tuning | None = None) -> Verdict:
    """The ranked causes of the incident in `snap`, or `unknown` with what was checked."""
    tuning = tuning or Tuning()
    scope = _scope(snap.alerts)
    found = symptoms(f.alert for f in snap.alerts)
    causes = _change_causes(snap, tuning, scope, found) + _log_causes(snap, tuning, scope)
    causes = [c for c in _dedupe(_with_log_support(causes, snap.logs)) if c.confidence >= tuning.min_confidence]
    causes = causes[: tuning.max_causes]
    outcome = DiagnosisOutcome.EXPLAINED if causes else DiagnosisOutcome.UNKNOWN
    return Verdict(outcome=outcome, causes=tuple(causes), checked=_checked(snap, tuning, scope, found), symptoms=found)


def identity(c: Cause) -> tuple[str, str | None, str]:
    """What makes two causes the same cause across diagnoses (not their scores or wording)."""
    target = f"{c.target.kind}/{c.target.namespace}/{c.target.name}" if c.target else None
    return (c.kind.value, target, c.evidence[0].ref)


def ranking_changed(before: Sequence[Cause], after: Sequence[Cause]) -> bool:
    """Whether a new diagnosis ranks differently: another top cause, or other causes in another order."""
    return [identity(c) for c in before] != [identity(c) for c in after]
