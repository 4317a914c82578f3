"""Rolling, recreate and rollback requests: one patch of the workload's own template, then follow it.

Deployments and StatefulSets alike (`workloads`): a StatefulSet is let through partition by partition.

Why this module exists: these strategies leave the rollout itself to the kube-controller-manager; the
deployer writes the new template (or a previous revision's) with a resourceVersion precondition and follows
the rollout tick by tick, measuring the background analysis, until the pure `progression` and `analysis`
planners call it complete, failed or paused. A failure rolls back automatically (`reverting`). It must never
decide whether a rollout is done: the planners do.
"""

from __future__ import annotations

from dataclasses import replace
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
from opsbus.deployer.domain import analysis, progression
from opsbus.deployer.domain.changes import ChangeRefused, images_of
from opsbus.deployer.executing.context import MAX_APPLY_CONFLICTS, Context
from opsbus.deployer.executing.measuring import measure_due, needs_pods
from opsbus.deployer.executing.recording import write_of
from opsbus.deployer.executing.reverting import Reverter
from opsbus.deployer.executing.serializing import (
    measurements_from_json,
    measurements_to_json,
    tracking_from_json,
    tracking_to_json,
)
from opsbus.deployer.executing.workloads import Seen, Workload, workload_of
from opsbus.deployer.store import Rollout


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
        workload = workload_of(ctx.kube, request.workload.kind)
        seen = await workload.read(ns, name)
        obs = seen.obs
        try:
            if request.strategy is Strategy.ROLLBACK:
                template = await workload.rollback_target(ns, seen, request)
                patch = workload.revert(seen.live, template, row.id)
                images = images_of(template)
            else:
                change = workload.change(seen, request, row.id)
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
            patched = await workload.patch(ns, name, patch)
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
            change=write_of(request, f"deploy.{request.strategy.value}", seen.live, patched),
        )

    async def _analyse(
        self,
        row: Rollout,
        request: DeployRequested,
        *,
        seen: Seen,
        tracking: progression.Tracking,
        now: datetime,
    ) -> tuple[analysis.AnalysisState, dict[str, Any], bool]:
        """The background analysis after this tick's measurements: verdict, what to store, measured or not."""
        assert request.analysis is not None
        ctx = self._ctx
        state = dict(row.analysis or {})
        started_at = state["started_at"]
        new_pods = None
        if needs_pods(request.analysis) and seen.obs.observed_generation >= tracking.target_generation:
            new_pods = await workload_of(ctx.kube, request.workload.kind).new_pods(request.workload.namespace, seen)
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

    async def _advance(
        self,
        workload: Workload,
        seen: Seen,
        request: DeployRequested,
        tracking: progression.Tracking,
        now: datetime,
    ) -> progression.Step:
        """The progression step; a StatefulSet whose partition is through gets the next ordinal let through."""
        advanced = workload.advance(seen, tracking, now)
        st = advanced.step
        if advanced.lower_to is None:
            return st
        patched = await workload.patch(
            request.workload.namespace, request.workload.name, workload.lower(seen, advanced.lower_to)
        )
        generation = int((patched.get("metadata") or {}).get("generation") or 0)
        return progression.Step(
            st.verdict, replace(st.tracking, target_generation=generation), True, st.counts, st.message
        )

    async def follow(self, row: Rollout, request: DeployRequested) -> None:
        ctx = self._ctx
        recorder = ctx.recorder
        now = ctx.clock()
        command = row.command or {}
        ns, name = request.workload.namespace, request.workload.name
        workload = workload_of(ctx.kube, request.workload.kind)
        seen = await workload.read(ns, name)
        live, obs = seen.live, seen.obs
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
        st = await self._advance(workload, seen, request, tracking_from_json(row.tracking), now)
        revision = obs.revision if obs.observed_generation >= st.tracking.target_generation else row.revision
        changes: dict[str, Any] = {"tracking": tracking_to_json(st.tracking), "revision": revision}
        row.revision = revision
        verdict: analysis.AnalysisState | None = None
        if request.analysis is not None:
            verdict, changes["analysis"], measured = await self._analyse(
                row, request, seen=seen, tracking=st.tracking, now=now
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
