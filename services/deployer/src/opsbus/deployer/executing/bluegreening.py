"""Blue-green: a `<name>-green` Deployment beside the old stack; the active Service's selector is the switch.

Why this module exists: it observes both stacks and the Service, asks the pure `bluegreen` planner what to do
and applies exactly the one effect it returns (pin or switch the selector, point the preview Service, converge
the stable Deployment, clean up). An abort or a failure before convergence switches traffic back to the old
stack and removes the new one; after convergence it rolls the stable Deployment back (`reverting`). It must
never decide when to switch: the planner does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opsbus.common.changes import Write
from opsbus.common.errors import NotFoundError
from opsbus.common.events.envelope import EventPayload
from opsbus.common.events.payloads.audit import AuditOutcome
from opsbus.common.events.payloads.common import Actor
from opsbus.common.events.payloads.deploy import (
    AnalysisSpec,
    BlueGreenSpec,
    DeployFailed,
    DeployFailureReason,
    DeployPhase,
    DeployProgressed,
    DeployRequested,
    DeployStarted,
)
from opsbus.deployer.domain import bluegreen, podchecks, progression
from opsbus.deployer.domain.changes import (
    GREEN_SUFFIX,
    HASH_LABEL,
    ChangeRefused,
    current_hash,
    green_deployment,
    new_template,
    plan_template,
    promoted_template,
    select_patch,
)
from opsbus.deployer.executing.context import Context
from opsbus.deployer.executing.measuring import measure_due
from opsbus.deployer.executing.recording import SELF, service_write, write_of
from opsbus.deployer.executing.reverting import Reverter
from opsbus.deployer.executing.serializing import bluegreen_from_json, bluegreen_to_json, stored_results
from opsbus.deployer.store import Rollout

JSON = dict[str, Any]


def _phase(state: bluegreen.State, paused: bool) -> DeployPhase:
    if paused:
        return DeployPhase.PAUSED
    if state.stage is bluegreen.Stage.ANALYSE:
        return DeployPhase.ANALYZING
    if state.stage is bluegreen.Stage.SWITCHED:
        return DeployPhase.PROMOTING  # traffic on the new stack; post-promotion analysis, if any, runs here
    if state.stage in (bluegreen.Stage.CONVERGE, bluegreen.Stage.CLEANUP):
        return DeployPhase.SCALING_DOWN
    return DeployPhase.PROGRESSING


def _analysis_window(spec: BlueGreenSpec, state: bluegreen.State) -> AnalysisSpec | None:
    """The analysis measured in this stage: pre-promotion before the switch, post-promotion after it."""
    if state.stage is bluegreen.Stage.ANALYSE:
        return spec.pre_promotion_analysis
    if state.stage is bluegreen.Stage.SWITCHED:
        return spec.post_promotion_analysis
    return None


def _selector_mismatch(service: JSON, live: JSON, request: DeployRequested) -> tuple[dict[str, str], str | None]:
    """The Service's selector without our hash label, and why it cannot switch this workload (None: it can)."""
    assert request.blue_green is not None
    selector = {k: v for k, v in ((service.get("spec") or {}).get("selector") or {}).items() if k != HASH_LABEL}
    labels = (((live.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}
    if selector and all(labels.get(k) == v for k, v in selector.items()):
        return selector, None
    ns = request.workload.namespace
    return selector, (
        f"Service {ns}/{request.blue_green.active_service} (selector {selector}) does not select the pods of "
        f"{request.workload} (labels {labels})"
    )


@dataclass(frozen=True, slots=True)
class Observed:
    """One tick's reads: the planner's view and the objects it was built from."""

    view: bluegreen.View
    stable: JSON
    green: JSON | None
    service: JSON
    green_pods: dict[str, str] | None  # labels selecting the new stack's pods, once its ReplicaSet is known


class BlueGreen:
    def __init__(self, ctx: Context, reverter: Reverter) -> None:
        self._ctx = ctx
        self._reverter = reverter

    async def apply(
        self,
        row: Rollout,
        request: DeployRequested,
        live: JSON,
        previous: JSON,
        previous_revision: int | None,
    ) -> None:
        assert request.blue_green is not None
        ctx = self._ctx
        kube, recorder = ctx.kube, ctx.recorder
        ns = request.workload.namespace
        spec = request.blue_green
        try:
            service = await kube.service(ns, spec.active_service)
            if spec.preview_service is not None:
                await kube.service(ns, spec.preview_service)
        except NotFoundError as exc:
            await recorder.fail_now(row, request, DeployFailureReason.NOT_FOUND, str(exc))
            return
        selector, mismatch = _selector_mismatch(service, live, request)
        if mismatch is not None:
            await recorder.fail_now(row, request, DeployFailureReason.INVALID_REQUEST, mismatch)
            return
        try:
            body = green_deployment(live, request, row.id)
            _, images = new_template(live, request, row.id)
        except ChangeRefused as refused:
            await recorder.fail_now(row, request, refused.reason, refused.message)
            return
        green = body["metadata"]["name"]
        await ctx.create_beside(ns, body, row.id)
        now = ctx.clock()
        await recorder.save(
            row.id,
            {
                "step": "applied",
                "started_at": row.started_at or now,
                "previous_template": previous,
                "previous_revision": previous_revision,
                "revision": previous_revision,
                "tracking": {"bluegreen": bluegreen_to_json(bluegreen.start(now)), "selector": selector},
            },
            emit=[
                DeployStarted(
                    **{**recorder.base(row, request), "revision": None},
                    previous_revision=previous_revision,
                    images=images,
                    replicas=progression.Observation.from_deployment(live).counts(),
                )
            ],
            audit=[("deploy.bluegreen.create", AuditOutcome.EXECUTED, f"{ns}/{green} with {images}")],
            change=write_of(request, "deploy.bluegreen.create", {}, body),
        )

    async def _observe(self, request: DeployRequested, promote: bool) -> Observed:
        assert request.blue_green is not None
        kube = self._ctx.kube
        ns, name = request.workload.namespace, request.workload.name
        stable_live = await kube.deployment(ns, name)
        try:
            green_live: JSON | None = await kube.deployment(ns, f"{name}{GREEN_SUFFIX}")
        except NotFoundError:
            green_live = None
        service = await kube.service(ns, request.blue_green.active_service)
        stable_sets = await kube.replica_sets(ns, stable_live)
        green_sets = await kube.replica_sets(ns, green_live) if green_live else []
        selected = ((service.get("spec") or {}).get("selector") or {}).get(HASH_LABEL)
        view = bluegreen.View(
            stable=progression.Observation.from_deployment(stable_live),
            green=progression.Observation.from_deployment(green_live) if green_live else None,
            stable_hash=current_hash(stable_live, list(stable_sets)),
            green_hash=current_hash(green_live, list(green_sets)) if green_live else None,
            selected_hash=str(selected) if selected else None,
            promote_requested=promote,
        )
        green_pods = podchecks.new_pods_selector(green_live, green_sets) if green_live else None
        return Observed(view, stable_live, green_live, service, green_pods)

    async def follow(self, row: Rollout, request: DeployRequested) -> None:
        assert request.blue_green is not None
        assert row.tracking is not None
        ctx = self._ctx
        recorder = ctx.recorder
        spec = request.blue_green
        now = ctx.clock()
        command = row.command or {}
        state = bluegreen_from_json(row.tracking["bluegreen"])
        observed = await self._observe(request, command.get("action") == "promote")
        view, stable_live = observed.view, observed.stable
        if command.get("action") == "abort":
            actor = Actor.model_validate(command["actor"])
            await self._end(row, request, view, state, failure=None, reason=str(command["reason"]), by=actor)
            return
        if now >= row.deadline_at:
            timeout = request.timeout_seconds or ctx.options.default_timeout_seconds
            failure = recorder.failure(row, request, DeployFailureReason.TIMEOUT, f"request timed out after {timeout}s")
            await self._end(row, request, view, state, failure=failure, reason=failure.message, by=SELF)
            return
        window = _analysis_window(spec, state)
        if window is not None:
            taken, measured = await measure_due(
                ctx,
                window,
                state.measurements,
                state.since,
                now,
                namespace=request.workload.namespace,
                new_pods=observed.green_pods,
            )
            if measured:
                state = bluegreen.State(state.stage, state.since, state.tracking, taken, state.preview_pointed)
        decision = bluegreen.advance(
            spec,
            state,
            view,
            deadline_seconds=request.progress_deadline_seconds,
            grace_seconds=ctx.options.deadline_grace_seconds,
            now=now,
        )
        state = decision.state
        if decision.outcome is bluegreen.Outcome.FAILED:
            assert decision.reason is not None
            failure = recorder.failure(row, request, decision.reason, decision.message, decision.analysis)
            await self._end(row, request, view, state, failure=failure, reason=decision.message, by=SELF)
            return
        original: dict[str, str] = dict(row.tracking["selector"])
        state, write = await self._act(row, request, decision.effect, state, observed=observed, original=original)
        changes: dict[str, Any] = {"tracking": {**row.tracking, "bluegreen": bluegreen_to_json(state)}}
        if decision.used_promote:
            changes["command"] = None
        if decision.analysis:
            changes["analysis"] = {"results": [r.model_dump(mode="json") for r in decision.analysis]}
        if decision.outcome is bluegreen.Outcome.SUCCEEDED:
            changes["revision"] = view.stable.revision
            row.revision = view.stable.revision
            results = decision.analysis or stored_results(row)
            await recorder.succeed(
                row, request=request, live=stable_live, obs=view.stable, changes=changes, results=results, change=write
            )
            return
        phase = _phase(state, paused=decision.outcome is bluegreen.Outcome.PAUSED)
        marker = f"{state.stage.value}:{phase.value}"
        emit: list[EventPayload] = []
        if marker != row.tracking.get("marker"):
            emit.append(
                DeployProgressed(
                    **recorder.base(row, request),
                    phase=phase,
                    replicas=(view.green or view.stable).counts(),
                    analysis=decision.analysis,
                    message=decision.message[:1024],
                )
            )
        changes["tracking"]["marker"] = marker
        changes["phase"] = phase.value
        await recorder.save(row.id, changes, emit=emit, change=write)

    async def _act(
        self,
        row: Rollout,
        request: DeployRequested,
        effect: bluegreen.Effect | None,
        state: bluegreen.State,
        *,
        observed: Observed,
        original: dict[str, str],
    ) -> tuple[bluegreen.State, Write | None]:
        """Apply the planner's effect; after converging, the state follows the generation the write produced.
        The write goes on the change timeline (caused by the request) in the transaction recording the step:
        the switch is the moment the new stack takes the traffic, so the analyzer must see it."""
        assert request.blue_green is not None
        spec = request.blue_green
        kube = self._ctx.kube
        ns, name = request.workload.namespace, request.workload.name
        service, green_live = observed.service, observed.green
        write: Write | None = None
        if isinstance(effect, bluegreen.SelectHash):
            patched = await kube.patch_service(ns, spec.active_service, select_patch(service, original, effect.hash))
            pin = effect.hash == observed.view.stable_hash  # pinned to the old stack before the switch
            write = service_write(request, f"deploy.bluegreen.{'pin' if pin else 'switch'}", service, patched)
        elif isinstance(effect, bluegreen.PointPreview) and spec.preview_service is not None:
            preview = await kube.service(ns, spec.preview_service)
            patched = await kube.patch_service(ns, spec.preview_service, select_patch(preview, original, effect.hash))
            write = service_write(request, "deploy.bluegreen.preview", preview, patched)
        elif isinstance(effect, bluegreen.ConvergeStable):
            assert green_live is not None
            template = promoted_template((green_live.get("spec") or {}).get("template") or {})
            patched = await kube.patch_deployment(ns, name, plan_template(observed.stable, template, row.id))
            write = write_of(request, "deploy.bluegreen.promote", observed.stable, patched)
            tracking = self._ctx.track(patched, request, self._ctx.clock())
            return bluegreen.State(state.stage, state.since, tracking), write
        elif isinstance(effect, bluegreen.RestoreAndDelete):
            if observed.view.selected_hash is not None:
                patched = await kube.patch_service(ns, spec.active_service, select_patch(service, original, None))
                write = service_write(request, "deploy.bluegreen.restore", service, patched)
            await kube.delete_deployment(ns, f"{name}{GREEN_SUFFIX}")
        return state, write

    async def _end(
        self,
        row: Rollout,
        request: DeployRequested,
        view: bluegreen.View,
        state: bluegreen.State,
        *,
        failure: DeployFailed | None,
        reason: str,
        by: Actor,
    ) -> None:
        """Abort: traffic back to the old stack, the new stack removed, the Service's selector restored."""
        assert request.blue_green is not None
        assert row.tracking is not None
        kube = self._ctx.kube
        ns, name = request.workload.namespace, request.workload.name
        service_name = request.blue_green.active_service
        original: dict[str, str] = dict(row.tracking["selector"])
        converged = state.stage in (bluegreen.Stage.CONVERGE, bluegreen.Stage.CLEANUP)
        on_green: JSON | None = None  # the Service as it was while the new stack had the traffic
        switched: JSON | None = None
        if not converged and view.stable_hash is not None and view.selected_hash not in (None, view.stable_hash):
            on_green = await kube.service(ns, service_name)
            switched = await kube.patch_service(ns, service_name, select_patch(on_green, original, view.stable_hash))
        await kube.delete_deployment(ns, f"{name}{GREEN_SUFFIX}")
        service = await kube.service(ns, service_name)
        if ((service.get("spec") or {}).get("selector") or {}).get(HASH_LABEL):
            restored = await kube.patch_service(ns, service_name, select_patch(service, original, None))
            switched = restored if on_green is not None else None
        back = (
            service_write(request, "deploy.bluegreen.switch_back", on_green, switched)
            if on_green and switched
            else None
        )
        if request.blue_green.preview_service is not None:
            preview = await kube.service(ns, request.blue_green.preview_service)
            await kube.patch_service(ns, request.blue_green.preview_service, select_patch(preview, original, None))
        if converged:
            stable_live = await kube.deployment(ns, name)
            after = "aborted" if failure is None else "rolledback"
            await self._reverter.begin(row, request, stable_live, after=after, failure=failure, reason=reason, by=by)
            return
        await self._reverter.end_untouched(
            row,
            request,
            revision=view.stable.revision,
            failure=failure,
            reason=reason,
            by=by,
            done="traffic back on the old stack, new stack removed",
            action="deploy.bluegreen.abort",
            change=back,
        )
