"""`deploy.*`: rollout requests and their lifecycle.

`deploy.requested` is the only way anything changes a pod template (the healer's rollback is a request too).
The deployer answers every request with `deploy.started` and exactly one terminal event: `succeeded`,
`failed`, `rolledback`, `superseded` or `aborted`; a timeout is `failed` with reason `timeout`, never silence.
A request that arrives older than the deployer's freshness bound ends in `skipped` (nothing was changed); a
`failed` with `rollback_pending` is followed by `rolledback`, or by `rollback_failed` when the rollback itself
misses its progress deadline (the workload then needs a human).
Every outcome carries `request_id`, the id of the `deploy.requested` event it answers.

Validation lives in the request model so that a bad request fails where it is made (the gateway answers
422), not in the deployer: a canary needs steps with ascending weights, a rollback carries no images, and
analysis fails closed (an inconclusive measurement pauses or fails, never passes).
"""

from __future__ import annotations

import itertools
import re
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from opsbus.common.events.envelope import EventPayload
from opsbus.common.events.payloads.common import Actor, Frozen, ReplicaCounts, WorkloadRef

_CONTAINER_NAME = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"


class Strategy(StrEnum):
    ROLLING = "rolling"
    RECREATE = "recreate"
    BLUE_GREEN = "blue-green"
    CANARY = "canary"
    ROLLBACK = "rollback"


class InconclusivePolicy(StrEnum):
    """What an inconclusive analysis (no data, provider error) does: never pass."""

    PAUSE = "pause"
    FAIL = "fail"


class ComparisonOperator(StrEnum):
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="
    EQ = "=="
    NE = "!="


class Threshold(Frozen):
    """A condition on a measured value: `value <operator> threshold`."""

    operator: ComparisonOperator = Field(description="Comparison applied as `value <operator> threshold`.")
    threshold: float = Field(description="Right-hand side of the comparison.")

    def holds(self, value: float) -> bool:
        match self.operator:
            case ComparisonOperator.LT:
                return value < self.threshold
            case ComparisonOperator.LE:
                return value <= self.threshold
            case ComparisonOperator.GT:
                return value > self.threshold
            case ComparisonOperator.GE:
                return value >= self.threshold
            case ComparisonOperator.EQ:
                return value == self.threshold
            case ComparisonOperator.NE:
                return value != self.threshold


class MetricsProvider(Frozen):
    """Where an analysis metric comes from. The query must return one scalar (or a one-sample vector)."""

    kind: Literal["prometheus"] = Field(default="prometheus", description="Provider type.")
    address: str | None = Field(
        default=None, description="Provider base URL; absent means the deployer's configured default."
    )
    query: str = Field(min_length=1, description="Query, e.g. PromQL returning the success rate.")
    timeout_seconds: float = Field(default=10, gt=0, le=120, description="Per-query timeout.")


class KubernetesCheck(StrEnum):
    RESTARTS = "restarts"
    NOT_READY = "not_ready"


class KubernetesProvider(Frozen):
    """A check the deployer makes itself, against the apiserver, on the new version's pods only.

    `restarts`: container restarts summed over the new pods; `not_ready`: new pods without Ready=True.
    No new pod yet (or the pods cannot be listed) is inconclusive, never a pass.
    """

    kind: Literal["kubernetes"] = Field(description="Provider type.")
    check: KubernetesCheck = Field(description="restarts (of the new pods' containers) or not_ready (new pods).")


def _provider_kind(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("kind", "prometheus"))
    return str(getattr(value, "kind", "prometheus"))


AnyProvider = Annotated[
    Annotated[MetricsProvider, Tag("prometheus")] | Annotated[KubernetesProvider, Tag("kubernetes")],
    Discriminator(_provider_kind),
]


