"""Symptoms of an incident and the known signatures linking a kind of change to them.

A signature is "this kind of change is known to produce this symptom": ImagePullBackOff after an image change,
OOMKilled after a memory-limit cut, Pending after a request raise, a crash after a ConfigMap or env change, probe
failures after a port or path change, pods down after their node went NotReady. Its strength (0-1) is the
signature term of a cause's confidence. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from opsbus.analyzer.domain.timeline import Entry
from opsbus.common.events.payloads import ActionKind, AlertFired
from opsbus.common.events.payloads.diagnosis import CauseKind


class Symptom(StrEnum):
    OOM = "oom"
    IMAGE_PULL = "image_pull"
    PENDING = "pending"
    CRASH = "crash"
    CONFIG_ERROR = "config_error"
    PROBE = "probe"
    NODE_DOWN = "node_down"
    UNAVAILABLE = "unavailable"


_BY_REASON: dict[str, Symptom] = {
    "OOMKilled": Symptom.OOM,
    "KubeContainerOOMKilled": Symptom.OOM,
    "ImagePullBackOff": Symptom.IMAGE_PULL,
    "ErrImagePull": Symptom.IMAGE_PULL,
    "InvalidImageName": Symptom.IMAGE_PULL,
    "KubePodImagePullFailing": Symptom.IMAGE_PULL,
    "FailedScheduling": Symptom.PENDING,
    "Unschedulable": Symptom.PENDING,
    "KubePodNotScheduled": Symptom.PENDING,
    "CrashLoopBackOff": Symptom.CRASH,
    "Error": Symptom.CRASH,
    "BackOff": Symptom.CRASH,
    "KubePodCrashLooping": Symptom.CRASH,
    "KubePodRestartRateHigh": Symptom.CRASH,
    "CreateContainerConfigError": Symptom.CONFIG_ERROR,
    "KubeContainerConfigError": Symptom.CONFIG_ERROR,
    "Unhealthy": Symptom.PROBE,
    "KubeNodeNotReady": Symptom.NODE_DOWN,
    "KubeNodeUnreachable": Symptom.NODE_DOWN,
    "NodeNotReady": Symptom.NODE_DOWN,
    "KubeDeploymentReplicasMismatch": Symptom.UNAVAILABLE,
    "KubeDeploymentRolloutStuck": Symptom.UNAVAILABLE,
}


def symptoms(alerts: Iterable[AlertFired]) -> frozenset[Symptom]:
    """What the incident's alerts show: their names, container state reasons and Kubernetes Event reasons."""
    found: set[Symptom] = set()
    for alert in alerts:
        reasons = [alert.alertname]
        for c in alert.evidence.containers:
            reasons += [r for r in (c.reason, c.last_termination_reason) if r]
        reasons += [e.reason for e in alert.evidence.events if e.type == "Warning"]
        found.update(_BY_REASON[r] for r in reasons if r in _BY_REASON)
    return frozenset(found)


_QUANTITY = re.compile(r"^\s*([0-9.]+)\s*([a-zA-Z]*)\s*$")
_UNITS = {
    "": 1.0,
    "m": 1e-3,
    "k": 1e3,
    "K": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
}


def quantity(value: str | None) -> float | None:
    """`512Mi` -> 536870912.0, `250m` -> 0.25, `1073741824` -> itself; None when unreadable."""
    if value is None:
        return None
    match = _QUANTITY.match(value)
    if match is None or match.group(2) not in _UNITS:
        return None
    try:
        return float(match.group(1)) * _UNITS[match.group(2)]
    except ValueError:
        return None


def _moved(entry: Entry, *needles: str) -> tuple[bool, bool]:
    """(decreased, increased) for diff entries whose path contains every needle."""
    down = up = False
    for d in entry.diff:
        path = d.path.lower()
        if not all(n in path for n in needles):
            continue
        before, after = quantity(d.before), quantity(d.after)
        if before is not None and after is not None:
            down |= after < before
            up |= after > before
        elif before is None and after is not None and "limits" in needles:
            continue  # a limit added where there was none: neither a cut nor a raise of one
    return down, up


def memory_limit_cut(entry: Entry) -> bool:
    return _moved(entry, "limits", "memory")[0]


def request_raised(entry: Entry) -> bool:
    return _moved(entry, "requests", "memory")[1] or _moved(entry, "requests", "cpu")[1]


def replicas_raised(entry: Entry) -> bool:
    return _moved(entry, "replicas")[1]


_TEMPLATE_KINDS = frozenset({"image", "env", "command", "template"})


def cause_kind(entry: Entry) -> CauseKind:  # noqa: PLR0911 - one decision table
    """What kind of cause a change would be."""
    if entry.object_kind in {"ConfigMap", "Secret"} or "config" in entry.kinds:
        return CauseKind.CONFIG_CHANGE
    if entry.object_kind == "Node" or entry.kinds & {"node_condition", "node_taint"}:
        return CauseKind.NODE
    if "resources" in entry.kinds and not entry.kinds & {"image", "env", "command"}:
        return CauseKind.RESOURCE_CHANGE
    if entry.kinds & _TEMPLATE_KINDS or entry.source == "deploy":
        return CauseKind.ROLLOUT
    if entry.kinds & {"replicas", "hpa"}:
        return CauseKind.SCALING
    if entry.origin in {"healer", "optimizer"}:
        return CauseKind.OPSBUS_ACTION
    return CauseKind.ROLLOUT


