"""StatefulSet rollouts, partition by partition: an observed StatefulSet and the clock in, the next step out.

Why this module exists: a StatefulSet has no progress deadline and no ReplicaSets, and its rollback has a trap:
with the default `OrderedReady` pod management, reverting the template does not replace a pod already stuck in
CrashLoopBackOff on the bad revision - the controller waits for it forever (the Kubernetes docs' "forced
rollback"; reproduced on the sandbox). So the deployer rolls a StatefulSet out itself, with the RollingUpdate
`partition`:

- the change writes the new template with `partition = replicas - 1`: only the highest ordinal is updated;
- each time every pod of the partition's range runs the new revision and all pods are ready and available, the
  partition goes down by one; at partition 0 the rollout completes like a Deployment's (all updated, available);
- no progress for the request's deadline (plus grace) fails it, as for a Deployment (`progression.step`);
- a rollback writes the previous template with partition 0 and deletes the pods that are on another revision and
  not ready (the stuck ones), so the controller recreates them from the reverted template.

Revisions are the ControllerRevisions' numbers. Pure: plain JSON in, plain data out.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opsbus.common.events.payloads.deploy import DeployFailureReason, DeployRequested, Strategy
from opsbus.deployer.domain import progression
from opsbus.deployer.domain.changes import Change, ChangeRefused, template_change

REVISION_LABEL = "controller-revision-hash"


@dataclass(frozen=True, slots=True)
class View:
    """A StatefulSet as the planner needs it."""

    obs: progression.Observation
    partition: int
    update_revision: str | None
    current_revision: str | None


def _revision_numbers(revisions: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    return {str((r.get("metadata") or {}).get("name")): int(r.get("revision") or 0) for r in revisions}


def observe(sts: Mapping[str, Any], revisions: Sequence[Mapping[str, Any]]) -> View:
    """From a StatefulSet and its ControllerRevisions (JSON, camelCase)."""
    meta = sts.get("metadata") or {}
    spec = sts.get("spec") or {}
    status = sts.get("status") or {}
    rolling = (spec.get("updateStrategy") or {}).get("rollingUpdate") or {}
    update_revision = status.get("updateRevision")
    replicas = int(spec.get("replicas", 1))
    ready = int(status.get("readyReplicas") or 0)
    obs = progression.Observation(
        generation=int(meta.get("generation") or 0),
        observed_generation=int(status.get("observedGeneration") or 0),
        spec_replicas=replicas,
        replicas=int(status.get("replicas") or 0),
        updated=int(status.get("updatedReplicas") or 0),
        ready=ready,
        available=int(status.get("availableReplicas", ready) or 0),
        unavailable=max(replicas - int(status.get("availableReplicas", ready) or 0), 0),
        revision=_revision_numbers(revisions).get(str(update_revision)) if update_revision else None,
    )
    return View(
        obs=obs,
        partition=int(rolling.get("partition") or 0),
        update_revision=str(update_revision) if update_revision else None,
        current_revision=str(status.get("currentRevision")) if status.get("currentRevision") else None,
    )


def _partition_op(live: Mapping[str, Any], partition: int) -> dict[str, Any]:
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"partition": partition}}
    if (live.get("spec") or {}).get("updateStrategy") is None:
        return {"op": "add", "path": "/spec/updateStrategy", "value": strategy}
    return {"op": "replace", "path": "/spec/updateStrategy", "value": strategy}


def plan_change(live: Mapping[str, Any], request: DeployRequested, rollout_id: str) -> Change:
    """The new template, with only the highest ordinal let through (`partition = replicas - 1`)."""
    if request.strategy is not Strategy.ROLLING:
        raise ChangeRefused(
            DeployFailureReason.INVALID_REQUEST,
            f"a StatefulSet is rolled out with strategy rolling (partition by partition) or rollback, "
            f"not {request.strategy.value}",
        )
    ops, previous, images = template_change(live, request, rollout_id)
    replicas = int((live.get("spec") or {}).get("replicas", 1))
    ops.append(_partition_op(live, max(replicas - 1, 0)))
    return Change(patch=ops, previous_template=previous, images=images)


def partition_patch(live: Mapping[str, Any], partition: int) -> list[dict[str, Any]]:
    version = (live.get("metadata") or {}).get("resourceVersion")
    return [{"op": "test", "path": "/metadata/resourceVersion", "value": version}, _partition_op(live, partition)]


def revert_patch(live: Mapping[str, Any], base: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`base` (the template put back) plus partition 0: every pod goes back, not only those above a partition."""
    return [*base, _partition_op(live, 0)]


@dataclass(frozen=True, slots=True)
class Step:
    step: progression.Step
    lower_to: int | None = None  # write this partition next


def advance(view: View, tracking: progression.Tracking, now: datetime) -> Step:
    """The next step of a partitioned rollout that wrote generation `tracking.target_generation`."""
    st = progression.step(view.obs, tracking, now)
    obs = view.obs
    if st.verdict is not progression.Verdict.WAIT or view.partition == 0:
        return Step(st)
    if obs.observed_generation < tracking.target_generation:
        return Step(st)
    want = obs.spec_replicas
    through = obs.updated >= want - view.partition and obs.ready == want and obs.available == want
    if not through:
        message = f"partition {view.partition}: {obs.updated}/{want} updated, {obs.ready} ready"
        return Step(progression.Step(st.verdict, st.tracking, st.progressed, st.counts, message))
    lower = view.partition - 1
    message = f"partition {view.partition} done ({obs.updated}/{want} updated, all ready): lowering it to {lower}"
    return Step(progression.Step(st.verdict, st.tracking, True, st.counts, message), lower_to=lower)


def rollback_template(
    revisions: Sequence[Mapping[str, Any]], current: int | None, to_revision: int | None
) -> tuple[int, dict[str, Any]] | None:
    """The revision and pod template to return to, from the ControllerRevisions; None: no such revision.

    `to_revision` None means the newest revision older than `current` (what `kubectl rollout undo` does).
    """
    by_number = {int(r.get("revision") or 0): r for r in revisions}
    to_revision = progression.pick_revision(by_number, current, to_revision)
    chosen = by_number.get(to_revision) if to_revision is not None else None
    if to_revision is None or chosen is None:
        return None
    template = copy.deepcopy(dict(((chosen.get("data") or {}).get("spec") or {}).get("template") or {}))
    template.pop("$patch", None)
    labels = (template.get("metadata") or {}).get("labels") or {}
    labels.pop(REVISION_LABEL, None)
    return to_revision, template


def stuck_pods(pods: Sequence[Mapping[str, Any]], update_revision: str | None) -> list[str]:
    """Pods the controller will not replace by itself: on another revision than `update_revision`, not ready."""
    if update_revision is None:
        return []
    stuck: list[str] = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        if meta.get("deletionTimestamp") or (meta.get("labels") or {}).get(REVISION_LABEL) == update_revision:
            continue
        conditions = (pod.get("status") or {}).get("conditions") or ()
        if not any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
            stuck.append(str(meta.get("name")))
    return sorted(stuck)