class AnalysisMetric(Frozen):
    """One metric of an analysis: measured `count` times every `interval_seconds`."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$", description="Metric name within the analysis.")
    provider: AnyProvider = Field(
        description="Where to measure: a Prometheus query (kind prometheus, the default) or a kubernetes check."
    )
    success_condition: Threshold = Field(description="A measurement succeeds when this holds.")
    failure_condition: Threshold | None = Field(
        default=None,
        description="A measurement fails when this holds; absent means it fails when success does not hold.",
    )
    interval_seconds: int = Field(default=60, ge=1, le=3600, description="Seconds between measurements.")
    count: int = Field(default=5, ge=1, le=1000, description="Number of measurements.")
    failure_limit: int = Field(
        default=0, ge=0, description="Failed measurements tolerated; one more fails the analysis."
    )
    inconclusive_limit: int = Field(
        default=0,
        ge=0,
        description="Inconclusive measurements tolerated before the inconclusive policy applies.",
    )
    initial_delay_seconds: int = Field(default=0, ge=0, description="Wait before the first measurement.")

    @model_validator(mode="after")
    def _limits(self) -> Self:
        if self.failure_limit >= self.count:
            raise ValueError(
                f"metric {self.name!r}: failure_limit {self.failure_limit} must be less than "
                f"count {self.count}, or the analysis could never fail"
            )
        return self


class AnalysisSpec(Frozen):
    """Metric analysis gating a rollout. Fails closed: no data or a provider error is inconclusive."""

    metrics: tuple[AnalysisMetric, ...] = Field(min_length=1, description="Metrics; all must pass.")
    inconclusive: InconclusivePolicy = Field(
        default=InconclusivePolicy.FAIL,
        description="pause (wait for a human to promote or abort) or fail (roll back) when inconclusive.",
    )

    @field_validator("metrics")
    @classmethod
    def _unique_names(cls, value: tuple[AnalysisMetric, ...]) -> tuple[AnalysisMetric, ...]:
        names = [m.name for m in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"analysis metric names must be unique, repeated: {dupes}")
        return value


class RouterKind(StrEnum):
    """The traffic router a weighted canary writes: a Gateway API route or an Istio virtual service."""

    HTTP_ROUTE = "HTTPRoute"  # gateway.networking.k8s.io/v1
    VIRTUAL_SERVICE = "VirtualService"  # networking.istio.io/v1


_DNS_LABEL = _CONTAINER_NAME  # Service names are DNS-1123 labels too
_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"


class TrafficRouter(Frozen):
    """Where a weighted canary shifts traffic: the route object (in the workload's namespace) and the two
    backend Services, one selecting only the stable pods, one only the canary's (label `opsbus.io/canary`).

    Only the rules of the route that send traffic to `stable_service` are changed (their two backend weights);
    every other rule, match and filter is left as it is."""

    kind: RouterKind = Field(description="HTTPRoute (Gateway API v1) or VirtualService (Istio).")
    name: str = Field(pattern=_DNS_SUBDOMAIN, max_length=253, description="The route object's name.")
    stable_service: str = Field(pattern=_DNS_LABEL, max_length=63, description="Service of the stable pods.")
    canary_service: str = Field(pattern=_DNS_LABEL, max_length=63, description="Service of the canary's pods.")
    canary_replicas: int | None = Field(
        default=None,
        ge=1,
        description="Replicas of the canary Deployment while it takes traffic (default: the stable's count); "
        "the weights do not depend on it.",
    )

    @model_validator(mode="after")
    def _two_services(self) -> Self:
        if self.stable_service == self.canary_service:
            raise ValueError("router.stable_service and router.canary_service must differ")
        return self


class CanaryStep(Frozen):
    """One canary step: shift to `weight` percent (of replicas, or of traffic with a router), then optionally
    pause and/or analyse."""

    weight: int = Field(
        ge=1, le=100, description="Percentage of replicas (or, with a router, of traffic) on the new version."
    )
    pause_seconds: int | None = Field(default=None, ge=0, description="Pause after reaching the weight.")
    manual_promotion: bool = Field(
        default=False, description="Pause until promoted through the gateway (after pause_seconds, if any)."
    )
    analysis: AnalysisSpec | None = Field(default=None, description="Analysis run at this step before moving on.")


class CanarySpec(Frozen):
    """Replica-ratio canary (no service mesh needed), or traffic-weighted with a `router`."""

    steps: tuple[CanaryStep, ...] = Field(min_length=1, description="Steps with strictly ascending weights.")
    router: TrafficRouter | None = Field(
        default=None,
        description="Shift traffic by weight on this route, independently of replicas (none: replica ratio).",
    )

    @field_validator("steps")
    @classmethod
    def _ascending(cls, value: tuple[CanaryStep, ...]) -> tuple[CanaryStep, ...]:
        weights = [step.weight for step in value]
        for index, (before, after) in enumerate(itertools.pairwise(weights), start=1):
            if after <= before:
                raise ValueError(
                    f"canary step weights must be strictly ascending: step {index + 1} has weight {after} "
                    f"after {before} (weights {weights})"
                )
        return value


class BlueGreenSpec(Frozen):
    """Blue-green: a new ReplicaSet stack, analysed, then the Service selector switches to it."""

    active_service: str = Field(pattern=_CONTAINER_NAME, description="Service whose selector is switched.")
    preview_service: str | None = Field(
        default=None,
        pattern=_CONTAINER_NAME,
        description="Service pointed at the new stack before promotion.",
    )
    pre_promotion_analysis: AnalysisSpec | None = Field(default=None, description="Analysis before switching.")
    auto_promote: bool = Field(default=True, description="Switch without a human once analysis passes.")
    scale_down_delay_seconds: int = Field(
        default=30, ge=0, description="Keep the old stack this long after the switch, for a fast abort."
    )
    post_promotion_analysis: AnalysisSpec | None = Field(
        default=None,
        description=(
            "Analysis after the switch, while the old stack is kept; failure (or inconclusive) switches traffic "
            "back and removes the new stack. The old stack is kept until it passes, even past the delay."
        ),
    )


class DeployRequested(EventPayload):
    """Someone (gateway, CLI, a team, the healer) asks the deployer to change or roll back a workload."""

    event_type: ClassVar[str] = "io.opsbus.deploy.requested.v1"

    cluster: str = Field(description="Target cluster (the same as the envelope's source cluster).")
    workload: WorkloadRef = Field(description="The workload to change.")
    strategy: Strategy = Field(description="rolling, recreate, blue-green, canary or rollback.")
    images: dict[str, str] = Field(
        default_factory=dict,
        description="New image per container name. Either images or manifest, except for rollback (neither).",
    )
    manifest: dict[str, Any] | None = Field(
        default=None, description="Full workload manifest to apply instead of image changes."
    )
    to_revision: int | None = Field(
        default=None,
        ge=1,
        description="Rollback only: the revision to return to; absent means the previous one.",
    )
    canary: CanarySpec | None = Field(default=None, description="Required for canary, forbidden otherwise.")
    blue_green: BlueGreenSpec | None = Field(default=None, description="Required for blue-green, forbidden otherwise.")
    analysis: AnalysisSpec | None = Field(
        default=None, description="Background analysis for the whole rollout (any strategy but recreate)."
    )
    progress_deadline_seconds: int = Field(
        default=600, ge=30, le=86_400, description="Fail when the rollout makes no progress for this long."
    )
    timeout_seconds: int | None = Field(
        default=None, ge=60, description="Hard limit for the whole request, queueing included."
    )
    requester: Actor = Field(description="Who asked.")
    reason: str | None = Field(default=None, max_length=1024, description="Why (change ticket, alert, message).")

    @field_validator("images")
    @classmethod
    def _images(cls, value: dict[str, str]) -> dict[str, str]:
        for container, image in value.items():
            if not re.match(_CONTAINER_NAME, container):
                raise ValueError(f"images: {container!r} is not a valid container name")
            if not image or any(ch.isspace() for ch in image):
                raise ValueError(f"images[{container!r}]: {image!r} is not an image reference")
        return value

    @model_validator(mode="after")
    def _strategy_rules(self) -> Self:  # noqa: PLR0912 - one readable list of rules
        errors: list[str] = []
        strategy = self.strategy
        if strategy is Strategy.ROLLBACK:
            if self.images:
                errors.append("rollback must not carry images: it returns to a previous revision")
            if self.manifest is not None:
                errors.append("rollback must not carry a manifest")
            if self.canary is not None or self.blue_green is not None:
                errors.append("rollback takes no canary or blue_green spec")
        else:
            if self.to_revision is not None:
                errors.append(f"to_revision is only allowed with strategy rollback, not {strategy.value}")
            if bool(self.images) == (self.manifest is not None):
                errors.append(f"{strategy.value} needs exactly one of images or manifest")
        if strategy is Strategy.CANARY and self.canary is None:
            errors.append("canary needs canary.steps")
        if strategy is not Strategy.CANARY and self.canary is not None:
            errors.append(f"canary spec given but strategy is {strategy.value}")
        if strategy is Strategy.BLUE_GREEN and self.blue_green is None:
            errors.append("blue-green needs blue_green.active_service")
        if strategy is not Strategy.BLUE_GREEN and self.blue_green is not None:
            errors.append(f"blue_green spec given but strategy is {strategy.value}")
        if strategy is Strategy.RECREATE and self.analysis is not None:
            errors.append("recreate has no window to analyse: use rolling, canary or blue-green")
        if self.workload.kind not in ("Deployment", "StatefulSet", "DaemonSet"):
            errors.append(f"cannot deploy a {self.workload.kind}: use Deployment, StatefulSet or DaemonSet")
        if strategy in (Strategy.CANARY, Strategy.BLUE_GREEN) and self.workload.kind != "Deployment":
            errors.append(f"{strategy.value} is only supported for Deployments")
        if self.manifest is not None:
            kind = self.manifest.get("kind")
            name = (self.manifest.get("metadata") or {}).get("name")
            if kind != self.workload.kind or name != self.workload.name:
                errors.append(f"manifest is {kind}/{name} but workload is {self.workload.kind}/{self.workload.name}")
        if errors:
            raise ValueError("; ".join(errors))
        return self


# --- the deployer's lifecycle events ----------------------------------------------------------------


class DeployPhase(StrEnum):
    QUEUED = "queued"
    PROGRESSING = "progressing"
    ANALYZING = "analyzing"
    PAUSED = "paused"
    PROMOTING = "promoting"
    SCALING_DOWN = "scaling_down"


class AnalysisOutcome(StrEnum):
    SUCCESSFUL = "successful"
    FAILED = "failed"
    INCONCLUSIVE = "inconclusive"
    RUNNING = "running"


class Measurement(Frozen):
    """One measurement of an analysis metric."""

    value: float | None = Field(default=None, description="Measured value; absent when there was no data.")
    outcome: AnalysisOutcome = Field(description="successful, failed or inconclusive (no data, provider error).")
    error: str | None = Field(default=None, max_length=1024, description="Provider error, when inconclusive.")


class AnalysisResult(Frozen):
    """The state of one analysis metric so far."""

    metric: str = Field(description="Metric name from the analysis spec.")
    outcome: AnalysisOutcome = Field(description="Outcome of the metric so far.")
    successful: int = Field(default=0, ge=0, description="Successful measurements.")
    failed: int = Field(default=0, ge=0, description="Failed measurements.")
    inconclusive: int = Field(default=0, ge=0, description="Inconclusive measurements.")
    measurements: tuple[Measurement, ...] = Field(default=(), max_length=50, description="Latest measurements.")
    message: str | None = Field(default=None, max_length=1024, description="Explanation for humans.")


class _DeployOutcome(EventPayload):
    """Fields of every deployer event (abstract: no event type)."""

    deployment_id: str = Field(min_length=1, description="The deployer's id of this rollout.")
    request_id: str = Field(min_length=1, description="Id of the `deploy.requested` event this answers.")
    workload: WorkloadRef = Field(description="The workload being rolled out.")
    strategy: Strategy = Field(description="Strategy of the request.")
    revision: int | None = Field(default=None, ge=1, description="Revision being rolled out (the new one).")


class DeployStarted(_DeployOutcome):
    """The deployer accepted the request and began the rollout."""

    event_type: ClassVar[str] = "io.opsbus.deploy.started.v1"

    previous_revision: int | None = Field(default=None, ge=1, description="Revision running before.")
    images: dict[str, str] = Field(default_factory=dict, description="Images being rolled out per container.")
    replicas: ReplicaCounts | None = Field(default=None, description="Replica counts at start.")
    steps_total: int | None = Field(default=None, ge=1, description="Number of canary steps, for canary.")


class DeployProgressed(_DeployOutcome):
    """The rollout moved: replicas updated, a canary step reached, analysis measured, a pause began."""

    event_type: ClassVar[str] = "io.opsbus.deploy.progressed.v1"

    phase: DeployPhase = Field(description="What the rollout is doing now.")
    replicas: ReplicaCounts = Field(description="Current replica counts.")
    step: int | None = Field(default=None, ge=1, description="Current canary step (1-based).")
    steps_total: int | None = Field(default=None, ge=1, description="Number of canary steps.")
    canary_weight: int | None = Field(default=None, ge=0, le=100, description="Current canary weight, percent.")
    analysis: tuple[AnalysisResult, ...] = Field(default=(), description="Analysis state so far.")
    message: str | None = Field(default=None, max_length=1024, description="What changed, for humans.")


class DeploySucceeded(_DeployOutcome):
    """Terminal: the new revision is fully rolled out and healthy."""

    event_type: ClassVar[str] = "io.opsbus.deploy.succeeded.v1"

    duration_seconds: float = Field(ge=0, description="From start to success.")
    replicas: ReplicaCounts | None = Field(default=None, description="Final replica counts.")
    analysis: tuple[AnalysisResult, ...] = Field(default=(), description="Final analysis results.")


class DeployFailureReason(StrEnum):
    PROGRESS_DEADLINE_EXCEEDED = "progress_deadline_exceeded"
    ANALYSIS_FAILED = "analysis_failed"
    ANALYSIS_INCONCLUSIVE = "analysis_inconclusive"
    TIMEOUT = "timeout"
    APPLY_FAILED = "apply_failed"
    CONFLICT = "conflict"
    INVALID_REQUEST = "invalid_request"
    NOT_FOUND = "not_found"
    REVISION_NOT_FOUND = "revision_not_found"


class DeployFailed(_DeployOutcome):
    """Terminal: the rollout failed. When `rollback_pending`, `deploy.rolledback` (or `rollback_failed`) follows."""

    event_type: ClassVar[str] = "io.opsbus.deploy.failed.v1"

    reason: DeployFailureReason = Field(description="Why it failed.")
    message: str = Field(max_length=4096, description="Details for humans (apiserver error, condition message).")
    failed_step: int | None = Field(default=None, ge=1, description="Canary step that failed.")
    analysis: tuple[AnalysisResult, ...] = Field(default=(), description="Analysis results that led here.")
    rollback_pending: bool = Field(default=False, description="An automatic rollback is under way.")
    duration_seconds: float | None = Field(default=None, ge=0, description="From start to failure.")


class DeployRolledBack(_DeployOutcome):
    """Terminal: the workload is back on `to_revision` (automatic after a failure, or a rollback request)."""

    event_type: ClassVar[str] = "io.opsbus.deploy.rolledback.v1"

    from_revision: int | None = Field(default=None, ge=1, description="Revision rolled back from.")
    to_revision: int = Field(ge=1, description="Revision now running.")
    automatic: bool = Field(description="True when the deployer rolled back after a failed rollout.")
    reason: str = Field(max_length=1024, description="Why, e.g. `analysis success-rate failed 3 of 5`.")


class DeploySuperseded(_DeployOutcome):
    """Terminal: a newer request for the same workload replaced this one before or during its rollout."""

    event_type: ClassVar[str] = "io.opsbus.deploy.superseded.v1"

    superseded_by: str = Field(min_length=1, description="Id of the newer `deploy.requested` event.")
    was_running: bool = Field(description="False when it was still queued, True when an active rollout stopped.")


class DeployAborted(_DeployOutcome):
    """Terminal: a human or a timeout aborted the rollout; traffic and replicas are back on the old stack."""

    event_type: ClassVar[str] = "io.opsbus.deploy.aborted.v1"

    aborted_by: Actor = Field(description="Who aborted.")
    reason: str = Field(max_length=1024, description="Why.")
    reverted_to_revision: int | None = Field(default=None, ge=1, description="Revision running after the abort.")


class DeploySkipped(_DeployOutcome):
    """Terminal: the request was not carried out because it arrived too late; nothing in the cluster changed."""

    event_type: ClassVar[str] = "io.opsbus.deploy.skipped.v1"

    reason: Literal["stale"] = Field(description="Why it was skipped: `stale` (older than the freshness bound).")
    age_seconds: float = Field(ge=0, description="Age of the request when the deployer received it.")
    freshness_seconds: float = Field(gt=0, description="The deployer's freshness bound for requests.")
    message: str = Field(max_length=1024, description="Details for humans.")


class DeployRollbackFailed(_DeployOutcome):
    """Terminal: the rollback (automatic, or an abort's return to the old template) missed its progress deadline.

    The workload is left as the rollback left it, possibly half on each revision: it needs a human.
    """

    event_type: ClassVar[str] = "io.opsbus.deploy.rollback_failed.v1"

    failure: DeployFailureReason | None = Field(
        default=None, description="What the rollout had failed on (absent when a human aborted it)."
    )
    to_revision: int | None = Field(default=None, ge=1, description="Revision the rollback was returning to.")
    replicas: ReplicaCounts | None = Field(default=None, description="Replica counts when it gave up.")
    message: str = Field(max_length=4096, description="Details for humans (the condition, the counts).")
