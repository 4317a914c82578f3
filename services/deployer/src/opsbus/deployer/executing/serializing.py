"""What the store keeps of a rollout's in-flight state, and back: the planners' dataclasses as JSON.

Why this module exists: a rollout survives a restart of the deployer only if every planner state it needs is in
its row; the encoding lives in one place so a resumed rollout reads exactly what the previous owner wrote.
It must never decide anything or touch the cluster.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

from opsbus.common.events.envelope import Envelope
from opsbus.common.events.payloads.common import WorkloadRef
from opsbus.common.events.payloads.deploy import AnalysisResult, DeployRequested, Measurement
from opsbus.deployer.api import RolloutView
from opsbus.deployer.domain import bluegreen, canary, progression
from opsbus.deployer.store import Rollout


def workload_key(ref: WorkloadRef) -> str:
    return f"{ref.kind}/{ref.namespace}/{ref.name}"


def request_of(row: Rollout) -> tuple[Envelope, DeployRequested]:
    event = Envelope.model_validate(row.request)
    return event, event.payload_as(DeployRequested)


def measurements_to_json(taken: Mapping[str, Sequence[Measurement]]) -> dict[str, list[dict[str, Any]]]:
    return {k: [m.model_dump(mode="json") for m in v] for k, v in taken.items()}


def measurements_from_json(data: dict[str, Any] | None) -> dict[str, list[Measurement]]:
    return {k: [Measurement.model_validate(m) for m in v] for k, v in (data or {}).items()}


def tracking_to_json(t: progression.Tracking) -> dict[str, Any]:
    data = asdict(t)
    data["last_progress_at"] = t.last_progress_at.isoformat()
    data["marker"] = list(t.marker) if t.marker is not None else None
    return data


def tracking_from_json(data: dict[str, Any]) -> progression.Tracking:
    marker = data.get("marker")
    return progression.Tracking(
        target_generation=int(data["target_generation"]),
        deadline_seconds=int(data["deadline_seconds"]),
        last_progress_at=datetime.fromisoformat(data["last_progress_at"]),
        marker=tuple(marker) if marker is not None else None,
        grace_seconds=int(data.get("grace_seconds", 15)),
    )


def canary_to_json(state: canary.CanaryState) -> dict[str, Any]:
    return {
        "step": state.step,
        "stage": state.stage.value,
        "since": state.since.isoformat(),
        "tracking": tracking_to_json(state.tracking) if state.tracking else None,
        "measurements": measurements_to_json(state.measurements),
        "watch_next": {k: v.isoformat() for k, v in state.watch_next.items()},
        "weight": state.weight,
    }


def canary_from_json(data: dict[str, Any]) -> canary.CanaryState:
    return canary.CanaryState(
        step=int(data["step"]),
        stage=canary.Stage(data["stage"]),
        since=datetime.fromisoformat(data["since"]),
        tracking=tracking_from_json(data["tracking"]) if data.get("tracking") else None,
        measurements=measurements_from_json(data.get("measurements")),
        watch_next={k: datetime.fromisoformat(v) for k, v in (data.get("watch_next") or {}).items()},
        weight=int(data["weight"]) if data.get("weight") is not None else None,
    )


def bluegreen_to_json(state: bluegreen.State) -> dict[str, Any]:
    return {
        "stage": state.stage.value,
        "since": state.since.isoformat(),
        "tracking": tracking_to_json(state.tracking) if state.tracking else None,
        "measurements": measurements_to_json(state.measurements),
        "preview_pointed": state.preview_pointed,
    }


def bluegreen_from_json(data: dict[str, Any]) -> bluegreen.State:
    return bluegreen.State(
        stage=bluegreen.Stage(data["stage"]),
        since=datetime.fromisoformat(data["since"]),
        tracking=tracking_from_json(data["tracking"]) if data.get("tracking") else None,
        measurements=measurements_from_json(data.get("measurements")),
        preview_pointed=bool(data.get("preview_pointed", False)),
    )


def stored_results(row: Rollout) -> tuple[AnalysisResult, ...]:
    """The analysis results last saved on the rollout."""
    return tuple(AnalysisResult.model_validate(r) for r in (row.analysis or {}).get("results", []))


def _weight(row: Rollout) -> int | None:
    """The canary weight last written to the route (a canary with a router), from the saved planner state."""
    state = (row.tracking or {}).get("canary")
    weight = state.get("weight") if isinstance(state, dict) else None
    return int(weight) if weight is not None else None


def _progress(row: Rollout) -> tuple[int | None, str | None]:
    """The canary's current step (1-based) and stage, or the blue-green stage, from the saved planner state."""
    tracking = row.tracking or {}
    if isinstance(tracking.get("canary"), dict):
        state = tracking["canary"]
        return int(state["step"]) + 1, str(state["stage"])
    if isinstance(tracking.get("bluegreen"), dict):
        return None, str(tracking["bluegreen"]["stage"])
    return None, None


def view(row: Rollout) -> RolloutView:
    """The rollout as the gateway shows it: its state, the request's spec (steps, analysis) and where it is."""
    _, request = request_of(row)
    step, stage = _progress(row)
    return RolloutView(
        deployment_id=row.id,
        request_id=row.request_id,
        workload=row.workload,
        strategy=row.strategy,
        state=row.state,
        phase=row.phase,
        revision=row.revision,
        previous_revision=row.previous_revision,
        requested_at=row.requested_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        reason=row.outcome_reason,
        message=row.message,
        analysis=stored_results(row),
        images=dict(request.images),
        canary=request.canary,
        blue_green=request.blue_green,
        analysis_spec=request.analysis,
        step=step,
        stage=stage,
        canary_weight=_weight(row),
        request_reason=request.reason,
    )
