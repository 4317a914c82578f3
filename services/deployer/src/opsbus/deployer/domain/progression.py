"""The rollout progression planner: an observed Deployment and the clock in, the next step out.

Why this module exists: "is the rollout done, stuck or still moving?" is the decision every strategy makes on
every tick, and getting it wrong either declares a half-rolled-out release healthy or leaves a rollout
Progressing forever (argo-rollouts#872). The rules are `kubectl rollout status`'s, plus a deadline of our own:

- the controller must have observed the generation we wrote (`observedGeneration >= target`), or nothing in
  the status describes our change yet;
- the controller's own `Progressing=False, reason=ProgressDeadlineExceeded` fails the rollout (we set
  `spec.progressDeadlineSeconds` from the request, so the kube-controller-manager measures it);
- complete when updated == replicas == available == spec.replicas (no old pods left, all new ones available);
- otherwise the rollout progresses while any replica count changes; no change for the deadline (plus a grace,
  so the controller's condition wins when a controller is there) fails it. A paused Deployment does not age.

Pure: plain data in, plain data out; the executor reads the Deployment and the clock. Never imports a client.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from opsbus.common.events.payloads.common import ReplicaCounts


@dataclass(frozen=True, slots=True)
class Condition:
    type: str
    status: str
    reason: str | None = None
    message: str | None = None


@dataclass(frozen=True, slots=True)
class Observation:
    """What the apiserver says about a Deployment, reduced to what progression needs."""

    generation: int
    observed_generation: int
    spec_replicas: int
    replicas: int = 0
    updated: int = 0
    ready: int = 0
    available: int = 0
    unavailable: int = 0
    paused: bool = False
    conditions: tuple[Condition, ...] = ()
    revision: int | None = None

    @classmethod
    def from_deployment(cls, obj: Mapping[str, Any]) -> Observation:
        """From a Deployment as JSON (camelCase, as the apiserver sends it)."""
        meta = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        status = obj.get("status") or {}
        revision = (meta.get("annotations") or {}).get("deployment.kubernetes.io/revision")
        return cls(
            generation=int(meta.get("generation") or 0),
            observed_generation=int(status.get("observedGeneration") or 0),
            spec_replicas=int(spec.get("replicas", 1)),
            replicas=int(status.get("replicas") or 0),
            updated=int(status.get("updatedReplicas") or 0),
            ready=int(status.get("readyReplicas") or 0),
            available=int(status.get("availableReplicas") or 0),
            unavailable=int(status.get("unavailableReplicas") or 0),
            paused=bool(spec.get("paused", False)),
            conditions=tuple(
                Condition(
                    type=str(c.get("type")),
                    status=str(c.get("status")),
                    reason=c.get("reason"),
                    message=c.get("message"),
                )
                for c in status.get("conditions") or ()
            ),
            revision=int(revision) if revision and str(revision).isdigit() else None,
        )

    def condition(self, kind: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == kind), None)

    def counts(self) -> ReplicaCounts:
        return ReplicaCounts(
            desired=self.spec_replicas,
            updated=self.updated,
            ready=self.ready,
            available=self.available,
            unavailable=self.unavailable,
        )

    def marker(self) -> tuple[int, ...]:
        """What counts as progress: any change of these."""
        return (self.observed_generation, self.replicas, self.updated, self.ready, self.available, self.unavailable)


@dataclass(frozen=True, slots=True)
class Tracking:
    """What the executor remembers between ticks (persisted with the rollout)."""

    target_generation: int
    deadline_seconds: int
    last_progress_at: datetime
    marker: tuple[int, ...] | None = None
    grace_seconds: int = 15


class Verdict(StrEnum):
    WAIT = "wait"
    COMPLETE = "complete"
    DEADLINE_EXCEEDED = "deadline_exceeded"


@dataclass(frozen=True, slots=True)
class Step:
    verdict: Verdict
    tracking: Tracking
    progressed: bool  # replica counts changed since the last tick: worth a deploy.progressed event
    counts: ReplicaCounts
    message: str


def _complete(obs: Observation) -> bool:
    want = obs.spec_replicas
    return obs.updated == want and obs.replicas == want and obs.available == want


def step(obs: Observation, tracking: Tracking, now: datetime) -> Step:
    """The next step of a rollout that wrote generation `tracking.target_generation`."""
    marker = obs.marker()
    progressed = tracking.marker is not None and marker != tracking.marker
    moved = progressed or tracking.marker is None or obs.paused
    tracking = replace(tracking, marker=marker, last_progress_at=now if moved else tracking.last_progress_at)
    counts = obs.counts()
    summary = (
        f"{obs.updated}/{obs.spec_replicas} updated, {obs.available} available, "
        f"{max(obs.replicas - obs.updated, 0)} old"
    )

    if obs.observed_generation < tracking.target_generation:
        verdict, message = (
            Verdict.WAIT,
            f"waiting for the controller to observe generation {tracking.target_generation}",
        )
    else:
        progressing = obs.condition("Progressing")
        if (
            progressing is not None
            and progressing.status == "False"
            and progressing.reason == "ProgressDeadlineExceeded"
        ):
            verdict = Verdict.DEADLINE_EXCEEDED
            message = f"ProgressDeadlineExceeded: {progressing.message or 'no progress'} ({summary})"
        elif _complete(obs):
            verdict, message = Verdict.COMPLETE, f"rollout complete: {summary}"
        elif obs.paused:
            verdict, message = Verdict.WAIT, f"the Deployment is paused ({summary})"
        else:
            verdict, message = Verdict.WAIT, f"rolling out: {summary}"
    if verdict is Verdict.WAIT:
        stalled = now - tracking.last_progress_at
        if stalled > timedelta(seconds=tracking.deadline_seconds + tracking.grace_seconds):
            verdict = Verdict.DEADLINE_EXCEEDED
            message = (
                f"no progress for {stalled.total_seconds():.0f}s (deadline {tracking.deadline_seconds}s): {summary}"
            )
    return Step(verdict=verdict, tracking=tracking, progressed=progressed, counts=counts, message=message)


def pick_revision(known: Iterable[int], current: int | None, wanted: int | None) -> int | None:
    """`wanted`, or without one the newest known revision older than `current` (`kubectl rollout undo`)."""
    if wanted is not None:
        return wanted
    older = [r for r in known if current is None or r < current]
    return max(older) if older else None


def rollback_template(
    replica_sets: Sequence[Mapping[str, Any]], current_revision: int | None, to_revision: int | None
) -> tuple[int, dict[str, Any]] | None:
    """The revision and pod template to roll back to, from the Deployment's ReplicaSets (as JSON).

    `to_revision` None means the newest revision older than the current one (what `kubectl rollout undo`
    does). The `pod-template-hash` label the controller adds is removed, as the controller adds it again.
    """
    by_revision: dict[int, Mapping[str, Any]] = {}
    for rs in replica_sets:
        raw = ((rs.get("metadata") or {}).get("annotations") or {}).get("deployment.kubernetes.io/revision")
        if raw is not None and str(raw).isdigit():
            by_revision[int(raw)] = rs
    to_revision = pick_revision(by_revision, current_revision, to_revision)
    chosen = by_revision.get(to_revision) if to_revision is not None else None
    if to_revision is None or chosen is None:
        return None
    template = dict((chosen.get("spec") or {}).get("template") or {})
    metadata = dict(template.get("metadata") or {})
    labels = {k: v for k, v in (metadata.get("labels") or {}).items() if k != "pod-template-hash"}
    metadata["labels"] = labels
    template["metadata"] = metadata
    return to_revision, template
