"""One realistic, valid example event per payload type, with fixed ids and times.

They are embedded in the generated JSON Schemas and AsyncAPI messages (so a team sees a real event next to
its schema), quoted in docs/EVENTS.md, and used by tests as known-good events. The story they tell is one
incident: a CrashLoopBackOff in `payments/checkout` fires an alert, the healer restarts, then rolls back,
the deployer rolls back, the notifier pages, everything is audited. Deterministic: no clock, no random ids.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from opsbus.common.events.envelope import Envelope, EventPayload
from opsbus.common.events.payloads import (
    ActionKind,
    Actor,
    ActorKind,
    AlertAnnotations,
    AlertEvidence,
    AlertFired,
    AlertResolved,
    AlertSource,
    AnalysisMetric,
    AnalysisOutcome,
    AnalysisResult,
    AnalysisSpec,
    ApprovalRequest,
    AttemptOutcome,
    AttemptRecord,
    AuditOutcome,
    AuditRecorded,
    CanarySpec,
    CanaryStep,
    Cause,
    CauseKind,
    ChangeKind,
    ChangeOrigin,
    ChangeRecorded,
    ChangeType,
    ChannelKind,
    Checked,
    ClusterEvent,
    ComparisonOperator,
    ConditionSummary,
    ContainerRecommendation,
    ContainerState,
    CostEstimate,
    DeployAborted,
    DeployFailed,
    DeployFailureReason,
    DeployPhase,
    DeployProgressed,
    DeployRequested,
    DeployRollbackFailed,
    DeployRolledBack,
    DeploySkipped,
    DeployStarted,
    DeploySucceeded,
    DeploySuperseded,
    DiagnosisMade,
    DiagnosisOutcome,
    DiagnosisRevised,
    Evidence,
    EvidenceKind,
    FieldChange,
    GuardCheck,
    IncidentRef,
    KubeEventSummary,
    LogExcerpt,
    Measurement,
    MetricsProvider,
    NotifyDelivered,
    NotifyFailed,
    OwnerRef,
    PolicyRef,
    RecoveryAction,
    RecoveryApproved,
    RecoveryEscalated,
    RecoveryFailed,
    RecoveryPlanned,
    RecoveryRejected,
    RecoveryStarted,
    RecoverySucceeded,
    ReplicaCounts,
    ReplicaRecommendation,
    ResourceQuantities,
    ResourceRef,
    ResourceRequirements,
    Risk,
    ScaleApplied,
    ScaleMode,
    ScaleRecommended,
    ScoreParts,
    Severity,
    Strategy,
    Threshold,
    VerificationResult,
    VerificationSpec,
    WorkloadRef,
)

CLUSTER = "prod"
T0 = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
FINGERPRINT = "8f3a9c2d41e07b65"
WORKLOAD = WorkloadRef(kind="Deployment", namespace="payments", name="checkout")
POD = ResourceRef(kind="Pod", namespace="payments", name="checkout-7d9f8b6c5-x2x4q", api_version="v1")
HEALER = Actor(kind=ActorKind.SERVICE, id="healer")
ALICE = Actor(kind=ActorKind.USER, id="oidc|alice", display_name="alice@example.com")
POLICY = PolicyRef(name="crashloop-default", version=3)
RECOVERY_ID = "rcv-0195b2f0-crashloop-checkout"
DEPLOYMENT_ID = "dep-0195b2f1-checkout-r42"
REQUEST_ID = "0195b2f1-4c1e-7a52-9d40-3b8e5f0c2a17"


def _at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _containers() -> tuple[ContainerState, ...]:
    return (
        ContainerState(
            name="app",
            image="registry.example.com/payments/checkout:1.42.0",
            restart_count=5,
            state="waiting",
            reason="CrashLoopBackOff",
            message="back-off 2m40s restarting failed container=app",
            last_termination_reason="Error",
            last_exit_code=1,
            last_finished_at=_at(-20),
        ),
    )


def _alert_common() -> dict[str, object]:
    return {
        "fingerprint": FINGERPRINT,
        "alertname": "KubePodCrashLooping",
        "severity": Severity.CRITICAL,
        "labels": {
            "alertname": "KubePodCrashLooping",
            "cluster": CLUSTER,
            "namespace": "payments",
            "pod": POD.name,
            "container": "app",
            "workload": "checkout",
            "severity": "critical",
        },
        "annotations": AlertAnnotations(
            summary="Pod payments/checkout-7d9f8b6c5-x2x4q is crash looping (5 restarts in 10m)",
            description="Container app exits with code 1 shortly after start.",
            runbook_url="https://runbooks.example.com/KubePodCrashLooping",
        ),
        "starts_at": T0,
        "source": AlertSource.WATCHER,
        "workload": WORKLOAD,
    }


def _analysis() -> AnalysisSpec:
    return AnalysisSpec(
        metrics=(
            AnalysisMetric(
                name="success-rate",
                provider=MetricsProvider(
                    query='sum(rate(http_requests_total{app="checkout",code!~"5.."}[2m]))'
                    ' / sum(rate(http_requests_total{app="checkout"}[2m]))'
                ),
                success_condition=Threshold(operator=ComparisonOperator.GE, threshold=0.99),
                failure_condition=Threshold(operator=ComparisonOperator.LT, threshold=0.95),
                interval_seconds=60,
                count=5,
                failure_limit=1,
            ),
        )
    )


def _analysis_result(outcome: AnalysisOutcome) -> AnalysisResult:
    failed = outcome is AnalysisOutcome.FAILED
    return AnalysisResult(
        metric="success-rate",
        outcome=outcome,
        successful=3 if not failed else 1,
        failed=0 if not failed else 2,
        measurements=(
            Measurement(value=0.997, outcome=AnalysisOutcome.SUCCESSFUL),
            Measurement(value=0.91 if failed else 0.995, outcome=outcome),
        ),
    )


def _diagnosis(revision: int) -> dict[str, object]:
    """The analyzer's answer for the example incident: the rollout of checkout 1.42.0, 40 s before the crash."""
    rollout = Cause(
        kind=CauseKind.ROLLOUT,
        summary="containers crash since their env or command changed: image app: checkout:1.41.2 -> "
        "checkout:1.42.0; env app: DB_POOL_SIZE changed (Deployment/checkout, 40 s before the first alert)",
        confidence=0.89,
        target=WORKLOAD.as_resource_ref(),
        evidence=(
            Evidence(
                kind=EvidenceKind.CHANGE,
                ref="0195b2f0-9e21-7c4b-8a11-000000000004",  # the example change.recorded
                detail="image app: checkout:1.41.2 -> checkout:1.42.0; env app: DB_POOL_SIZE changed",
                at=_at(-40),
            ),
            Evidence(kind=EvidenceKind.CONTAINER_STATE, ref="CrashLoopBackOff", detail="container app"),
            Evidence(
                kind=EvidenceKind.LOG_TEMPLATE,
                ref="pool exhausted: <*> of <*> connections in use",
                detail="pool exhausted: 5 of 5 connections in use (in checkout-7d9f8b6c5-x2x4q)",
            ),
        ),
        suggested_action=ActionKind.ROLLBACK,
        scores=ScoreParts(proximity=0.91, scope=1.0, signature=0.85),
    )
    log_line = Cause(
        kind=CauseKind.LOG_SIGNATURE,
        summary="new log line `pool exhausted: <*> of <*> connections in use` appears only in the failing pods",
        confidence=0.6,
        evidence=(
            Evidence(
                kind=EvidenceKind.LOG_TEMPLATE,
                ref="pool exhausted: <*> of <*> connections in use",
                detail="pool exhausted: 5 of 5 connections in use (in checkout-7d9f8b6c5-x2x4q)",
            ),
        ),
        suggested_action=ActionKind.NOTIFY_ONLY,
        scores=ScoreParts(proximity=0.5, scope=1.0, signature=0.5),
    )
    pods = [FINGERPRINT] if revision == 1 else [FINGERPRINT, "8f3a9c2d41e07b66"]
    return {
        "incident": IncidentRef(
            incident_id="0195b2f0-9e21-7c4b-8a11-5d2e6f7a8b90",
            alert_fingerprint=FINGERPRINT,
            alertname="KubePodCrashLooping",
            workload=WORKLOAD,
            first_alert_at=_at(-20),
            alerts=tuple(pods),
        ),
        "revision": revision,
        "outcome": DiagnosisOutcome.EXPLAINED,
        "causes": (rollout, log_line) if revision == 1 else (log_line.model_copy(update={"confidence": 0.9}), rollout),
        "checked": (
            Checked(source="changes", count=3, detail="payments and nodes, 60 min before the first alert"),
            Checked(source="logs", count=240, detail="40 lines of failing pods, 200 of healthy ones"),
        ),
        "diagnosed_at": _at(1 + 60 * (revision - 1)),
    }


