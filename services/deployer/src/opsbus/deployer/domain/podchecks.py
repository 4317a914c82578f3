"""Kubernetes-based analysis checks: the new version's pods in, one measured value out. Fails closed.

Why this module exists: a release whose pods restart or never become Ready is bad whatever the metrics say,
and a Prometheus that scrapes nothing yet cannot tell (Flagger halts on "no values found", flagger#1689).
The deployer reads the pods itself and turns them into a value the ordinary analysis rules judge:

- `restarts`: container restarts (init containers included) summed over the new pods;
- `not_ready`: new pods without the condition Ready=True.

Only the new version's pods count (selected by the Deployment's labels plus its current ReplicaSet's
`pod-template-hash`); pods being deleted do not. No new pod yet is *no data*: inconclusive, never a pass.
Pure: plain JSON in, a `Sample` out; the executor lists the pods.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opsbus.common.events.payloads.deploy import KubernetesCheck
from opsbus.deployer.domain.analysis import Sample
from opsbus.deployer.domain.changes import HASH_LABEL, current_hash


def new_pods_selector(
    deployment: Mapping[str, Any], replica_sets: Sequence[Mapping[str, Any]]
) -> dict[str, str] | None:
    """Labels selecting exactly the pods of the Deployment's current ReplicaSet; None while it is unknown."""
    pod_hash = current_hash(deployment, list(replica_sets))
    labels = ((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    if pod_hash is None or not labels:
        return None
    return {**{str(k): str(v) for k, v in labels.items()}, HASH_LABEL: pod_hash}


def _live(pods: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]


def _restarts(pod: Mapping[str, Any]) -> int:
    status = pod.get("status") or {}
    statuses = [*(status.get("initContainerStatuses") or ()), *(status.get("containerStatuses") or ())]
    return sum(int(c.get("restartCount") or 0) for c in statuses)


def _ready(pod: Mapping[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or ()
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def measure_pods(check: KubernetesCheck, pods: Sequence[Mapping[str, Any]] | None) -> Sample:
    """The value of `check` over the new pods (`None`: the new pods could not be told apart yet)."""
    if pods is None:
        return Sample(error="the new version's pods cannot be told apart yet (no current ReplicaSet)")
    live = _live(pods)
    if not live:
        return Sample(value=None)
    if check is KubernetesCheck.RESTARTS:
        return Sample(value=float(sum(_restarts(p) for p in live)))
    return Sample(value=float(sum(1 for p in live if not _ready(p))))
