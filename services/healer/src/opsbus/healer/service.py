"""Wiring: runtime, database, cluster client, bus consumers, outbox relay and request-reply endpoints.

Consumers (durable, shared by every replica of one cluster's healer; each name ends in `-<cluster>`):
`healer-alerts` (alert.fired, long handlers: verification
waits run inside them, kept alive by in-progress signals), `healer-alert-state` (alert.fired/resolved ->
the alert table, so "still firing" is known even while recoveries are running) and `healer-deploy`
(deploy outcomes a rollback step follows by request id), `healer-decisions` (approvals from other publishers)
and `healer-diagnoses` (the analyzer's top cause per incident, which ladder steps may be conditioned on).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from opsbus.common.bus import Bus, ConsumerSpec, Delivery, for_cluster
from opsbus.common.events.payloads import (
    AlertFired,
    AlertResolved,
    DeployAborted,
    DeployFailed,
    DeployRollbackFailed,
    DeployRolledBack,
    DeploySkipped,
    DeploySucceeded,
    DeploySuperseded,
    DiagnosisMade,
    DiagnosisRevised,
    RecoveryApproved,
    RecoveryRejected,
)
from opsbus.common.rpc import Endpoint, serve
from opsbus.common.runtime import Runtime
from opsbus.common.store import OutboxRelay, RelayOptions
from opsbus.healer import api, editing
from opsbus.healer.cluster import KubeCluster
from opsbus.healer.executing import Executor
from opsbus.healer.scheduling import run_scheduler
from opsbus.healer.settings import HealerSettings
from opsbus.healer.store import MIGRATIONS, SCHEMA, TABLES

SERVICE = "healer"
log = logging.getLogger(__name__)


def policy_text(path: str | None) -> str:
    if path:
        return Path(path).read_text()
    return files("opsbus.healer.domain").joinpath("defaults.yaml").read_text()


#: the deploy outcomes a rollback step follows
_DEPLOY_OUTCOMES = (
    DeploySucceeded,
    DeployFailed,
    DeployRolledBack,
    DeploySuperseded,
    DeployAborted,
    DeploySkipped,
    DeployRollbackFailed,
)


def consumer_specs(settings: HealerSettings) -> list[ConsumerSpec]:
    """Every durable consumer of the healer, with what each accepts (tests/integration/test_dlq_contract.py).

    Named per cluster (`healer-alerts-<cluster>`, `bus.clusters`): several clusters' healers share one bus.
    """
    c = settings.cluster
    specs = [
        ConsumerSpec(
            durable="healer-alerts",
            stream="ALERT",
            subjects=[f"alert.fired.{c}.*"],
            accepts=[AlertFired],
            concurrency=settings.healer.alert_concurrency,
            # Batched pulls: the bus hands on what the stream holds at once and never waits for a batch to fill
            # (`bus.pulling`), so a storm comes in whole batches and a lone alert is not held.
            max_deliver=50,
            backoff=(1.0, 5.0, 15.0, 60.0),
            ack_wait=60.0,
            description="healer: remediate fired alerts",
        ),
        ConsumerSpec(
            durable="healer-alert-state",
            stream="ALERT",
            subjects=[f"alert.resolved.{c}.*"],
            accepts=[AlertResolved],
            concurrency=4,
            description="healer: which alerts are still firing",
        ),
        ConsumerSpec(
            durable="healer-deploy",
            stream="DEPLOY",
            subjects=[f"deploy.{m.verb()}.{c}.*" for m in _DEPLOY_OUTCOMES],
            accepts=_DEPLOY_OUTCOMES,
            description="healer: outcomes of rollbacks it requested",
        ),
        ConsumerSpec(
            durable="healer-decisions",
            stream="RECOVERY",
            subjects=[f"recovery.{m.verb()}.{c}.*" for m in (RecoveryApproved, RecoveryRejected)],
            accepts=[RecoveryApproved, RecoveryRejected],
            description="healer: approvals and rejections published by the gateway or other tools",
        ),
        ConsumerSpec(
            durable="healer-diagnoses",
            stream="DIAGNOSIS",
            subjects=[f"diagnosis.{m.verb()}.{c}.*" for m in (DiagnosisMade, DiagnosisRevised)],
            accepts=[DiagnosisMade, DiagnosisRevised],
            description="healer: the analyzer's top cause per incident, for steps conditioned on the cause",
        ),
    ]
    return [for_cluster(spec, c) for spec in specs]


@dataclass
class Healer:
    executor: Executor
    bus: Bus


async def setup(rt: Runtime[HealerSettings]) -> Healer:  # noqa: PLR0915 - the wiring reads best in one place
    s = rt.settings
    db = await rt.open_database(MIGRATIONS, SCHEMA)
    cluster = KubeCluster.from_kubeconfig(s.healer.kubeconfig, timeout=s.healer.request_timeout_seconds)
    rt.on_shutdown(lambda: asyncio.to_thread(cluster.close), "kubernetes")
    bus = await rt.open_bus()
    # One replica relays at a time: a recovery's events (planned, started, succeeded) may be written by different
    # replicas (a deferral comes due on another one), and subscribers read them in commit order.
    relay = OutboxRelay(
        db.engine, TABLES.outbox, bus.publisher, registry=rt.registry, options=RelayOptions(exclusive=True)
    )
    await relay.start()
    rt.on_shutdown(relay.stop, "outbox-relay")
    executor = Executor(
        db=db,
        cluster=cluster,
        guards=s.healer.guards(),
        cluster_name=s.cluster,
        wake_relay=relay.wake,
        verify_poll=s.healer.verify_poll_seconds,
        owner=f"{rt.instance}/{uuid.uuid4().hex[:8]}",
        lease_seconds=s.healer.lease_seconds,
        max_recoveries=s.healer.max_recoveries,
    )
    rt.on_shutdown(executor.close, "recoveries")
    await executor.load_policies(
        policy_text(s.healer.policy_file), author="file" if s.healer.policy_file else "defaults"
    )

    async def fired(d: Delivery) -> None:
        await executor.on_alert_fired(d.event)

    async def state(d: Delivery) -> None:
        if d.event.type == "io.opsbus.alert.resolved.v1":
            await executor.on_alert_resolved(d.event)

    async def deploy(d: Delivery) -> None:
        await executor.on_deploy_outcome(d.event)

    async def decision(d: Delivery) -> None:
        await executor.on_decision_event(d.event)

    async def diagnosis(d: Delivery) -> None:
        await executor.on_diagnosis(d.event)

    handlers = {
        "healer-alerts": fired,
        "healer-alert-state": state,
        "healer-deploy": deploy,
        "healer-decisions": decision,
        "healer-diagnoses": diagnosis,
    }
    for spec in consumer_specs(s):
        bus.consumer(spec, handlers[spec.legacy_durable or spec.durable])
    await bus.start()

    async def approve(r: api.ApproveRequest) -> api.ApprovalAnswer:
        status = await executor.decide(
            r.recovery_id, r.step, r.approver, approve=True, comment=r.comment, caller=r.caller
        )
        return api.ApprovalAnswer(recovery_id=r.recovery_id, step=r.step, status=status)

    async def reject(r: api.RejectRequest) -> api.ApprovalAnswer:
        status = await executor.decide(
            r.recovery_id, r.step, r.approver, approve=False, comment=r.reason, caller=r.caller
        )
        return api.ApprovalAnswer(recovery_id=r.recovery_id, step=r.step, status=status)

    async def list_pending(_: api.ListPendingRequest) -> api.PendingList:
        from opsbus.common.events.payloads import RecoveryAction  # noqa: PLC0415

        rows = await executor.pending()
        return api.PendingList(
            items=[
                api.PendingApproval(
                    recovery_id=r.recovery_id,
                    step=r.step,
                    action=RecoveryAction.model_validate(r.action),
                    reason=r.reason,
                    requested_at=r.requested_at,
                    expires_at=r.expires_at,
                )
                for r in rows
            ]
        )

    svc = await serve(
        bus.nc,
        SERVICE,
        "0.1.0",
        [
            Endpoint("approve", api.ApproveRequest, api.ApprovalAnswer, approve, "approve a planned recovery step"),
            Endpoint("reject", api.RejectRequest, api.ApprovalAnswer, reject, "reject a planned recovery step"),
            Endpoint("list_pending", api.ListPendingRequest, api.PendingList, list_pending, "approvals waiting"),
            *editing.endpoints(executor.policy_store, executor.guards, executor.recorder.auditor),
        ],
        description="opsbus healer: remediation approvals and policies",
        tracer=rt.tracer_provider.get_tracer("opsbus.healer"),
    )
    rt.on_shutdown(svc.stop, "rpc")

    async def housekeeping() -> None:
        """Expire unanswered approvals; resume recoveries whose replica died (its lease ran out)."""
        every = min(5.0, s.healer.lease_seconds / 2)
        while True:
            await asyncio.sleep(every)
            try:
                await executor.expire_approvals()
                await executor.resume_orphans()
            except Exception:  # the database may be briefly away: the next round retries
                log.warning("healer housekeeping failed; retrying in %.0fs", every, exc_info=True)

    loop = asyncio.create_task(housekeeping(), name="healer:housekeeping")
    scheduler = asyncio.create_task(
        run_scheduler(executor, s.healer.schedule_poll_seconds, rt.registry), name="healer:scheduler"
    )

    async def stop_loop() -> None:
        for task in (loop, scheduler):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    rt.on_shutdown(stop_loop, "housekeeping")
    return Healer(executor=executor, bus=bus)
