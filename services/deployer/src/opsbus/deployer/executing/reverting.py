"""Putting a workload back on the template it ran before the rollout, and following that to the end.

Why this module exists: every strategy that changed the workload's own template (rolling, a canary or a
blue-green that had begun converging) rolls back the same way: write the saved previous template with a
resourceVersion precondition, then follow the Deployment until it is complete or the progress deadline passes.
The rollback ends the request with exactly one terminal event. It must never pick the template to return to:
that was saved when the rollout started.
"""

from __future__ import annotations

import logging
from typing import Any

from opsbus.common.changes import Write
from opsbus.common.errors import ConflictError, TransientError
from opsbus.common.events.envelope import EventPayload
from opsbus.common.events.payloads.audit import AuditOutcome
from opsbus.common.events.payloads.common import Actor
from opsbus.common.events.payloads.deploy import (
    AnalysisResult,
    DeployAborted,
    DeployFailed,
    DeployFailureReason,
    DeployPhase,
    DeployRequested,
    DeployRollbackFailed,
    DeployRolledBack,
    Strategy,
)
from opsbus.deployer.domain import progression
from opsbus.deployer.domain.changes import images_of
from opsbus.deployer.executing.context import MAX_APPLY_CONFLICTS, Context
from opsbus.deployer.executing.recording import SELF, write_of
from opsbus.deployer.executing.serializing import tracking_from_json, tracking_to_json
from opsbus.deployer.executing.workloads import workload_of
from opsbus.deployer.store import Revision, Rollout

log = logging.getLogger(__name__)


def _analysis_of(failure: DeployFailed | None) -> dict[str, Any]:
    """The failing analysis kept on the rollout (its view shows why it failed), when the failure carries one."""
    if failure is None or not failure.analysis:
        return {}
    return {"analysis": {"results": [r.model_dump(mode="json") for r in failure.analysis]}}


