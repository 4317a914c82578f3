"""Replica-ratio canary: a second Deployment sharing the Service, scaled step by step, then promoted or removed.

Why this module exists: without a service mesh the traffic share of a canary is its share of the Service's
ready pods, so the executor creates `<name>-canary` with the new template, scales it per step as the pure
`canary` planner says, measures each step's analysis, and on promotion writes the canary's template into the
stable Deployment. Abort removes the canary and leaves the stable Deployment untouched (unless promotion had
begun, then it rolls back). With a traffic router the executor also reads the route every tick and writes the
weights the planner sets, each write a JSON patch guarded by the route's resourceVersion; an abort restores all
traffic to the stable in one such write before the canary goes. The canary's pods carry the stable selector's
labels, so while a router splits the traffic the stable Service is pinned to the stable ReplicaSet's
`pod-template-hash` (as blue-green pins its Service), and given its own selector back before promotion and on
abort: the stable backend then never reaches the canary's pods. It must never choose weights, replica counts or
verdicts: the planner does.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from opsbus.common.changes import Write
from opsbus.common.errors import ConflictError, NotFoundError
from opsbus.common.events.envelope import EventPayload
from opsbus.common.events.payloads.audit import AuditOutcome
from opsbus.common.events.payloads.common import Actor
from opsbus.common.events.payloads.deploy import (
    DeployFailed,
    DeployFailureReason,
    DeployPhase,
    DeployProgressed,
    DeployRequested,
    DeployStarted,
    TrafficRouter,
)
from opsbus.deployer.domain import canary, podchecks, progression, routing
from opsbus.deployer.domain.changes import (
    ChangeRefused,
    canary_deployment,
    canary_name,
    current_hash,
    new_template,
    plan_template,
    promoted_template,
    select_patch,
)
from opsbus.deployer.executing.context import Context
from opsbus.deployer.executing.measuring import measure, measure_due, needs_pods
from opsbus.deployer.executing.recording import SELF, route_write, write_of
from opsbus.deployer.executing.reverting import Reverter
from opsbus.deployer.executing.serializing import canary_from_json, canary_to_json, stored_results
from opsbus.deployer.store import Rollout

log = logging.getLogger(__name__)


def _phase(state: canary.CanaryState, paused: bool) -> DeployPhase:
    if paused:
        return DeployPhase.PAUSED
    if state.stage in (canary.Stage.PROMOTE, canary.Stage.CLEANUP):
        return DeployPhase.PROMOTING
    if state.stage is canary.Stage.ANALYSE:
        return DeployPhase.ANALYZING
    return DeployPhase.PROGRESSING


class Canary:
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
        assert request.canary is not None
        ctx = self._ctx
        ns = request.workload.namespace
        try:
            body = canary_deployment(live, request, row.id)
            _, images = new_template(live, request, row.id)
        except ChangeRefused as refused:
            await ctx.recorder.fail_now(row, request, refused.reason, refused.message)
            return
        name = body["metadata"]["name"]
        tracking: dict[str, Any] = {}
        audit = [("deploy.canary.create", AuditOutcome.EXECUTED, f"{ns}/{name} with {images}")]
        if request.canary.router is not None:
            service = request.canary.router.stable_service
            try:
                tracking["selector"], pinned = await self._pin(ns, service, live)
            except NotFoundError:
                await ctx.recorder.fail_now(
                    row, request, DeployFailureReason.APPLY_FAILED, f"the stable Service {ns}/{service} does not exist"
                )
                return
            audit.append(("deploy.canary.pin", AuditOutcome.EXECUTED, f"Service {ns}/{service}: {pinned}"))
        await ctx.create_beside(ns, body, row.id)
        now = ctx.clock()
        started = DeployStarted(
            **{**ctx.recorder.base(row, request), "revision": None},
            previous_revision=previous_revision,
            images=images,
            replicas=progression.Observation.from_deployment(live).counts(),
            steps_total=len(request.canary.steps),
        )
        await ctx.recorder.save(
            row.id,
            {
                "step": "applied",
                "started_at": row.started_at or now,
                "previous_template": previous,
                "previous_revision": previous_revision,
                "revision": previous_revision,
                "tracking": {**tracking, "canary": canary_to_json(canary.start(now))},
            },
            emit=[started],
            audit=audit,
            change=write_of(request, "deploy.canary.create", {}, body),
        )

    async def follow(self, row: Rollout, request: DeployRequested) -> None:  # noqa: PLR0912, PLR0915 - one tick
        assert request.canary is not None
        assert row.tracking is not None
        ctx = self._ctx
        recorder = ctx.recorder
        now = ctx.clock()
        ns, name = request.workload.namespace, request.workload.name
        command = row.command or {}
        state = canary_from_json(row.tracking["canary"])
        stable_live = await ctx.kube.deployment(ns, name)
        stable = progression.Observation.from_deployment(stable_live)
        try:
            canary_live: dict[str, Any] | None = await ctx.kube.deployment(ns, canary_name(name))
        except NotFoundError:
            canary_live = None
        canary_obs = progression.Observation.from_deployment(canary_live) if canary_live else None
        router = request.canary.router
        route_live = await self._route(router, ns) if router is not None else None
        if command.get("action") == "abort":
            actor = Actor.model_validate(command["actor"])
            await self._end(row, request, stable_live, state, failure=None, reason=str(command["reason"]), by=actor)
            return
        if now >= row.deadline_at:
            timeout = request.timeout_seconds or ctx.options.default_timeout_seconds
            failure = recorder.failure(row, request, DeployFailureReason.TIMEOUT, f"request timed out after {timeout}s")
            await self._end(row, request, stable_live, state, failure=failure, reason=failure.message, by=SELF)
            return
        step = request.canary.steps[min(state.step, len(request.canary.steps) - 1)]
        if state.stage is canary.Stage.ANALYSE and step.analysis is not None:
            taken, measured = await measure_due(
                ctx,
                step.analysis,
                state.measurements,
                state.since,
                now,
                namespace=ns,
                new_pods=await self._new_pods(ns, canary_live) if needs_pods(step.analysis) else None,
            )
            if measured:
                state = replace(state, measurements=taken)
        watch = canary.scale_watch(step.analysis) if state.stage is canary.Stage.SCALE else None
        due = canary.watch_due(watch, state, now) if watch is not None else ()
        if due:
            # While it scales up, the canary's restarts are watched (a crashing canary never becomes available).
            new_pods = await self._new_pods(ns, canary_live)
            measurements = await measure(ctx, due, namespace=ns, new_pods=new_pods)
            state = canary.watched(state, list(zip(due, measurements, strict=True)), now)
        decision = canary.advance(
            request.canary,
            state,
            stable=stable,
            canary=canary_obs,
            deadline_seconds=request.progress_deadline_seconds,
            grace_seconds=ctx.options.deadline_grace_seconds,
            promote_requested=command.get("action") == "promote",
            now=now,
            route=self._observe(router, route_live),
        )
        state = decision.state
        if decision.outcome is canary.Outcome.FAILED:
            assert decision.reason is not None
            failure = recorder.failure(
                row, request, decision.reason, decision.message, decision.analysis, step=state.step
            )
            await self._end(row, request, stable_live, state, failure=failure, reason=decision.message, by=SELF)
            return
        audit: list[tuple[str, AuditOutcome, str]] = []
        write: Write | None
        if isinstance(decision.effect, canary.SetWeight):
            assert router is not None
            assert route_live is not None
            try:
                routed = await self._set_weight(router, ns, route_live, decision.effect.weight)
            except ConflictError:
                # The route changed between our read and our write: nothing was written; the next tick reads it
                # again and either writes the weight on the new version or sees an edit of the weights and pauses.
                log.info("rollout %s: %s %s changed under our write; re-reading", row.id, router.kind, router.name)
                return
            w = decision.effect.weight
            audit.append(
                ("deploy.canary.route", AuditOutcome.EXECUTED, f"{router.kind.value} {ns}/{router.name}: {100 - w}/{w}")
            )
            write = route_write(request, router, "deploy.canary.route", route_live, routed)
        else:
            state, write = await self._act(
                row, request, decision.effect, state, stable_live=stable_live, canary_live=canary_live
            )
        changes: dict[str, Any] = {"tracking": {**row.tracking, "canary": canary_to_json(state)}}
        if decision.used_promote:
            changes["command"] = None
        if decision.analysis:
            changes["analysis"] = {"results": [r.model_dump(mode="json") for r in decision.analysis]}
        if decision.outcome is canary.Outcome.SUCCEEDED:
            await ctx.kube.delete_deployment(ns, canary_name(name))
            changes["revision"] = stable.revision
            row.revision = stable.revision
            results = decision.analysis or stored_results(row)
            await recorder.succeed(
                row, request=request, live=stable_live, obs=stable, changes=changes, results=results, change=write
            )
            return
        phase = _phase(state, paused=decision.outcome is canary.Outcome.PAUSED)
        marker = f"{state.step}:{state.stage.value}:{phase.value}"
        emit: list[EventPayload] = []
        if marker != row.tracking.get("marker"):
            weight = request.canary.steps[state.step].weight if state.stage is not canary.Stage.CLEANUP else 100
            if router is not None:  # the traffic the route gives the canary now (0 until the first write)
                weight = state.weight or 0
            emit.append(
                DeployProgressed(
                    **recorder.base(row, request),
                    phase=phase,
                    replicas=(canary_obs or stable).counts(),
                    step=state.step + 1,
                    steps_total=len(request.canary.steps),
                    canary_weight=weight,
                    analysis=decision.analysis,
                    message=decision.message[:1024],
                )
            )
        changes["tracking"]["marker"] = marker
        changes["phase"] = phase.value
        await recorder.save(row.id, changes, emit=emit, audit=audit, change=write)

    async def _act(
        self,
        row: Rollout,
        request: DeployRequested,
        effect: canary.Effect | None,
        state: canary.CanaryState,
        *,
        stable_live: dict[str, Any],
        canary_live: dict[str, Any] | None,
    ) -> tuple[canary.CanaryState, Write | None]:
        """Apply the planner's effect; the state then follows the generation the write produced, and the write
        goes on the change timeline (caused by the request) in the transaction that records the step."""
        ctx = self._ctx
        ns, name = request.workload.namespace, request.workload.name
        now = ctx.clock()
        if isinstance(effect, canary.ScaleCanary) and canary_live is not None:
            patched = await ctx.kube.patch_deployment(
                ns, canary_name(name), [{"op": "replace", "path": "/spec/replicas", "value": effect.replicas}]
            )
            write = write_of(request, "deploy.canary.scale", canary_live, patched)
            if state.tracking is not None:
                generation = int(patched["metadata"].get("generation") or 0)
                tracking = progression.Tracking(
                    generation, state.tracking.deadline_seconds, now, None, state.tracking.grace_seconds
                )
                return replace(state, tracking=tracking), write
            return state, write
        if isinstance(effect, canary.PromoteStable):
            assert canary_live is not None
            await self._unpin(row, request)  # the stable's pods change now: its Service must follow them
            template = promoted_template((canary_live.get("spec") or {}).get("template") or {})
            patched = await ctx.kube.patch_deployment(ns, name, plan_template(stable_live, template, row.id))
            write = write_of(request, "deploy.canary.promote", stable_live, patched)
            return replace(state, tracking=ctx.track(patched, request, now), measurements={}, watch_next={}), write
        return state, None

    async def _route(self, router: TrafficRouter, ns: str) -> dict[str, Any] | None:
        try:
            return await self._ctx.kube.route(router.kind.value, ns, router.name)
        except NotFoundError:
            return None

    @staticmethod
    def _observe(router: TrafficRouter | None, route_live: dict[str, Any] | None) -> routing.Route | None:
        if router is None or route_live is None:
            return None
        try:
            return routing.observe(router, route_live)
        except routing.RouteRefused:
            return None

    async def _set_weight(
        self, router: TrafficRouter, ns: str, route_live: dict[str, Any], weight: int
    ) -> dict[str, Any]:
        """One guarded write of the route's weights (ConflictError when it changed since `route_live`); the
        route as the apiserver answered it."""
        patch = routing.weight_patch(router, route_live, weight)
        return await self._ctx.kube.patch_route(router.kind.value, ns, router.name, patch)

    async def _restore_route(self, row: Rollout, request: DeployRequested) -> None:
        """Abort: all traffic back to the stable in one write, on the route as read just before it (retried on a
        version that moved meanwhile; an abort must not leave traffic on a canary that is about to go)."""
        assert request.canary is not None
        router, ns = request.canary.router, request.workload.namespace
        if router is None:
            return
        for _ in range(5):
            route_live = await self._route(router, ns)
            view = self._observe(router, route_live)
            if route_live is None or view is None:
                log.warning("rollout %s: %s %s gone; no weights to restore", row.id, router.kind, router.name)
                return
            if all(r.canary == 0 for r in view.rules):
                return
            try:
                routed = await self._set_weight(router, ns, route_live, 0)
            except ConflictError:
                continue
            await self._ctx.recorder.save(
                row.id,
                {},
                audit=[
                    (
                        "deploy.canary.route",
                        AuditOutcome.EXECUTED,
                        f"abort: {router.kind.value} {ns}/{router.name} back to 100/0 (was {view.describe()})",
                    )
                ],
                change=route_write(request, router, "deploy.canary.route_restore", route_live, routed),
            )
            return
        raise ConflictError(f"{router.kind.value} {ns}/{router.name} kept changing; weights not restored yet")

    async def _pin(self, ns: str, service_name: str, stable_live: dict[str, Any]) -> tuple[dict[str, str], str]:
        """Pin the stable Service to the stable ReplicaSet's pods; its original selector, and what was done."""
        kube = self._ctx.kube
        service = await kube.service(ns, service_name)
        original = dict((service.get("spec") or {}).get("selector") or {})
        pod_hash = current_hash(stable_live, list(await kube.replica_sets(ns, stable_live)))
        if pod_hash is None:
            return original, "left as it is: no current ReplicaSet to pin it to"
        await kube.patch_service(ns, service_name, select_patch(service, original, pod_hash))
        return original, f"pinned to pod-template-hash {pod_hash}"

    async def _unpin(self, row: Rollout, request: DeployRequested) -> None:
        """Give the stable Service its own selector back (nothing to do without a router, or when it has it)."""
        assert request.canary is not None
        router, original = request.canary.router, (row.tracking or {}).get("selector")
        if router is None or original is None:
            return
        ns = request.workload.namespace
        for _ in range(5):
            try:
                service = await self._ctx.kube.service(ns, router.stable_service)
            except NotFoundError:
                return
            if (service.get("spec") or {}).get("selector") == original:
                return
            try:
                await self._ctx.kube.patch_service(ns, router.stable_service, select_patch(service, original, None))
            except ConflictError:
                continue
            return
        raise ConflictError(f"Service {ns}/{router.stable_service} kept changing; its selector is not restored yet")

    async def _new_pods(self, ns: str, canary_live: dict[str, Any] | None) -> dict[str, str] | None:
        """Labels selecting the canary's current pods; None while they cannot be told apart (or it is gone)."""
        if canary_live is None:
            return None
        return podchecks.new_pods_selector(canary_live, await self._ctx.kube.replica_sets(ns, canary_live))

    async def _end(
        self,
        row: Rollout,
        request: DeployRequested,
        stable_live: dict[str, Any],
        state: canary.CanaryState,
        *,
        failure: DeployFailed | None,
        reason: str,
        by: Actor,
    ) -> None:
        """Abort a canary: the canary Deployment goes; the stable one is untouched unless promotion began."""
        ctx = self._ctx
        ns, name = request.workload.namespace, request.workload.name
        await self._restore_route(row, request)
        await ctx.kube.delete_deployment(ns, canary_name(name))
        await self._unpin(row, request)
        if state.stage in (canary.Stage.PROMOTE, canary.Stage.CLEANUP):
            # The stable Deployment already took the new template: put the old one back and follow it.
            after = "aborted" if failure is None else "rolledback"
            await self._reverter.begin(row, request, stable_live, after=after, failure=failure, reason=reason, by=by)
            return
        await self._reverter.end_untouched(
            row,
            request,
            revision=progression.Observation.from_deployment(stable_live).revision,
            failure=failure,
            reason=reason,
            by=by,
            done="canary removed, stable untouched",
            action="deploy.canary.abort",
        )
