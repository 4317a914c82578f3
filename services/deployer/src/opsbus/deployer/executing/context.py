"""What every strategy's executor is handed: the ports, the recorder, the options, the clock, and the two
cluster writes more than one strategy makes the same way.

One argument object, so a port can be added without touching every constructor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from opsbus.common.errors import ConflictError, NotFoundError, TransientError
from opsbus.common.events.payloads.deploy import DeployRequested
from opsbus.deployer.domain import progression
from opsbus.deployer.domain.changes import ROLLOUT_ANNOTATION
from opsbus.deployer.executing.recording import Recorder
from opsbus.deployer.kube import KubePort
from opsbus.deployer.prometheus import MetricsPort
from opsbus.deployer.settings import DeployerOptions

MAX_APPLY_CONFLICTS = 5


@dataclass(frozen=True, slots=True)
class Context:
    kube: KubePort
    metrics: MetricsPort
    recorder: Recorder
    options: DeployerOptions
    clock: Callable[[], datetime]

    async def create_beside(self, namespace: str, body: dict[str, Any], rollout_id: str) -> None:
        """Create the second Deployment (canary or green) of this rollout, once.

        Ours already there (a resumed rollout): nothing to do. A leftover of an earlier rollout, or someone's own
        object with our name: delete it and retry (TransientError) once it is gone.
        """
        name = body["metadata"]["name"]
        try:
            existing = await self.kube.deployment(namespace, name)
        except NotFoundError:
            existing = None
        if existing is not None:
            if ((existing.get("metadata") or {}).get("annotations") or {}).get(ROLLOUT_ANNOTATION) == rollout_id:
                return
            await self.kube.delete_deployment(namespace, name)
            raise TransientError(f"replacing the leftover {namespace}/{name}; retrying once it is gone")
        try:
            await self.kube.create_deployment(namespace, body)
        except ConflictError as exc:
            raise TransientError(f"{namespace}/{name} still being deleted: {exc}") from exc

    def track(self, patched: dict[str, Any], request: DeployRequested, now: datetime) -> progression.Tracking:
        """Follow the generation `patched` (the apiserver's answer to our write) from `now`."""
        return progression.Tracking(
            target_generation=int((patched.get("metadata") or {}).get("generation") or 0),
            deadline_seconds=request.progress_deadline_seconds,
            last_progress_at=now,
            grace_seconds=self.options.deadline_grace_seconds,
        )
