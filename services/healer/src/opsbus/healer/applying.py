"""Applies one planned action to the cluster, with the plan's preconditions (uid, resourceVersion).

Only the planner decides; this module carries a `Plan` out and nothing else. A step resumed after a restart
may find its write already done (the pod gone, the object changed since): that is success here, and the
step's verification decides whether it helped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime

from opsbus.common.errors import ConflictError, NotFoundError, TransientError
from opsbus.common.events import Envelope
from opsbus.common.events.payloads import ActionKind
from opsbus.healer.cluster import KubeCluster
from opsbus.healer.domain.planning import Plan
from opsbus.healer.recording import namespace_of


class Applier:
    def __init__(self, cluster: KubeCluster, clock: Callable[[], datetime], verify_poll: float) -> None:
        self.cluster = cluster
        self.clock = clock
        self.verify_poll = verify_poll

    async def apply(self, p: Plan, cause: Envelope, *, resumed: bool) -> None:  # noqa: PLR0912
        a, t, pre = p.action, p.action.target, p.preconditions
        ns, name = namespace_of(t), t.name
        params = a.parameters
        grace = int(params["grace_period_seconds"]) if "grace_period_seconds" in params else None
        try:
            match a.kind:
                case ActionKind.DELETE_POD:
                    await self.cluster.delete_pod(ns, name, pre.get("uid"), None, grace)
                case ActionKind.ROLLOUT_RESTART:
                    await self.cluster.rollout_restart(ns, name, pre.get("resource_version"), self.clock())
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
                case ActionKind.ROLLBACK | ActionKind.NOTIFY_ONLY:
                    pass  # rollback: deploy.requested went out with the start; notify_only: the events are the action
        except NotFoundError:
            if not (resumed or a.kind is ActionKind.DELETE_POD):
                raise
            # A pod deleted already (by this attempt before a restart, or by its controller): nothing to do.
        except ConflictError:
            if resumed:
                return  # the object changed after our write: the write happened; verification decides
            raise

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
