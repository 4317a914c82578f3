"""The ReplicaSets of a rollout as an operator reads them: which is the new version, which the old.

Why this module exists: the console's rollout view shows the new and the old ReplicaSets side by side (Argo
Rollouts' dashboard does), and "which one is new" depends on the strategy: for a rolling update it is the
stable Deployment's ReplicaSet at the rollout's revision; for a canary it is the `<name>-canary` Deployment's,
while the stable Deployment's current ReplicaSet is the old one until promotion. Pure: it reads the objects as
JSON the executor listed and never touches the cluster.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from opsbus.common.api.deployer import ReplicaSetView

_REVISION = "deployment.kubernetes.io/revision"
JSON = Mapping[str, Any]


def _revision(obj: JSON) -> int | None:
    raw = ((obj.get("metadata") or {}).get("annotations") or {}).get(_REVISION)
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def _created(rs: JSON) -> datetime | None:
    raw = (rs.get("metadata") or {}).get("creationTimestamp")
    if isinstance(raw, datetime):
        return raw
    return datetime.fromisoformat(str(raw).replace("Z", "+00:00")) if raw else None


def _images(rs: JSON) -> dict[str, str]:
    containers = (((rs.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
    return {str(c.get("name")): str(c.get("image")) for c in containers}


def _view(rs: JSON, deployment: str, role: str) -> ReplicaSetView:
    status = rs.get("status") or {}
    return ReplicaSetView(
        name=str((rs.get("metadata") or {}).get("name")),
        deployment=deployment,
        role=role,
        revision=_revision(rs),
        images=_images(rs),
        replicas=int(status.get("replicas") or 0),
        ready=int(status.get("readyReplicas") or 0),
        created_at=_created(rs),
    )


def describe(
    stable: JSON,
    stable_sets: Sequence[JSON],
    *,
    canary: JSON | None = None,
    canary_sets: Sequence[JSON] = (),
    new_revision: int | None = None,
) -> tuple[ReplicaSetView, ...]:
    """New first, then old, then older ones (newest revision first); ReplicaSets with no pods and no role past
    the old one are left out (a Deployment keeps ten of them)."""
    name = str((stable.get("metadata") or {}).get("name"))
    current = _revision(stable)
    views: list[ReplicaSetView] = []
    if canary is not None:
        canary_name = str((canary.get("metadata") or {}).get("name"))
        canary_current = _revision(canary)
        for rs in canary_sets:
            if _revision(rs) == canary_current:
                views.append(_view(rs, canary_name, "new"))
        new_revision = None  # the stable Deployment's current ReplicaSet is the old version until promotion
    target = new_revision if new_revision is not None else (current if canary is None else None)
    ordered = sorted(stable_sets, key=lambda rs: _revision(rs) or 0, reverse=True)
    old_seen = False
    for rs in ordered:
        revision = _revision(rs)
        if target is not None and revision == target:
            views.append(_view(rs, name, "new"))
        elif not old_seen:
            old_seen = True
            views.append(_view(rs, name, "old"))
        elif int((rs.get("status") or {}).get("replicas") or 0) > 0:
            views.append(_view(rs, name, "older"))
    return tuple(views)
