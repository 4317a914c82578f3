"""The outbox side of a rollout: every state change and the events announcing it, in one transaction.

Why this module exists: a crash must never leave a rollout that changed state silently, or an event about a
change that did not happen; and every request gets exactly one terminal event. All writes of a rollout's row
go through `Recorder.save` (which also renews the owner's lease and refuses to write once another replica owns
the rollout). It must never read or change the cluster.

Tracing: a rollout is driven by the engine's ticks, long after the consumer span of its `deploy.requested` has
ended. Each event it announces is therefore written under a span of its own, child of the request's trace
context (the `traceparent` the request carried), so the whole rollout - gateway request, deployer, whoever
consumes its events - is one trace. Without a tracer the request's trace context is carried on unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Tracer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from opsbus.common.api.calling import Caller
from opsbus.common.audit import Auditor
from opsbus.common.bus.propagation import context_from
from opsbus.common.changes import Write, entry, template_diff, written
from opsbus.common.errors import OpsbusError
from opsbus.common.events.envelope import Envelope, EventPayload
from opsbus.common.events.payloads.audit import AuditOutcome
from opsbus.common.events.payloads.change import ChangeKind, FieldChange
from opsbus.common.events.payloads.common import Actor, ActorKind, ResourceRef
from opsbus.common.events.payloads.deploy import (
    AnalysisResult,
    DeployFailed,
    DeployFailureReason,
    DeployRequested,
    DeployRolledBack,
    DeploySkipped,
    DeploySucceeded,
    DeploySuperseded,
    RouterKind,
    Strategy,
    TrafficRouter,
)
from opsbus.common.store import StoreTables, add
from opsbus.deployer.domain import progression, routing
from opsbus.deployer.domain.changes import ROLLOUT_ANNOTATION, images_of
from opsbus.deployer.executing.serializing import request_of
from opsbus.deployer.store import Revision, Rollout

SERVICE = "deployer"
SELF = Actor(kind=ActorKind.SERVICE, id=SERVICE)

Audit = tuple[str, AuditOutcome, str]


class LostLeaseError(OpsbusError):
    """Another replica owns this rollout now; stop driving it."""


class Recorder:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        tables: StoreTables,
        cluster: str,
        instance: str,
        lease_seconds: float,
        clock: Callable[[], datetime],
        on_commit: Callable[[], None],
        tracer: Tracer | None = None,
    ) -> None:
        self.sessions = sessions
        self._tracer = tracer
        self._tables = tables
        self.instance = instance
        self._lease = timedelta(seconds=lease_seconds)
        self._clock = clock
        self.on_commit = on_commit
        self._auditor = Auditor(service=SERVICE, cluster=cluster)

    # --- inside a caller's transaction ---------------------------------------------------------------
    async def emit(self, s: AsyncSession, cause: Envelope, request: DeployRequested, payload: EventPayload) -> None:
        envelope = Envelope.build(
            payload,
            service=SERVICE,
            cluster=request.cluster,
            obj=request.workload.as_object_ref(),
            cause=cause,
            time=self._clock(),
        )
        await self._add(s, cause, envelope)

    async def record_change(self, s: AsyncSession, cause: Envelope, request: DeployRequested, write: Write) -> None:
        """The write on the change timeline, caused by the request; one id per request, object, action and result."""
        key = f"{cause.id}:{write.object.namespace}/{write.object.name}:{write.action}:{write.resource_version}"
        envelope = written(write, service=SERVICE, cluster=request.cluster, key=key, now=self._clock(), cause=cause)
        await self._add(s, cause, envelope)

    async def _add(self, s: AsyncSession, cause: Envelope, envelope: Envelope) -> None:
        with self._traced(cause, envelope) as traced:
            await add(s, self._tables.outbox, traced)

    @contextmanager
    def _traced(self, cause: Envelope, envelope: Envelope) -> Iterator[Envelope]:
        """`envelope` inside the request's trace: under the current span if there is one (the consumer of the
        request), else under a new span child of the request's `traceparent` (a tick), else with it copied."""
        if trace.get_current_span().get_span_context().is_valid or not cause.traceparent:
            yield envelope
            return
        if self._tracer is None:
            yield envelope.model_copy(update={"traceparent": cause.traceparent, "tracestate": cause.tracestate})
            return
        with self._tracer.start_as_current_span(
            f"deployer {envelope.family}.{envelope.verb}",
            context=context_from(None, cause.traceparent, cause.tracestate),
            kind=SpanKind.INTERNAL,
            attributes={
                "cloudevents.event_type": envelope.type,
                "messaging.message.id": envelope.id,
                "messaging.message.conversation_id": envelope.correlationid or envelope.id,
                "opsbus.deployment_id": str(envelope.data.get("deployment_id", "")),
            },
        ):
            yield envelope

    async def audit(
        self,
        s: AsyncSession,
        *,
        cause: Envelope,
        request: DeployRequested,
        action: str,
        outcome: AuditOutcome,
        reason: str,
        rollout_id: str,
        details: dict[str, Any] | None = None,
    ) -> None:
        entry = self._auditor.entry(
            action=action,
            target=request.workload.as_resource_ref(),
            outcome=outcome,
            reason=reason[:1024],
            details={"deployment_id": rollout_id, **(details or {})},
            cause=cause,
            idempotency_key=f"{rollout_id}:{action}:{outcome.value}",
            time=self._clock(),
        )
        await add(s, self._tables.outbox, entry)

    async def audit_call(self, s: AsyncSession, row: Rollout, *, caller: Caller, action: str, reason: str) -> None:
        """The entry of a command the gateway relayed (`deploy.abort` / `deploy.promote`, as the gateway recorded
        it before): its caller as the actor, with the gateway's request id, in the command's transaction."""
        _, request = request_of(row)
        entry = self._auditor.entry(
            action=f"deploy.{action}",
            target=request.workload.as_resource_ref(),
            outcome=AuditOutcome.EXECUTED,
            reason=reason or f"{action} through the gateway",
            details={"request_id": row.request_id, "state": row.state},
            actor=caller.actor,
            request_id=caller.request_id,
            time=self._clock(),
        )
        await add(s, self._tables.outbox, entry)

    async def supersede(
        self, s: AsyncSession, row: Rollout, event: Envelope, request: DeployRequested, by: str
    ) -> None:
        row.state = "superseded"
        row.phase = None
        row.finished_at = self._clock()
        row.outcome_reason = "superseded"
        row.message = f"superseded by request {by}"
        payload = DeploySuperseded(
            deployment_id=row.id,
            request_id=row.request_id,
            workload=request.workload,
            strategy=request.strategy,
            superseded_by=by,
            was_running=False,
        )
        await self.emit(s, event, request, payload)
        await self.audit(
            s,
            cause=event,
            request=request,
            action="deploy.supersede",
            outcome=AuditOutcome.SKIPPED,
            reason=row.message,
            rollout_id=row.id,
        )

    async def skip_stale(
        self,
        s: AsyncSession,
        row: Rollout,
        event: Envelope,
        request: DeployRequested,
        *,
        age: float,
        freshness: float,
    ) -> None:
        message = (
            f"request is {age:.0f}s old, the deployer's freshness bound is {freshness:.0f}s "
            "(OPSBUS_DEPLOYER__REQUEST_FRESHNESS_SECONDS): nothing was changed; send a new request if it still holds"
        )
        row.outcome_reason = "stale"
        row.message = message
        payload = DeploySkipped(
            **self.base(row, request), reason="stale", age_seconds=age, freshness_seconds=freshness, message=message
        )
        await self.emit(s, event, request, payload)
        await self.audit(
            s,
            cause=event,
            request=request,
            action="deploy.skip",
            outcome=AuditOutcome.SKIPPED,
            reason=message,
            rollout_id=row.id,
        )

    async def finish_failed(
        self,
        s: AsyncSession,
        row: Rollout,
        event: Envelope,
        request: DeployRequested,
        *,
        reason: DeployFailureReason,
        message: str,
        rollback: bool,
    ) -> None:
        row.state = "failed"
        row.phase = None
        row.finished_at = self._clock()
        row.outcome_reason = reason.value
        row.message = message
        await self.emit(
            s,
            event,
            request,
            DeployFailed(**self.base(row, request), reason=reason, message=message[:4096], rollback_pending=rollback),
        )
        await self.audit(
            s,
            cause=event,
            request=request,
            action="deploy.fail",
            outcome=AuditOutcome.FAILED,
            reason=message,
            rollout_id=row.id,
        )

    # --- their own transaction -----------------------------------------------------------------------
    async def save(
        self,
        rollout_id: str,
        changes: dict[str, Any],
        emit: Sequence[EventPayload] = (),
        audit: Sequence[Audit] = (),
        revision: Revision | None = None,
        *,
        change: Write | None = None,
    ) -> None:
        """Persist `changes` and the events announcing them in one transaction, if we still own the rollout;
        `change` is the cluster write this step made, recorded on the change timeline in the same commit."""
        async with self.sessions.begin() as s:
            row = await s.get(Rollout, rollout_id, with_for_update=True)
            if row is None or row.owner != self.instance or row.state != "running":
                raise LostLeaseError(rollout_id)
            event, request = request_of(row)
            for name, value in changes.items():
                setattr(row, name, value)
            row.lease_until = self._clock() + self._lease
            row.updated_at = self._clock()
            for payload in emit:
                await self.emit(s, event, request, payload)
            for action, outcome, reason in audit:
                await self.audit(
                    s, cause=event, request=request, action=action, outcome=outcome, reason=reason, rollout_id=row.id
                )
            if revision is not None:
                s.add(revision)
            if change is not None:
                await self.record_change(s, event, request, change)
        if emit or audit or change:
            self.on_commit()

    def base(self, row: Rollout, request: DeployRequested) -> dict[str, Any]:
        """The fields every deploy.* event of this rollout carries."""
        return {
            "deployment_id": row.id,
            "request_id": row.request_id,
            "workload": request.workload,
            "strategy": request.strategy,
            "revision": row.revision,
        }

    def failure(
        self,
        row: Rollout,
        request: DeployRequested,
        reason: DeployFailureReason,
        message: str,
        results: Sequence[AnalysisResult] = (),
        *,
        step: int | None = None,
    ) -> DeployFailed:
        """A `deploy.failed` announcing that an automatic rollback follows."""
        return DeployFailed(
            **self.base(row, request),
            reason=reason,
            message=message[:4096],
            failed_step=step + 1 if step is not None else None,
            analysis=tuple(results),
            rollback_pending=True,
            duration_seconds=(self._clock() - row.started_at).total_seconds() if row.started_at else None,
        )

    async def fail_now(self, row: Rollout, request: DeployRequested, reason: DeployFailureReason, message: str) -> None:
        """Terminal failure before anything changed in the cluster: nothing to roll back."""
        now = self._clock()
        payload = DeployFailed(
            **self.base(row, request),
            reason=reason,
            message=message[:4096],
            rollback_pending=False,
            duration_seconds=(now - row.started_at).total_seconds() if row.started_at else None,
        )
        await self.save(
            row.id,
            {"state": "failed", "phase": None, "finished_at": now, "outcome_reason": reason.value, "message": message},
            emit=[payload],
            audit=[("deploy.validate" if row.step == "pending" else "deploy.apply", AuditOutcome.FAILED, message)],
        )

    async def succeed(
        self,
        row: Rollout,
        *,
        request: DeployRequested,
        live: dict[str, Any],
        obs: progression.Observation,
        changes: dict[str, Any],
        results: Sequence[AnalysisResult],
        change: Write | None = None,
    ) -> None:
        """Terminal success: the revision is recorded as good (a rollback request ends in `deploy.rolledback`)."""
        now = self._clock()
        started = row.started_at or now
        template = (live.get("spec") or {}).get("template") or {}
        revision = Revision(
            workload=row.workload,
            revision=obs.revision,
            rollout_id=row.id,
            images=images_of(template),
            template=template,
            outcome="good",
        )
        base = self.base(row, request)
        payload: EventPayload
        if request.strategy is Strategy.ROLLBACK:
            payload = DeployRolledBack(
                **base,
                from_revision=row.previous_revision,
                to_revision=obs.revision or 1,
                automatic=False,
                reason=request.reason or "rollback requested",
            )
            state = "rolledback"
        else:
            payload = DeploySucceeded(
                **base, duration_seconds=(now - started).total_seconds(), replicas=obs.counts(), analysis=tuple(results)
            )
            state = "succeeded"
        await self.save(
            row.id,
            {**changes, "state": state, "phase": None, "finished_at": now, "message": "rollout complete"},
            emit=[payload],
            audit=[("deploy.complete", AuditOutcome.EXECUTED, f"{state}: revision {obs.revision}")],
            revision=revision,
            change=change,
        )


