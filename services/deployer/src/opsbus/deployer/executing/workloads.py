"""How the rolling executor and the rollback read and write each kind of workload: Deployments and StatefulSets.

Why this module exists: "rolling update, then roll back on failure" is one procedure, but a Deployment is
followed through its ReplicaSets and the controller's own progress deadline, while a StatefulSet is let through
partition by partition and its rollback must delete the pods stuck on the bad revision (`domain/stateful.py`).
Each class here only reads, writes and asks its planner; it decides nothing itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from opsbus.common.events.payloads.deploy import DeployFailureReason, DeployRequested
from opsbus.deployer.domain import podchecks, progression, stateful
from opsbus.deployer.domain.changes import Change, ChangeRefused, plan_change, plan_template
from opsbus.deployer.kube import KubePort

JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Seen:
    """One read of the workload: the object, what progression needs, and a StatefulSet's partition view."""

    live: JSON
    obs: progression.Observation
    stateful: stateful.View | None = None


class Workload(Protocol):
    async def read(self, namespace: str, name: str) -> Seen: ...
    async def patch(self, namespace: str, name: str, ops: list[dict[str, Any]]) -> JSON: ...
    async def new_pods(self, namespace: str, seen: Seen) -> dict[str, str] | None: ...
    async def rollback_target(self, namespace: str, seen: Seen, request: DeployRequested) -> JSON: ...
    async def unstick(self, namespace: str, seen: Seen) -> list[str]: ...
    def change(self, seen: Seen, request: DeployRequested, rollout_id: str) -> Change: ...
    def revert(self, live: JSON, template: JSON, rollout_id: str) -> list[dict[str, Any]]: ...
    def advance(self, seen: Seen, tracking: progression.Tracking, now: datetime) -> stateful.Step: ...
    def lower(self, seen: Seen, partition: int) -> list[dict[str, Any]]: ...


def _no_revision(request: DeployRequested, known: list[str]) -> ChangeRefused:
    wanted = f"revision {request.to_revision}" if request.to_revision else "a previous revision"
    return ChangeRefused(
        DeployFailureReason.REVISION_NOT_FOUND,
        f"{request.workload} has no {wanted} to roll back to (revisions kept: {', '.join(sorted(known))})",
    )


class Deployments:
    def __init__(self, kube: KubePort) -> None:
        self._kube = kube

    async def read(self, namespace: str, name: str) -> Seen:
        live = await self._kube.deployment(namespace, name)
        return Seen(live, progression.Observation.from_deployment(live))

    async def patch(self, namespace: str, name: str, ops: list[dict[str, Any]]) -> JSON:
        return await self._kube.patch_deployment(namespace, name, ops)

    async def new_pods(self, namespace: str, seen: Seen) -> dict[str, str] | None:
        return podchecks.new_pods_selector(seen.live, await self._kube.replica_sets(namespace, seen.live))

    async def rollback_target(self, namespace: str, seen: Seen, request: DeployRequested) -> JSON:
        replica_sets = await self._kube.replica_sets(namespace, seen.live)
        target = progression.rollback_template(replica_sets, seen.obs.revision, request.to_revision)
        if target is None:
            known = [
                str(r.get("metadata", {}).get("annotations", {}).get("deployment.kubernetes.io/revision", "?"))
                for r in replica_sets
            ]
            raise _no_revision(request, known)
        return target[1]

    async def unstick(self, namespace: str, seen: Seen) -> list[str]:
        return []  # the Deployment controller replaces a crashing pod of a reverted template by itself

    def change(self, seen: Seen, request: DeployRequested, rollout_id: str) -> Change:
        return plan_change(seen.live, request, rollout_id)

    def revert(self, live: JSON, template: JSON, rollout_id: str) -> list[dict[str, Any]]:
        return plan_template(live, template, rollout_id)

    def advance(self, seen: Seen, tracking: progression.Tracking, now: datetime) -> stateful.Step:
        return stateful.Step(progression.step(seen.obs, tracking, now))

    def lower(self, seen: Seen, partition: int) -> list[dict[str, Any]]:
        raise AssertionError("a Deployment has no partition")


class StatefulSets:
    def __init__(self, kube: KubePort) -> None:
        self._kube = kube

    async def read(self, namespace: str, name: str) -> Seen:
        live = await self._kube.statefulset(namespace, name)
        view = stateful.observe(live, await self._kube.controller_revisions(namespace, live))
        return Seen(live, view.obs, view)

    async def patch(self, namespace: str, name: str, ops: list[dict[str, Any]]) -> JSON:
        return await self._kube.patch_statefulset(namespace, name, ops)

    async def new_pods(self, namespace: str, seen: Seen) -> dict[str, str] | None:
        labels = ((seen.live.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        if seen.stateful is None or seen.stateful.update_revision is None or not labels:
            return None
        return {**{str(k): str(v) for k, v in labels.items()}, stateful.REVISION_LABEL: seen.stateful.update_revision}

    async def rollback_target(self, namespace: str, seen: Seen, request: DeployRequested) -> JSON:
        revisions = await self._kube.controller_revisions(namespace, seen.live)
        target = stateful.rollback_template(revisions, seen.obs.revision, request.to_revision)
        if target is None:
            raise _no_revision(request, [str(r.get("revision")) for r in revisions])
        return target[1]

    async def unstick(self, namespace: str, seen: Seen) -> list[str]:
        labels = ((seen.live.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        if seen.stateful is None or not labels:
            return []
        pods = await self._kube.pods(namespace, {str(k): str(v) for k, v in labels.items()})
        stuck = stateful.stuck_pods(pods, seen.stateful.update_revision)
        for pod in stuck:
            await self._kube.delete_pod(namespace, pod)
        return stuck

    def change(self, seen: Seen, request: DeployRequested, rollout_id: str) -> Change:
        return stateful.plan_change(seen.live, request, rollout_id)

    def revert(self, live: JSON, template: JSON, rollout_id: str) -> list[dict[str, Any]]:
        return stateful.revert_patch(live, plan_template(live, template, rollout_id))

    def advance(self, seen: Seen, tracking: progression.Tracking, now: datetime) -> stateful.Step:
        assert seen.stateful is not None
        return stateful.advance(seen.stateful, tracking, now)

    def lower(self, seen: Seen, partition: int) -> list[dict[str, Any]]:
        return stateful.partition_patch(seen.live, partition)


def workload_of(kube: KubePort, kind: str) -> Workload:
    """The reader/writer for `kind`; the engine refuses other kinds before asking."""
    return StatefulSets(kube) if kind == "StatefulSet" else Deployments(kube)
