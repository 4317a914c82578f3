"""The executor: the one object the service wires, composed of the healer's working parts.

`intake` (alerts and deploy outcomes in), `recovering` (the ladder: plan, act, verify), `deferring` (the
scheduler of what a guard put off), `approving` (people's decisions), `policies` (versions), `recording`
(events, audit, lifecycle transitions, escalation). Each part is a
module of its own; this module only builds them over shared ports (database, cluster, clock) and offers
the operations the service and the tests call. It decides nothing itself.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from opsbus.common.api.calling import Caller
from opsbus.common.events import Envelope
from opsbus.common.store import Database
from opsbus.healer.approving import Approvals
from opsbus.healer.cluster import KubeCluster
from opsbus.healer.deferring import Queue, Scheduler
from opsbus.healer.diagnoses import Diagnoses
from opsbus.healer.domain.planning import Grant, Guards
from opsbus.healer.domain.policy import PolicyError, PolicySet
from opsbus.healer.intake import Intake
from opsbus.healer.leasing import Leases
from opsbus.healer.policies import PolicyStore
from opsbus.healer.recording import Recorder, recovery_id_for
from opsbus.healer.recovering import Ladder
from opsbus.healer.store import ApprovalRow


class Executor:
    def __init__(
        self,
        *,
        db: Database,
        cluster: KubeCluster,
        guards: Guards,
        cluster_name: str,
        wake_relay: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        verify_poll: float = 0.5,
        owner: str | None = None,
        lease_seconds: float = 15.0,
        max_recoveries: int = 256,
    ) -> None:
        self.db = db
        self.cluster = cluster
        self.guards = guards
        self.cluster_name = cluster_name
        self.clock = clock
        self.leases = Leases(db, owner or f"healer-{uuid.uuid4().hex[:12]}", lease_seconds, clock)
        self.recorder = Recorder(db=db, cluster_name=cluster_name, clock=clock, wake_relay=wake_relay)
        self.policy_store = PolicyStore(db, clock)
        self.ladder = Ladder(
            db=db,
            cluster=cluster,
            guards=guards,
            rec=self.recorder,
            policies=self.policy_store,
            leases=self.leases,
            plan_lock=f"opsbus.healer:{cluster_name}",
            clock=clock,
            verify_poll=verify_poll,
            max_recoveries=max_recoveries,
        )
        self.intake = Intake(
            db=db,
            rec=self.recorder,
            policies=self.policy_store,
            incidents=self.ladder.incidents,
            guards=guards,
            plan_lock=f"opsbus.healer:{cluster_name}",
            clock=clock,
            launch=self.ladder.launch,
        )
        self.diagnoses = Diagnoses(db=db, clock=clock)
        self.approvals = Approvals(db=db, rec=self.recorder, clock=clock, resume=self._resume_granted)
        self.scheduler = Scheduler(
            db=db, rec=self.recorder, policies=self.policy_store, clock=clock, launch=self.ladder.launch
        )

    def _resume_granted(self, rid: str, grant: Grant) -> None:
        self.ladder.spawn(self.ladder.resume(rid, grant))

    # --- policies
    async def load_policies(self, document: str, author: str) -> PolicySet:
        return await self.policy_store.load(document, author)

    async def policies(self) -> PolicySet:
        return await self.policy_store.current()

    # --- events in
    async def on_alert_fired(self, event: Envelope) -> None:
        await self.intake.on_alert_fired(event)

    async def on_alert_resolved(self, event: Envelope) -> None:
        await self.intake.on_alert_resolved(event)

    async def on_deploy_outcome(self, event: Envelope) -> None:
        await self.intake.on_deploy_outcome(event)

    async def on_diagnosis(self, event: Envelope) -> None:
        await self.diagnoses.on_diagnosis(event)

    async def on_decision_event(self, event: Envelope) -> None:
        await self.approvals.on_decision_event(event)

    # --- recoveries and approvals
    async def run(self, rid: str, grant: Grant | None = None) -> None:
        await self.ladder.run(rid, grant)

    async def resume_orphans(self) -> int:
        return await self.ladder.resume_orphans()

    async def pending(self) -> list[ApprovalRow]:
        return await self.approvals.pending()

    async def decide(
        self, rid: str, step: int, approver: str, *, approve: bool, comment: str | None, caller: Caller | None = None
    ) -> str:
        return await self.approvals.decide(rid, step, approver, approve=approve, comment=comment, caller=caller)

    async def wake_deferred(self) -> list[str]:
        """Close, escalate or plan again the deferred recoveries whose time has come (one replica each)."""
        return await self.scheduler.wake()

    async def deferral_queue(self) -> Queue:
        return await self.scheduler.queue()

    async def expire_approvals(self) -> int:
        return await self.approvals.expire_approvals()

    async def close(self) -> None:
        await self.intake.close()
        await self.ladder.close()


__all__ = ["Executor", "PolicyError", "recovery_id_for"]
