"""Verifies a step: polls its check (alert resolved, pod replaced, workload available, node cordoned or
drained, no failed pods, the deployer's outcome) until it passes or the step's timeout runs out.

A probe that errors counts as "not yet", never as a pass; the result says what was last observed, which
travels in `recovery.succeeded`/`recovery.failed` and the audit trail.
"""

from __future__ import annotations

import asyncio
import time

from opsbus.common.errors import PermanentError, TransientError
from opsbus.common.events import Envelope
from opsbus.common.events.payloads import AlertFired, ResourceRef, VerificationResult
from opsbus.common.store import Database
from opsbus.healer.cluster import KubeCluster
from opsbus.healer.domain.planning import Plan
from opsbus.healer.domain.policy import VerifyCheck
from opsbus.healer.recording import namespace_of
from opsbus.healer.store import AlertRow, DeployOutcomeRow, RecoveryRow


class Verifier:
    def __init__(self, db: Database, cluster: KubeCluster, verify_poll: float) -> None:
        self.db = db
        self.cluster = cluster
        self.verify_poll = verify_poll

    async def verify(self, rec: RecoveryRow, p: Plan, request_id: str | None) -> VerificationResult | None:
        check = VerifyCheck(p.verification.check)
        if check is VerifyCheck.NONE:
            return None
        t = p.action.target
        ns = namespace_of(t)
        alert = Envelope.model_validate(rec.alert_event).payload_as(AlertFired)  # once, not on every poll
        started = time.monotonic()
        deadline = started + p.verification.timeout_seconds
        observed = "not checked yet"
        while True:
            try:
                passed, observed = await self.probe(check, rec, alert, t, ns, p=p, request_id=request_id)
            except (TransientError, PermanentError) as exc:
                passed, observed = False, f"probe failed: {exc}"
            if passed or time.monotonic() >= deadline:
                return VerificationResult(
                    passed=passed,
                    check=check.value,
                    observed=observed[:1024],
                    waited_seconds=time.monotonic() - started,
                )
            await asyncio.sleep(self.verify_poll)

    async def probe(  # noqa: PLR0911
        self,
        check: VerifyCheck,
        rec: RecoveryRow,
        alert: AlertFired,
        t: ResourceRef,
        ns: str,
        *,
        p: Plan,
        request_id: str | None,
    ) -> tuple[bool, str]:
        match check:
            case VerifyCheck.ALERT_RESOLVED:
                async with self.db.sessions() as session:
                    row = await session.get(AlertRow, rec.fingerprint)
                firing = row is None or row.firing
                return (not firing), ("alert still firing" if firing else "alert resolved")
            case VerifyCheck.POD_REPLACED:
                gone, seen = await self.cluster.pod_replaced(ns, t.name, p.preconditions.get("uid"))
                if gone and alert.workload is not None and alert.workload.kind == "Deployment":
                    ready, status = await self.cluster.workload_available(ns, alert.workload.name)
                    return ready, f"{seen}; {status}"
                return gone, seen
            case VerifyCheck.WORKLOAD_AVAILABLE:
                name = alert.workload.name if alert.workload else t.name
                return await self.cluster.workload_available(
                    ns or (alert.workload.namespace if alert.workload else ""), name
                )
            case VerifyCheck.NODE_CORDONED:
                return await self.cluster.node_cordoned(t.name)
            case VerifyCheck.NODE_DRAINED:
                return await self.cluster.node_drained(t.name)
            case VerifyCheck.NO_FAILED_PODS:
                return await self.cluster.no_failed_pods(ns, f"job-name={t.name}" if t.kind == "Job" else None)
            case VerifyCheck.DEPLOY_SUCCEEDED:
                async with self.db.sessions() as session:
                    out = await session.get(DeployOutcomeRow, request_id) if request_id else None
                if out is None:
                    return False, "waiting for the deployer's outcome"
                return out.outcome in ("succeeded", "rolledback"), f"deploy {out.outcome}: {out.message or ''}"
            case VerifyCheck.NONE:
                return True, "nothing to verify"