@dataclass(frozen=True, slots=True)
class Match:
    strength: float
    because: str  # the symptom-to-change link, for the summary
    action: ActionKind


def _candidates(entry: Entry, symptom: Symptom) -> Iterable[Match]:  # noqa: PLR0912 - one table
    kinds = entry.kinds
    kind = cause_kind(entry)
    if symptom is Symptom.IMAGE_PULL:
        if "image" in kinds:
            yield Match(1.0, "image pulls fail since the image changed", ActionKind.ROLLBACK)
        elif kind is CauseKind.ROLLOUT:
            yield Match(0.4, "image pulls fail since the pod template changed", ActionKind.ROLLBACK)
    elif symptom is Symptom.OOM:
        if memory_limit_cut(entry):
            yield Match(1.0, "containers are OOMKilled since the memory limit was cut", ActionKind.RAISE_MEMORY_LIMIT)
        elif "resources" in kinds:
            yield Match(0.5, "containers are OOMKilled since resources changed", ActionKind.RAISE_MEMORY_LIMIT)
        elif kinds & {"image", "env", "command"}:
            yield Match(0.45, "containers are OOMKilled since the new version rolled out", ActionKind.ROLLBACK)
    elif symptom is Symptom.PENDING:
        if request_raised(entry):
            yield Match(0.95, "pods stay Pending since their resource requests were raised", ActionKind.ROLLBACK)
        elif replicas_raised(entry):
            yield Match(0.5, "pods stay Pending since replicas were raised", ActionKind.NOTIFY_ONLY)
        elif kind is CauseKind.NODE:
            yield Match(0.6, "pods stay Pending since nodes changed", ActionKind.CORDON_NODE)
    elif symptom is Symptom.CONFIG_ERROR:
        if kind is CauseKind.CONFIG_CHANGE or "env" in kinds:
            yield Match(0.95, "containers cannot be configured since their configuration changed", _undo(kind))
    elif symptom is Symptom.CRASH:
        if kind is CauseKind.CONFIG_CHANGE:
            yield Match(0.85, "containers crash since the configuration they read changed", ActionKind.NOTIFY_ONLY)
        elif kinds & {"env", "command"}:
            yield Match(0.85, "containers crash since their env or command changed", ActionKind.ROLLBACK)
        elif "image" in kinds:
            yield Match(0.8, "containers crash since the image changed", ActionKind.ROLLBACK)
        elif kind is CauseKind.ROLLOUT:
            yield Match(0.5, "containers crash since the pod template changed", ActionKind.ROLLBACK)
        elif "resources" in kinds:
            yield Match(0.3, "containers crash since resources changed", ActionKind.ROLLBACK)
    elif symptom is Symptom.PROBE:
        if "template" in kinds:
            yield Match(0.8, "probes fail since the pod template (ports, probes) changed", ActionKind.ROLLBACK)
        elif "image" in kinds:
            yield Match(0.6, "probes fail since the image changed", ActionKind.ROLLBACK)
    elif symptom is Symptom.NODE_DOWN:
        if kind is CauseKind.NODE:
            yield Match(0.95, "pods went down with their node", ActionKind.CORDON_NODE)
    elif symptom is Symptom.UNAVAILABLE:
        if kind is CauseKind.ROLLOUT:
            yield Match(0.7, "replicas are unavailable since the rollout", ActionKind.ROLLBACK)
        elif kind is CauseKind.NODE:
            yield Match(0.8, "replicas went down with the node they ran on", ActionKind.CORDON_NODE)


def _undo(kind: CauseKind) -> ActionKind:
    return ActionKind.NOTIFY_ONLY if kind is CauseKind.CONFIG_CHANGE else ActionKind.ROLLBACK


_GENERIC: dict[CauseKind, ActionKind] = {
    CauseKind.ROLLOUT: ActionKind.ROLLBACK,
    CauseKind.RESOURCE_CHANGE: ActionKind.ROLLBACK,
    CauseKind.NODE: ActionKind.CORDON_NODE,
}


def match(entry: Entry, found: frozenset[Symptom]) -> Match:
    """The strongest signature linking `entry` to the symptoms; a weak generic one when none is known."""
    best = max((m for s in sorted(found) for m in _candidates(entry, s)), key=lambda m: m.strength, default=None)
    if best is not None:
        return best
    kind = cause_kind(entry)
    if kind is CauseKind.NODE:  # the node the failing pods share changed: relevant whatever the symptom
        return Match(0.5, "the node the failing pods share changed", ActionKind.CORDON_NODE)
    return Match(0.2, "it changed shortly before the first alert", _GENERIC.get(kind, ActionKind.NOTIFY_ONLY))