class Reverter:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    async def fail_and_roll_back(
        self,
        row: Rollout,
        request: DeployRequested,
        live: dict[str, Any],
        *,
        reason: DeployFailureReason,
        message: str,
        results: tuple[AnalysisResult, ...] = (),
    ) -> None:
        """`deploy.failed` (rollback pending) and the rollback begun; nothing changed yet -> just failed."""
        recorder = self._ctx.recorder
        if request.strategy is Strategy.ROLLBACK or row.previous_template is None:
            await recorder.fail_now(row, request, reason, message)
            return
        failure = recorder.failure(row, request, reason, message, results)
        await self.begin(row, request, live, after="rolledback", failure=failure, reason=message, by=SELF)

    async def begin(
        self,
        row: Rollout,
        request: DeployRequested,
        live: dict[str, Any],
        *,
        after: str,
        failure: DeployFailed | None,
        reason: str,
        by: Actor,
    ) -> None:
        """Write the previous template back; the rollout then ends as `after` (aborted or rolledback)."""
        assert row.previous_template is not None
        workload = workload_of(self._ctx.kube, request.workload.kind)
        ns, name = request.workload.namespace, request.workload.name
        for _attempt in range(MAX_APPLY_CONFLICTS):
            try:
                patched = await workload.patch(ns, name, workload.revert(live, row.previous_template, row.id))
                break
            except ConflictError:
                live = (await workload.read(ns, name)).live
        else:
            raise TransientError(
                f"rollback of {request.workload}: resourceVersion conflicts {MAX_APPLY_CONFLICTS} times"
            )
        tracking = self._ctx.track(patched, request, self._ctx.clock())
        template = (live.get("spec") or {}).get("template") or {}
        bad = Revision(
            workload=row.workload,
            revision=row.revision,
            rollout_id=row.id,
            images=images_of(template),
            template=template,
            outcome="bad",
        )
        await self._ctx.recorder.save(
            row.id,
            {
                "step": "rolling_back",
                "phase": DeployPhase.PROGRESSING.value,
                "tracking": {
                    **tracking_to_json(tracking),
                    "after": after,
                    "reason": reason,
                    "by": by.model_dump(mode="json"),
                    "failure": failure.reason.value if failure else None,
                },
                "outcome_reason": failure.reason.value if failure else "aborted",
                "message": reason,
                **_analysis_of(failure),
            },
            emit=[failure] if failure else [],
            audit=[("deploy.rollback", AuditOutcome.EXECUTED, f"{after}: {reason}")],
            revision=bad if failure else None,
            change=write_of(request, "deploy.rollback", live, patched),
        )

    async def end_untouched(
        self,
        row: Rollout,
        request: DeployRequested,
        *,
        revision: int | None,
        failure: DeployFailed | None,
        reason: str,
        by: Actor,
        done: str,
        action: str,
        change: Write | None = None,
    ) -> None:
        """End a rollout that never wrote the stable workload (its extra stack is already gone): aborted, or
        `failure` then `deploy.rolledback` to the revision that kept running. `done` says what was undone;
        `change` is the traffic switch back, if there was one, for the change timeline."""
        recorder = self._ctx.recorder
        base = recorder.base(row, request)
        emit: list[EventPayload]
        if failure is None:
            emit = [DeployAborted(**base, aborted_by=by, reason=reason[:1024], reverted_to_revision=revision)]
            state_name = "aborted"
        else:
            back = DeployRolledBack(
                **base, from_revision=None, to_revision=revision or 1, automatic=True, reason=f"{done}: {reason}"[:1024]
            )
            emit = [failure, back]
            state_name = "rolledback"
        await recorder.save(
            row.id,
            {
                "state": state_name,
                "phase": None,
                "finished_at": self._ctx.clock(),
                "outcome_reason": failure.reason.value if failure else "aborted",
                "message": reason,
                **_analysis_of(failure),
            },
            emit=emit,
            audit=[(action, AuditOutcome.EXECUTED, f"{state_name}: {done}; {reason}")],
            change=change,
        )

    async def follow(self, row: Rollout, request: DeployRequested) -> None:
        """One tick of a rollback under way: wait, finish it, or give up at its progress deadline.

        Giving up is terminal and said once: `deploy.rollback_failed` (after an automatic rollback the
        `deploy.failed` already said why the rollout failed; after an abort nothing terminal was said yet).
        """
        ctx = self._ctx
        now = ctx.clock()
        assert row.tracking is not None
        ns = request.workload.namespace
        workload = workload_of(ctx.kube, request.workload.kind)
        seen = await workload.read(ns, request.workload.name)
        obs = seen.obs
        tracking = tracking_from_json(row.tracking)
        if obs.observed_generation >= tracking.target_generation:  # the controller knows the reverted template
            replaced = await workload.unstick(ns, seen)  # a StatefulSet's pods stuck on the bad revision
            if replaced:
                log.info("rollout %s: deleted %s, stuck on the bad revision, to come back reverted", row.id, replaced)
        st = progression.step(obs, tracking, now)
        extra = {k: row.tracking.get(k) for k in ("after", "reason", "by", "failure")}
        after = str(extra["after"])
        if st.verdict is progression.Verdict.WAIT:
            await ctx.recorder.save(row.id, {"tracking": {**tracking_to_json(st.tracking), **extra}})
            return
        base = ctx.recorder.base(row, request)
        if st.verdict is progression.Verdict.DEADLINE_EXCEEDED:
            message = f"rollback did not complete: {st.message}; the workload needs a human"
            stuck = DeployRollbackFailed(
                **base,
                failure=DeployFailureReason(extra["failure"]) if extra["failure"] else None,
                to_revision=row.previous_revision,
                replicas=st.counts,
                message=message[:4096],
            )
            await ctx.recorder.save(
                row.id,
                {
                    "state": "failed",
                    "phase": None,
                    "finished_at": now,
                    "outcome_reason": "rollback_failed",
                    "message": message,
                },
                emit=[stuck],
                audit=[("deploy.rollback", AuditOutcome.FAILED, message)],
            )
            return
        by = Actor.model_validate(extra["by"])
        reason = str(extra["reason"])
        payload: EventPayload
        if after == "aborted":
            payload = DeployAborted(**base, aborted_by=by, reason=reason[:1024], reverted_to_revision=obs.revision)
        else:
            payload = DeployRolledBack(
                **base,
                from_revision=row.revision,
                to_revision=obs.revision or 1,
                automatic=True,
                reason=reason[:1024],
            )
        await ctx.recorder.save(
            row.id,
            {"state": after, "phase": None, "finished_at": now},
            emit=[payload],
            audit=[("deploy.rollback", AuditOutcome.EXECUTED, f"{after}: back on revision {obs.revision}")],
        )
