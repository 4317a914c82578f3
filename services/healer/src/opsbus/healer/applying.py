"""Applies one planned action to the cluster, with the plan's preconditions (uid, resourceVersion).

Only the planner decides; this module carries a `Plan` out and nothing else. A step resumed after a restart
may find its write already done (the pod gone, the object changed since): that is success here, and the
step's verification decides whether it helped.

Each write is put on the change timeline (`change.recorded`, origin healer, caused by the alert) through the
outbox as soon as the cluster answers, with an id per recovery step, so a resumed step records it once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime

from opsbus.common.changes import Entry, Write, entry, written
from opsbus.common.errors import ConflictError, NotFoundError, TransientError
from opsbus.common.events import Envelope
from opsbus.common.events.payloads import ActionKind, AlertFired, ChangeKind
from opsbus.healer.cluster import RESTARTED_AT, KubeCluster
from opsbus.healer.domain.planning import Plan
from opsbus.healer.recording import SERVICE, Recorder, namespace_of


class Applier:
    def __init__(
        self, cluster: KubeCluster, clock: Callable[[], datetime], verify_poll: float, rec: Recorder | None = None
    ) -> None:
        self.cluster = cluster
        self.clock = clock
        self.verify_poll = verify_poll
        self.rec = rec

    async def apply(self, p: Plan, cause: Envelope, *, resumed: bool) -> None:  # noqa: PLR0912
        a, t, pre = p.action, p.action.target, p.preconditions
        ns, name = namespace_of(t), t.name
        params = a.parameters
        grace = int(params["grace_period_seconds"]) if "grace_period_seconds" in params else None
        now = self.clock()
        deleted: list[str] = []
        try:
            match a.kind:
                case ActionKind.DELETE_POD:
                    await self.cluster.delete_pod(ns, name, pre.get("uid"), None, grace)
                case ActionKind.ROLLOUT_RESTART:
                    await self.cluster.rollout_restart(ns, name, pre.get("resource_version"), now)
                case ActionKind.SCALE:
                    await self.cluster.scale(ns, name, pre.get("resource_version"), int(params["replicas"]))
                case ActionKind.RAISE_MEMORY_LIMIT:
                    await self.cluster.set_memory_limit(
                        ns, name, pre.get("resource_version"), str(params["container"]), int(params["to_bytes"])
                    )
                case ActionKind.CORDON_NODE:
                    await self.cluster.cordon(name, pre.get("resource_version"))
                case ActionKind.DRAIN_NODE:
                    await self.cluster.cordon(name, None)
                    await self.drain(name, grace, p.verification.timeout_seconds)
                case ActionKind.DELETE_FAILED_PODS:
                    selector = f"job-name={name}" if t.kind == "Job" else None
                    for pod in await self.cluster.failed_pods(ns, selector):
                        await self.cluster.delete_pod(ns, pod.metadata.name, pod.metadata.uid, None, 0)
                        deleted.append(str(pod.metadata.name))
                case ActionKind.ROLLBACK | ActionKind.NOTIFY_ONLY:
                    return  # rollback: the deployer records its write; notify_only: the events are the action
        except NotFoundError:
            if not (resumed or a.kind is ActionKind.DELETE_POD):
                raise
            # A pod deleted already (by this attempt before a restart, or by its controller): nothing to do.
        except ConflictError:
            if not resumed:
                raise
            # the object changed after our write: the write happened; verification decides
        await self.record(p, cause, now, deleted)

    async def record(self, p: Plan, cause: Envelope, now: datetime, deleted: list[str]) -> None:
        """The write on the change timeline, in its own outbox transaction (one id per recovery step)."""
        if self.rec is None:
            return
        key = f"{p.recovery_id}:{p.step}:change"
        event = written(
            write_of(p, cause, now, deleted),
            service=SERVICE,
            cluster=self.rec.cluster_name,
            key=key,
            now=now,
            cause=cause,
        )
        async with self.rec.db.sessions.begin() as session:
            await self.rec.emit(session, event)
        self.rec.wake_relay()

    async def drain(self, node: str, grace: int | None, timeout: int) -> None:
        deadline = time.monotonic() + timeout
        while True:
            pods = await self.cluster.evictable_pods(node)
            if not pods:
                return
            blocked = [p.metadata.name for p in pods if not await self.cluster.evict(p, grace)]
            if not blocked:
                return
            if time.monotonic() >= deadline:
                raise TransientError(f"PodDisruptionBudget still blocks evicting {', '.join(blocked)}")
            await asyncio.sleep(max(self.verify_poll, 1.0))


def write_of(p: Plan, cause: Envelope, now: datetime, deleted: list[str]) -> Write:
    """What the step wrote, as far as the plan says (the parameters it carried out)."""
    a, params = p.action, p.action.parameters
    entries: list[Entry] = []
    match a.kind:
        case ActionKind.DELETE_POD:
            entries = [*entry(ChangeKind.DELETED, "metadata", f"{a.target.namespace}/{a.target.name}", None)]
        case ActionKind.DELETE_FAILED_PODS:
            entries = [e for pod in deleted[:64] for e in entry(ChangeKind.DELETED, f"pods[{pod}]", pod, None)]
        case ActionKind.ROLLOUT_RESTART:
            path = f"spec.template.metadata.annotations[{RESTARTED_AT}]"
            entries = entry(ChangeKind.TEMPLATE, path, None, now.isoformat())
        case ActionKind.SCALE:
            entries = entry(ChangeKind.REPLICAS, "spec.replicas", None, params.get("replicas"))
        case ActionKind.RAISE_MEMORY_LIMIT:
            path = f"spec.template.spec.containers[{params.get('container')}].resources.limits.memory"
            entries = entry(ChangeKind.RESOURCES, path, params.get("from_bytes"), params.get("to_bytes"))
        case ActionKind.CORDON_NODE | ActionKind.DRAIN_NODE:
            entries = entry(ChangeKind.NODE_TAINT, "spec.unschedulable", False, True)
    alert = cause.payload() if cause.type == AlertFired.event_type else None
    return Write(
        action=a.kind.value,
        object=a.target,
        workload=alert.workload if isinstance(alert, AlertFired) else None,
        entries=entries,
        detail=f"recovery {p.recovery_id} step {p.step}"
        + (f" for {alert.alertname}" if isinstance(alert, AlertFired) else ""),
    )
