"""Every opsbus event payload, one module per family.

Importing this package registers every payload type in `EventPayload.registry`, which is what
`Envelope.payload()` decodes with: a consumer that imports `opsbus.common.events.payloads` can decode
any event on the bus. Class names are `<Family><Verb>` for v1; a v2 would be `<Family><Verb>V2`.
"""

from opsbus.common.events.envelope import EventPayload
from opsbus.common.events.payloads.alert import (
    AlertAnnotations,
    AlertEvidence,
    AlertFired,
    AlertResolved,
    AlertSource,
    MetricObservation,
)
from opsbus.common.events.payloads.audit import AuditOutcome, AuditRecorded
from opsbus.common.events.payloads.change import ChangeKind, ChangeOrigin, ChangeRecorded, FieldChange
from opsbus.common.events.payloads.cluster import ChangeType, ClusterEvent
from opsbus.common.events.payloads.common import (
    Actor,
    ActorKind,
    ConditionSummary,
    ContainerState,
    KubeEventSummary,
    LogExcerpt,
    OwnerRef,
    ReplicaCounts,
    ResourceQuantities,
    ResourceRef,
    ResourceRequirements,
    Severity,
    WorkloadRef,
)
from opsbus.common.events.payloads.deploy import (
    AnalysisMetric,
    AnalysisOutcome,
    AnalysisResult,
    AnalysisSpec,
    BlueGreenSpec,
    CanarySpec,
    CanaryStep,
    ComparisonOperator,
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
    InconclusivePolicy,
    KubernetesCheck,
    KubernetesProvider,
    Measurement,
    MetricsProvider,
    Strategy,
    Threshold,
)
from opsbus.common.events.payloads.notify import ChannelKind, NotifyDelivered, NotifyFailed
from opsbus.common.events.payloads.recovery import (
    ActionKind,
    ApprovalRequest,
    AttemptOutcome,
    AttemptRecord,
    GuardCheck,
    PolicyRef,
    RecoveryAction,
    RecoveryApproved,
    RecoveryEscalated,
    RecoveryFailed,
    RecoveryPlanned,
    RecoveryRejected,
    RecoveryStarted,
    RecoverySucceeded,
    VerificationResult,
    VerificationSpec,
)
from opsbus.common.events.payloads.scale import (
    ContainerRecommendation,
    CostEstimate,
    ReplicaRecommendation,
    Risk,
    ScaleApplied,
    ScaleMode,
    ScaleRecommended,
)


def opsbus_payload_types() -> dict[str, type[EventPayload]]:
    """The registered payload types defined by opsbus itself, by event type.

    `EventPayload.registry` may also hold types registered by tests or tools (a probe type in the bus
    tests, say); the catalogue, the docs and the completeness checks are about these.
    """
    return {
        event_type: model
        for event_type, model in sorted(EventPayload.registry.items())
        if model.__module__.startswith(f"{__name__}.")
    }


__all__ = [
    "ActionKind",
    "Actor",
    "ActorKind",
    "AlertAnnotations",
    "AlertEvidence",
    "AlertFired",
    "AlertResolved",
    "AlertSource",
    "AnalysisMetric",
    "AnalysisOutcome",
    "AnalysisResult",
    "AnalysisSpec",
    "ApprovalRequest",
    "AttemptOutcome",
    "AttemptRecord",
    "AuditOutcome",
    "AuditRecorded",
    "BlueGreenSpec",
    "CanarySpec",
    "CanaryStep",
    "ChangeKind",
    "ChangeOrigin",
    "ChangeRecorded",
    "ChangeType",
    "ChannelKind",
    "ClusterEvent",
    "ComparisonOperator",
    "ConditionSummary",
    "ContainerRecommendation",
    "ContainerState",
    "CostEstimate",
    "DeployAborted",
    "DeployFailed",
    "DeployFailureReason",
    "DeployPhase",
    "DeployProgressed",
    "DeployRequested",
    "DeployRollbackFailed",
    "DeployRolledBack",
    "DeploySkipped",
    "DeployStarted",
    "DeploySucceeded",
    "DeploySuperseded",
    "FieldChange",
    "GuardCheck",
    "InconclusivePolicy",
    "KubeEventSummary",
    "KubernetesCheck",
    "KubernetesProvider",
    "LogExcerpt",
    "Measurement",
    "MetricObservation",
    "MetricsProvider",
    "NotifyDelivered",
    "NotifyFailed",
    "OwnerRef",
    "PolicyRef",
    "RecoveryAction",
    "RecoveryApproved",
    "RecoveryEscalated",
    "RecoveryFailed",
    "RecoveryPlanned",
    "RecoveryRejected",
    "RecoveryStarted",
    "RecoverySucceeded",
    "ReplicaCounts",
    "ReplicaRecommendation",
    "ResourceQuantities",
    "ResourceRef",
    "ResourceRequirements",
    "Risk",
    "ScaleApplied",
    "ScaleMode",
    "ScaleRecommended",
    "Severity",
    "Strategy",
    "Threshold",
    "VerificationResult",
    "VerificationSpec",
    "WorkloadRef",
    "opsbus_payload_types",
]