def example_payloads() -> dict[str, EventPayload]:
    """A valid payload of every registered v1 type, keyed by event type."""
    step2 = RecoveryAction(kind=ActionKind.ROLLBACK, target=WORKLOAD.as_resource_ref())
    step1 = RecoveryAction(kind=ActionKind.ROLLOUT_RESTART, target=WORKLOAD.as_resource_ref())
    recovery = {
        "recovery_id": RECOVERY_ID,
        "alert_fingerprint": FINGERPRINT,
        "alertname": "KubePodCrashLooping",
        "policy": POLICY,
        "steps_total": 3,
    }
    deploy = {
        "deployment_id": DEPLOYMENT_ID,
        "request_id": REQUEST_ID,
        "workload": WORKLOAD,
        "strategy": Strategy.CANARY,
        "revision": 42,
    }
    delivery = {
        "notification_id": "ntf-0195b2f0-pagerduty-oncall",
        "channel": ChannelKind.PAGERDUTY,
        "receiver": "payments-oncall",
        "group_key": '{}/{severity="critical"}:{alertname="KubePodCrashLooping", namespace="payments"}',
        "notification_key": FINGERPRINT,
        "event_ids": ("0195b2f0-9e21-7c4b-8a11-5d2e6f7a8b90",),
        "alert_fingerprints": (FINGERPRINT,),
        "latency_ms": 412.5,
    }
    cost = CostEstimate(monthly_now=182.40, monthly_after=121.60, monthly_delta=-60.80)
    resources = ContainerRecommendation(
        container="app",
        current=ResourceRequirements(
            requests=ResourceQuantities(cpu_millicores=1000, memory_bytes=2 * 1024**3),
            limits=ResourceQuantities(memory_bytes=2 * 1024**3),
        ),
        recommended=ResourceRequirements(
            requests=ResourceQuantities(cpu_millicores=450, memory_bytes=1536 * 1024**2),
            limits=ResourceQuantities(memory_bytes=1536 * 1024**2),
        ),
        basis="p95 CPU and p99 memory over 8 days + 15% margin",
    )
    examples: list[EventPayload] = [
        ClusterEvent(
            change=ChangeType.MODIFIED,
            kind="Pod",
            api_version="v1",
            namespace="payments",
            name=POD.name,
            uid="5b1c2a9e-3f4d-4e8a-9c7b-1a2b3c4d5e6f",
            resource_version="184467",
            labels={"app": "checkout", "pod-template-hash": "7d9f8b6c5"},
            owner=OwnerRef(kind="ReplicaSet", name="checkout-7d9f8b6c5"),
            phase="Running",
            conditions=(ConditionSummary(type="Ready", status="False", reason="ContainersNotReady"),),
            node_name="node-a-3",
            containers=_containers(),
        ),
        AlertFired(
            **_alert_common(),
            evidence=AlertEvidence(
                containers=_containers(),
                events=(
                    KubeEventSummary(
                        type="Warning",
                        reason="BackOff",
                        message="Back-off restarting failed container app in pod checkout-7d9f8b6c5-x2x4q",
                        count=14,
                        first_seen=_at(-600),
                        last_seen=_at(-5),
                        reporting_controller="kubelet",
                        regarding=POD,
                    ),
                ),
                logs=(
                    LogExcerpt(
                        container="app",
                        previous=True,
                        lines=(
                            "INFO starting checkout 1.42.0",
                            "ERROR config: STRIPE_API_BASE is not set",
                            "FATAL exiting with status 1",
                        ),
                    ),
                ),
            ),
        ),
        AlertResolved(**_alert_common(), ends_at=_at(900), resolution="condition cleared"),
        DeployRequested(
            cluster=CLUSTER,
            workload=WORKLOAD,
            strategy=Strategy.CANARY,
            images={"app": "registry.example.com/payments/checkout:1.42.0"},
            canary=CanarySpec(
                steps=(
                    CanaryStep(weight=10, pause_seconds=120, analysis=_analysis()),
                    CanaryStep(weight=50, pause_seconds=300, analysis=_analysis()),
                    CanaryStep(weight=100),
                )
            ),
            progress_deadline_seconds=600,
            requester=Actor(kind=ActorKind.APIKEY, id="key_ci_payments"),
            reason="release 1.42.0 (CHG-1881)",
        ),
        DeployStarted(
            **deploy,
            previous_revision=41,
            images={"app": "registry.example.com/payments/checkout:1.42.0"},
            replicas=ReplicaCounts(desired=10, updated=0, ready=10, available=10),
            steps_total=3,
        ),
        DeployProgressed(
            **deploy,
            phase=DeployPhase.ANALYZING,
            replicas=ReplicaCounts(desired=10, updated=1, ready=10, available=10),
            step=1,
            steps_total=3,
            canary_weight=10,
            analysis=(_analysis_result(AnalysisOutcome.RUNNING),),
            message="step 1/3: 1 of 10 replicas on revision 42, analysing success-rate",
        ),
        DeploySucceeded(
            **deploy,
            duration_seconds=1243.0,
            replicas=ReplicaCounts(desired=10, updated=10, ready=10, available=10),
            analysis=(_analysis_result(AnalysisOutcome.SUCCESSFUL),),
        ),
        DeployFailed(
            **deploy,
            reason=DeployFailureReason.ANALYSIS_FAILED,
            message="success-rate failed 2 of 3 measurements (limit 1): 0.91 < 0.95",
            failed_step=1,
            analysis=(_analysis_result(AnalysisOutcome.FAILED),),
            rollback_pending=True,
            duration_seconds=301.0,
        ),
        DeployRolledBack(
            **deploy,
            from_revision=42,
            to_revision=41,
            automatic=True,
            reason="analysis success-rate failed at step 1",
        ),
        DeploySuperseded(
            **deploy,
            superseded_by="0195b2f4-0a3b-7f10-8c2d-6e5f4a3b2c1d",
            was_running=False,
        ),
        DeployAborted(
            **deploy,
            aborted_by=ALICE,
            reason="wrong build promoted",
            reverted_to_revision=41,
        ),
        DeploySkipped(
            **{**deploy, "revision": None},
            reason="stale",
            age_seconds=5400.0,
            freshness_seconds=3600.0,
            message="request is 5400s old, the deployer's freshness bound is 3600s: nothing was changed",
        ),
        DeployRollbackFailed(
            **deploy,
            failure=DeployFailureReason.ANALYSIS_FAILED,
            to_revision=41,
            replicas=ReplicaCounts(desired=10, updated=4, ready=6, available=6),
            message="rollback did not complete: 4 of 10 replicas updated, no progress for 630s",
        ),
        RecoveryPlanned(
            **recovery,
            step=2,
            action=step2,
            reason="rollout_restart did not clear KubePodCrashLooping; revision 42 is 11 min old",
            guards=(
                GuardCheck(name="alert_still_firing", passed=True),
                GuardCheck(name="cooldown", passed=True, detail="last action 6m ago, cooldown 5m"),
                GuardCheck(name="attempt_budget", passed=True, detail="2/3 attempts in 1h"),
            ),
            approval=ApprovalRequest(reason="rollback requires approval by policy", expires_at=_at(1800)),
            verification=VerificationSpec(check="alert resolved", timeout_seconds=600),
        ),
        RecoveryApproved(recovery_id=RECOVERY_ID, step=2, approver=ALICE, reason="go ahead", expires_at=_at(2400)),
        RecoveryRejected(recovery_id=RECOVERY_ID, step=2, approver=ALICE, reason="config fix being deployed instead"),
        RecoveryStarted(**recovery, step=2, action=step2, attempt=1, approved_by=ALICE),
        RecoverySucceeded(
            **recovery,
            step=2,
            action=step2,
            verification=VerificationResult(
                passed=True, check="alert resolved", observed="alert resolved after 212s", waited_seconds=212
            ),
            duration_seconds=251.0,
        ),
        RecoveryFailed(
            **recovery,
            step=1,
            action=step1,
            reason="verification timed out: alert still firing after 300s",
            verification=VerificationResult(
                passed=False, check="alert resolved", observed="5 -> 7 restarts", waited_seconds=300
            ),
            next_step=2,
        ),
        RecoveryEscalated(
            recovery_id=RECOVERY_ID,
            alert_fingerprint=FINGERPRINT,
            alertname="KubePodCrashLooping",
            policy=POLICY,
            reason="ladder exhausted after 3 steps",
            history=(
                AttemptRecord(
                    step=1,
                    action=ActionKind.ROLLOUT_RESTART,
                    target=WORKLOAD.as_resource_ref(),
                    outcome=AttemptOutcome.FAILED,
                    started_at=_at(60),
                    finished_at=_at(360),
                    message="alert still firing after 300s",
                ),
                AttemptRecord(
                    step=2,
                    action=ActionKind.ROLLBACK,
                    target=WORKLOAD.as_resource_ref(),
                    outcome=AttemptOutcome.REJECTED,
                    started_at=_at(400),
                    finished_at=_at(700),
                    message="rejected by alice@example.com",
                ),
            ),
        ),
        ScaleRecommended(
            recommendation_id="rec-0195b300-checkout",
            workload=WORKLOAD,
            containers=(resources,),
            replicas=ReplicaRecommendation(current=10, recommended=8, utilization=0.42, target_utilization=0.6),
            cost=cost,
            mode=ScaleMode.RECOMMEND,
            confidence=0.86,
            risk=Risk.LOW,
            reason="CPU requests 2.2x p95 usage over 8 days; no OOM or throttling observed",
            observation_seconds=8 * 86_400,
        ),
        ScaleApplied(
            recommendation_id="rec-0195b300-checkout",
            workload=WORKLOAD,
            containers=(resources,),
            cost=cost,
            mode=ScaleMode.RECOMMEND,
            applied_by=ALICE,
            previous_revision=42,
        ),
        NotifyDelivered(**delivery, attempt=1, status_code=202),
        NotifyFailed(
            **{**delivery, "channel": ChannelKind.SLACK, "receiver": "payments-slack"},
            attempt=2,
            status_code=429,
            error="429 Too Many Requests",
            retryable=True,
            final=False,
            retry_after_seconds=30,
            next_attempt_at=_at(95),
        ),
        ChangeRecorded(
            kinds=(ChangeKind.IMAGE, ChangeKind.ENV),
            object=WORKLOAD.as_resource_ref(),
            workload=WORKLOAD,
            diff=(
                FieldChange(
                    path="spec.template.spec.containers[app].image",
                    before="registry.example.com/payments/checkout:1.41.2",
                    after="registry.example.com/payments/checkout:1.42.0",
                ),
                FieldChange(path="spec.template.spec.containers[app].env[DB_POOL_SIZE]", before="20", after="5"),
            ),
            summary="image app: checkout:1.41.2 -> checkout:1.42.0; env app: DB_POOL_SIZE changed",
            origin=ChangeOrigin.OBSERVED,
            observed_at=_at(-40),
            resource_version="918273",
            generation=42,
        ),
        DiagnosisMade(**_diagnosis(1)),
        DiagnosisRevised(
            **_diagnosis(2),
            reason="alert KubePodCrashLooping of pod checkout-7d9f8b6c5-k8m2p joined the incident",
            previous_top=CauseKind.ROLLOUT,
        ),
        AuditRecorded(
            actor=HEALER,
            action="recovery.rollout_restart",
            target=WORKLOAD.as_resource_ref(),
            outcome=AuditOutcome.EXECUTED,
            reason="policy crashloop-default v3 step 1 for alert KubePodCrashLooping",
            details={"recovery_id": RECOVERY_ID, "attempt": 1, "guards": ["cooldown", "attempt_budget"]},
            request_id="0195b2f0-9e21-7c4b-8a11-5d2e6f7a8b90",
        ),
    ]
    return {payload.event_type: payload for payload in examples}