def write_of(request: DeployRequested, action: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> Write:
    """The change timeline's view of one write of a rollout: `before` is the object as read before the write
    (empty when the write created it: a canary or green Deployment), `after` the apiserver's answer."""
    meta = after.get("metadata") or {}
    ns, name = request.workload.namespace, str(meta.get("name") or request.workload.name)
    old_spec, new_spec = before.get("spec") or {}, after.get("spec") or {}
    entries = [] if before else [(ChangeKind.CREATED, FieldChange(path="metadata", after=f"{ns}/{name}"))]
    entries += entry(ChangeKind.REPLICAS, "spec.replicas", old_spec.get("replicas"), new_spec.get("replicas"))
    entries += template_diff(old_spec.get("template") or {}, new_spec.get("template") or {})
    ref = ResourceRef(
        kind=request.workload.kind, name=name, namespace=ns, api_version="apps/v1", uid=meta.get("uid") or None
    )
    return Write(
        action=action,
        object=ref,
        workload=request.workload,
        entries=entries,
        detail=f"by rollout {(meta.get('annotations') or {}).get(ROLLOUT_ANNOTATION, '?')}",
        resource_version=meta.get("resourceVersion") or None,
    )


def service_write(request: DeployRequested, action: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> Write:
    """The change timeline's view of a traffic switch: the Service's selector before and after the write
    (`after` is the apiserver's answer), so the analyzer sees the moment the new stack took the traffic."""
    meta = after.get("metadata") or {}
    ns, name = request.workload.namespace, str(meta.get("name") or "?")
    old = (before.get("spec") or {}).get("selector")
    new = (after.get("spec") or {}).get("selector")
    ref = ResourceRef(kind="Service", name=name, namespace=ns, api_version="v1", uid=meta.get("uid") or None)
    return Write(
        action=action,
        object=ref,
        workload=request.workload,
        entries=entry(ChangeKind.ACTION, "spec.selector", old, new),
        detail=f"traffic of {request.workload.kind}/{request.workload.name}",
        resource_version=meta.get("resourceVersion") or None,
    )


def route_write(
    request: DeployRequested, router: TrafficRouter, action: str, before: Mapping[str, Any], after: Mapping[str, Any]
) -> Write:
    """The change timeline's view of a weight write on a traffic router (`after` is the apiserver's answer): per
    managed rule, the stable and canary Services' weights before and after, so the analyzer sees the moment a
    share of the traffic moved to the canary (or back), independently of the canary's replicas."""
    meta = after.get("metadata") or {}
    group, field = (
        ("gateway.networking.k8s.io", "rules")
        if router.kind is RouterKind.HTTP_ROUTE
        else ("networking.istio.io", "http")
    )
    old = {r.index: r for r in _weights(router, before)}
    entries = []
    for rule in _weights(router, after):
        was = old.get(rule.index)
        entries += entry(
            ChangeKind.ACTION,
            f"spec.{field}[{rule.index}].weight",
            {router.stable_service: was.stable, router.canary_service: was.canary} if was else None,
            {router.stable_service: rule.stable, router.canary_service: rule.canary},
        )
    ref = ResourceRef(
        kind=router.kind.value,
        name=router.name,
        namespace=request.workload.namespace,
        api_version=f"{group}/v1",
        uid=meta.get("uid") or None,
    )
    return Write(
        action=action,
        object=ref,
        workload=request.workload,
        entries=entries,
        detail=f"traffic of {request.workload.kind}/{request.workload.name}",
        resource_version=meta.get("resourceVersion") or None,
    )


def _weights(router: TrafficRouter, route: Mapping[str, Any]) -> tuple[routing.RuleWeights, ...]:
    try:
        return routing.observe(router, route).rules
    except routing.RouteRefused:
        return ()
