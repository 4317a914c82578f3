"""Incidents: which alerts are one fault, and whether a fault is the workload's rather than a pod's.

Under a storm the healer must act once per fault, not once per alert: the pods of one Deployment crashing
together are one incident (a restart or a rollback of the workload, not N pod deletions), and the pods on a
NotReady node are the node's incident (one cordon, not a deletion per pod). This module decides, from plain
data, which live incident an alert joins, whether a workload's trouble is wider than its pods, and when the
workload's pod template last changed; the executor reads the inputs and stores the outcome. Pure: no I/O and
no clock reads.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # planning imports this module; these are only types here
    from opsbus.healer.domain.planning import AlertState, Revision


def node_key(node: str) -> str:
    return f"Node/_/{node}"


def is_node_alert(alert: AlertState) -> bool:
    """An alert about a node itself (NotReady, pressure), not about a pod that runs on it."""
    return bool(alert.labels.get("node")) and not alert.labels.get("pod") and alert.workload is None


def own_key(alert: AlertState) -> str | None:
    """The incident an alert would lead: its node's for a node alert, else its workload's; None: ungrouped."""
    if is_node_alert(alert):
        return node_key(alert.labels["node"])
    return str(alert.workload) if alert.workload is not None else None


@dataclass(frozen=True, slots=True)
class Lead:
    """A live incident as stored: its leading recovery, what it groups by, its policy, when it opened."""

    recovery_id: str
    key: str
    policy: str
    opened_at: datetime


def lead_for(alert: AlertState, policy: str, leads: Sequence[Lead], window: float, now: datetime) -> Lead | None:
    """The live incident `alert` belongs to, or None (it leads one of its own).

    A pod's alert joins the incident of the node it runs on (whatever the node's policy: the node is the
    fault), else the incident of its workload under the same policy (an OOM kill and a crash loop of one
    workload stay apart: they call for different actions). Only incidents opened within `window` gather.
    """
    if window <= 0:
        return None
    fresh = sorted((x for x in leads if now - x.opened_at <= timedelta(seconds=window)), key=lambda x: x.opened_at)
    node = alert.labels.get("node")
    if node and not is_node_alert(alert):
        on_node = next((x for x in fresh if x.key == node_key(node)), None)
        if on_node is not None:
            return on_node
    key = own_key(alert)
    if key is None:
        return None
    return next((x for x in fresh if x.key == key and x.policy == policy), None)


def keys_of(alert: AlertState) -> tuple[str, ...]:
    """Every incident key an alert could join (its node's, its workload's, its own)."""
    keys = [k for k in (own_key(alert),) if k is not None]
    if (node := alert.labels.get("node")) and node_key(node) not in keys:
        keys.append(node_key(node))
    return tuple(keys)


@dataclass(frozen=True, slots=True)
class Spread:
    """How far a workload's trouble reaches: its pods, how many are ready, how many of its alerts fire."""

    total: int
    ready: int | None  # None: not known (the snapshot did not count)
    firing_alerts: int = 1

    @property
    def failing(self) -> int:
        unready = self.total - self.ready if self.ready is not None else 0
        return max(unready, self.firing_alerts)


def workload_wide(spread: Spread, max_pod_fraction: float) -> bool:
    """More of the workload's pods fail than the blast radius lets the healer take down one at a time: deleting
    pods cannot fix it (and one per cooldown would take forever); the workload itself is acted on."""
    allowed = max(1, math.floor(spread.total * max_pod_fraction))
    return spread.failing >= 2 and spread.failing > allowed


def changed_at(current: int | None, revisions: Sequence[Revision]) -> datetime | None:
    """When the pod template the workload runs now was first rolled out, or None when it has no older,
    different template (nothing to roll back to) or no creation time is known. Restarts (same template) do
    not count as a change: the change is the first revision of the current template."""
    by_number = sorted(revisions, key=lambda r: r.number)
    now = next((r for r in by_number if r.number == current), None)
    if now is None:
        return None
    first = now
    for r in reversed([r for r in by_number if r.number < now.number]):
        if r.template_digest != now.template_digest:
            return first.created_at
        first = r
    return None  # every older revision is the same template: no change to undo


def change_preceded(changed: datetime | None, first_alert: datetime, window: float, slack: float = 60.0) -> bool:
    """A rollout within `window` before the incident's first alert (with `slack` for clocks and the detector's
    own delay) is the change that preceded it."""
    if changed is None:
        return False
    return first_alert - timedelta(seconds=window) <= changed <= first_alert + timedelta(seconds=slack)