_SERVICE = {
    "cluster": "watcher",
    "alert": "watcher",
    "deploy": "deployer",
    "recovery": "healer",
    "scale": "optimizer",
    "notify": "notifier",
    "change": "watcher",
    "diagnosis": "analyzer",
    "audit": "healer",
}


def example_events() -> dict[str, Envelope]:
    """Every example payload in its CloudEvent, chained to the alert that started the incident."""
    payloads = example_payloads()
    alert = Envelope.build(
        payloads[AlertFired.event_type],
        service="watcher",
        cluster=CLUSTER,
        obj=POD.as_object_ref(),
        event_id="0195b2f0-9e21-7c4b-8a11-5d2e6f7a8b90",
        time=T0,
    )
    events = {alert.type: alert}
    for index, (event_type, payload) in enumerate(sorted(payloads.items()), start=1):
        if event_type in events:
            continue
        family = payload.family()
        service = "gateway" if event_type in (RecoveryApproved.event_type, RecoveryRejected.event_type) else None
        obj = POD.as_object_ref() if family in ("cluster", "alert") else WORKLOAD.as_object_ref()
        events[event_type] = Envelope.build(
            payload,
            service=service or _SERVICE[family],
            cluster=CLUSTER,
            obj=obj,
            cause=alert if family != "cluster" else None,
            event_id=f"0195b2f0-9e21-7c4b-8a11-{index:012d}",
            time=_at(index * 30),
        )
    return events
