"""Rolling, recreate and rollback requests: one patch of the workload's own template, then follow it.

Why this module exists: these strategies leave the rollout itself to the kube-controller-manager; the
deployer writes the new template (or a previous revision's) with a resourceVersion precondition and follows
the rollout tick by tick, measuring the background analysis, until the pure `progression` and `analysis`
planners call it complete, failed or paused. A failure rolls back automatically (`reverting`). It must never
decide whether a rollout is done: the planners do.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from opsbus.common.errors import ConflictError, PermanentError
from opsbus.common.events.envelope import EventPayload
from opsbus.common.events.payloads.audit import AuditOutcome
from opsbus.common.events.payloads.common import Actor
from opsbus.common.events.payloads.deploy import (
    DeployFailureReason,
    DeployPhase,
    DeployProgressed,
    DeployRequested,
    DeployStarted,
    Strategy,
)
from opsbus.deployer.domain import analysis, podchecks, progression
from opsbus.deployer.domain.changes import ChangeRefused, images_of, plan_change, plan_template
from opsbus.deployer.executing.context import MAX_APPLY_CONFLICTS, Context
from opsbus.deployer.executing.measuring import measure_due, needs_pods
from opsbus.deployer.executing.reverting import Reverter
from opsbus.deployer.executing.serializing import (
    measurements_from_json,
    measurements_to_json,
    tracking_from_json,
    tracking_to_json,
)
from opsbus.deployer.store import Rollout


def _rollback_target(
    request: DeployRequested, replica_sets: list[dict[str, Any]], current: int | None
) -> dict[str, Any]:
    target = progression.rollback_template(replica_sets, current, request.to_revision)
    if target is None:
        wanted = f"revision {request.to_revision}" if request.to_revision else "a previous revision"
        known = sorted(
            r.get("metadata", {}).get("annotations", {}).get("deployment.kubernetes.io/revision", "?")
            for r in replica_sets
        )
        raise ChangeRefused(
            DeployFailureReason.REVISION_NOT_FOUND,
            f"{request.workload} has no {wanted} to roll back to (revisions kept: {', '.join(known)})",
        )
    return target[1]


class Rolling:
    def __init__(self, ctx: Context, reverter: Reverter) -> None:
        self._ctx = ctx
        self._reverter = reverter

    async def apply(
        self,
        row: Rollout,
        request: DeployRequested,
        live: dict[str, Any],
        previous: dict[str, Any],
        previous_revision: int | None,
    ) -> None:
        ctx = self._ctx
        recorder = ctx.recorder
        now = ctx.clock()
        ns, name = request.workload.namespace, request.workload.name
        obs = progression.Observation.from_deployment(live)
        try:
            if request.strategy is Strategy.ROLLBACK:
                template = _rollback_target(request, await ctx.kube.replica_sets(ns, live), obs.revision)
                patch = plan_template(live, template, row.id)
                images = images_of(template)
            else:
                change = plan_change(live, request, row.id)
                patch, images = change.patch, change.images
        except ChangeRefused as refused:
            await recorder.fail_now(row, request, refused.reason, refused.message)
            return
        if row.step == "pending":
            await recorder.save(
                row.id, {"step": "applying", "previous_template": previous, "previous_revision": previous_revision}
            )
        tracking_data = dict(row.tracking or {})
        try:
            patched = await ctx.kube.patch_deployment(ns, name, patch)
        except ConflictError as exc:
            conflicts = int(tracking_data.get("conflicts", 0)) + 1
            if conflicts >= MAX_APPLY_CONFLICTS:
                await recorder.fail_now(row, request, DeployFailureReason.CONFLICT, str(exc))
            else:
                await recorder.save(row.id, {"tracking": {**tracking_data, "conflicts": conflicts}})
            return
        except PermanentError as exc:
            await recorder.fail_now(row, request, DeployFailureReason.APPLY_FAILED, str(exc))
            return
        started = DeployStarted(
            **{**recorder.base(row, request), "revision": None},
            previous_revision=previous_revision,
            images=images,
            replicas=obs.counts(),
        )
        await recorder.save(
            row.id,
            {
                "step": "applied",
                "started_at": row.started_at or now,
                "tracking": tracking_to_json(ctx.track(patched, request, now)),
                "analysis": {"started_at": now.isoformat(), "measurements": {}} if request.analysis else None,
            },
            emit=[started],
            audit=[("deploy.apply", AuditOutcome.EXECUTED, f"{request.strategy.value} to {images}")],
        )

    async def _analyse(
        self,
        row: Rollout,
        request: DeployRequested,
        *,
        live: dict[str, Any],
        obs: progression.Observation,
        tracking: progression.Tracking,
        now: datetime,
    ) -> tuple[analysis.AnalysisState, dict[str, Any], bool]:
        """The background analysis after this tick's measurements: verdict, what to store, measured or not."""
        assert request.analysis is not None
        ctx = self._ctx
        state = dict(row.analysis or {})
        started_at = state["started_at"]
        new_pods = None
        if needs_pods(request.analysis) and obs.observed_generation >= tracking.target_generation:
            replica_sets = await ctx.kube.replica_sets(request.workload.namespace, live)
            new_pods = podchecks.new_pods_selector(live, replica_sets)
        taken, measured = await measure_due(
            ctx,
            request.analysis,
            measurements_from_json(state.get("measurements")),
            datetime.fromisoformat(started_at),
            now,
            namespace=request.workload.namespace,
            new_pods=new_pods,
        )
        verdict = analysis.judge(request.analysis, taken)
        stored = {
            "started_at": started_at,
            "measurements": measurements_to_json(taken),
            "results": [r.model_dump(mode="json") for r in verdict.results],
        }
        return verdict, stored, measured

    async def follow(self, row: Rollout, request: DeployRequested) -> None:
        ctx = self._ctx
        recorder = ctx.recorder
        now = ctx.clock()
        command = row.command or {}
        live = await ctx.kube.deployment(request.workload.namespace, request.workload.name)
        obs = progression.Observation.from_deployment(live)
        if command.get("action") == "abort":
            actor = Actor.model_validate(command["actor"])
            await self._reverter.begin(
                row, request, live, after="aborted", failure=None, reason=command["reason"], by=actor
            )
            return
        if now >= row.deadline_at:
            timeout = request.timeout_seconds or ctx.options.default_timeout_seconds
            message = f"request timed out after {timeout}s"
            await self._reverter.fail_and_roll_back(
                row, request, live, reason=DeployFailureReason.TIMEOUT, message=message
            )
            return
        assert row.tracking is not None
        st = progression.step(obs, tracking_from_json(row.tracking), now)
        revision = obs.revision if obs.observed_generation >= st.tracking.target_generation else row.revision
        changes: dict[str, Any] = {"tracking": tracking_to_json(st.tracking), "revision": revision}
        row.revision = revision
        verdict: analysis.AnalysisState | None = None
        if request.analysis is not None:
            verdict, changes["analysis"], measured = await self._analyse(
                row, request, live=live, obs=obs, tracking=st.tracking, now=now
            )
            if measured:
                st = progression.Step(st.verdict, st.tracking, True, st.counts, st.message)
        results = verdict.results if verdict else ()

        if st.verdict is progression.Verdict.DEADLINE_EXCEEDED:
            await recorder.save(row.id, changes)
            reason = DeployFailureReason.PROGRESS_DEADLINE_EXCEEDED
            await self._reverter.fail_and_roll_back(row, request, live, reason=reason, message=st.message)
            return
        if verdict is not None and verdict.verdict is analysis.Verdict.FAIL:
            await recorder.save(row.id, changes)
            reason = (
                DeployFailureReason.ANALYSIS_FAILED
                if verdict.outcome.value == "failed"
                else DeployFailureReason.ANALYSIS_INCONCLUSIVE
            )
            await self._reverter.fail_and_roll_back(
                row, request, live, reason=reason, message=verdict.message, results=results
            )
            return
        paused = verdict is not None and verdict.verdict is analysis.Verdict.PAUSE
        if verdict is not None and paused and command.get("action") == "promote":
            paused = False  # a human accepted the inconclusive analysis
            verdict = analysis.AnalysisState(
                analysis.Verdict.SUCCEED, verdict.outcome, verdict.results, verdict.message
            )
        complete = st.verdict is progression.Verdict.COMPLETE
        if complete and (verdict is None or verdict.verdict is analysis.Verdict.SUCCEED):
            await recorder.succeed(row, request=request, live=live, obs=obs, changes=changes, results=results)
            return
        phase = DeployPhase.PAUSED if paused else DeployPhase.ANALYZING if complete else DeployPhase.PROGRESSING
        emit: list[EventPayload] = []
        if st.progressed or phase.value != row.phase:
            message = verdict.message if paused and verdict else st.message
            emit.append(
                DeployProgressed(
                    **recorder.base(row, request),
                    phase=phase,
                    replicas=st.counts,
                    analysis=results,
                    message=message[:1024],
                )
            )
        changes["phase"] = phase.value
        await recorder.save(row.id, changes, emit=emit)
