"""`recovery.*`: remediation plans, approvals and outcomes, from the healer (and the gateway for approvals).

A policy matched an alert and chose a step of its action ladder: `planned` says what and why (or why
nothing: dry run, guard tripped), `approved`/`rejected` answer a plan that needs a human, `started` and one of
`succeeded`/`failed` follow each action, and `escalated` hands the whole history to the notifier when the
ladder is exhausted. All of them carry `recovery_id`, so one incident reads as one story.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar, Self

from pydantic import AwareDatetime, Field, model_validator

from opsbus.common.events.envelope import EventPayload
from opsbus.common.events.payloads.common import Actor, Frozen, ResourceRef

ParameterValue = str | int | float | bool


class ActionKind(StrEnum):
    DELETE_POD = "delete_pod"
    ROLLOUT_RESTART = "rollout_restart"
    ROLLBACK = "rollback"
    SCALE = "scale"
    RAISE_MEMORY_LIMIT = "raise_memory_limit"
    CORDON_NODE = "cordon_node"
    DRAIN_NODE = "drain_node"
    DELETE_FAILED_PODS = "delete_failed_pods"
    NOTIFY_ONLY = "notify_only"


class PolicyRef(Frozen):
    """The remediation policy (and its version) that made the decision."""

    name: str = Field(min_length=1, max_length=253, description="Policy name.")
    version: int = Field(ge=1, description="Policy version, incremented on every change.")


class RecoveryAction(Frozen):
    """One concrete action on one target."""

    kind: ActionKind = Field(description="What to do.")
    target: ResourceRef = Field(description="The object acted on (pod, workload or node).")
    parameters: dict[str, ParameterValue] = Field(
        default_factory=dict,
        description="Action parameters, e.g. `replicas` for scale, `factor` and `ceiling_bytes` for "
        "raise_memory_limit, `grace_period_seconds` for delete_pod.",
    )
    disruptive: bool = Field(default=False, description="Whether it can take capacity away (drain, delete).")


class _RecoveryStep(EventPayload):
    """Fields of every event about one step of a recovery (abstract: no event type)."""

    recovery_id: str = Field(min_length=1, description="Id of this recovery (one per alert and policy).")
    alert_fingerprint: str = Field(description="Fingerprint of the alert being remediated.")
    alertname: str = Field(description="Name of that alert.")
    policy: PolicyRef = Field(description="Policy that chose the action.")
    step: int = Field(ge=1, description="Step of the action ladder (1-based).")
    steps_total: int = Field(ge=1, description="Number of steps in the ladder.")
    action: RecoveryAction = Field(description="The action of this step.")
    dry_run: bool = Field(default=False, description="True when the action is only simulated.")

    @model_validator(mode="after")
    def _step_in_ladder(self) -> Self:
        if self.step > self.steps_total:
            raise ValueError(f"step {self.step} is beyond the ladder's {self.steps_total} steps")
        return self


class GuardCheck(Frozen):
    """A safety guard evaluated before acting (cooldown, budget, rate limit, blast radius, freeze, ...)."""

    name: str = Field(description="Guard, e.g. `cooldown`, `blast_radius`, `protected_namespace`, `freeze_window`.")
    passed: bool = Field(description="Whether the guard allowed the action.")
    detail: str | None = Field(default=None, max_length=1024, description="What it measured, e.g. `2/3 attempts`.")


class ApprovalRequest(Frozen):
    """A disruptive action waiting for a human."""

    reason: str = Field(description="Why approval is needed, e.g. `drain_node requires approval by policy`.")
    expires_at: AwareDatetime = Field(description="After this the plan lapses and is not executed.")


class VerificationSpec(Frozen):
    """How the healer checks that a step worked."""

    check: str = Field(description="What is checked, e.g. `alert resolved`, `pod Ready`, `rollout complete`.")
    timeout_seconds: int = Field(ge=1, description="How long to wait for the check before the step fails.")


class VerificationResult(Frozen):
    """The outcome of a step's verification."""

    passed: bool = Field(description="Whether the check passed within its timeout.")
    check: str = Field(description="What was checked.")
    observed: str | None = Field(default=None, max_length=1024, description="What was seen, e.g. `3/3 pods Ready`.")
    waited_seconds: float = Field(ge=0, description="Time spent verifying.")


class RecoveryPlanned(_RecoveryStep):
    """The healer decided on a step. With `approval`, nothing happens until `recovery.approved`."""

    event_type: ClassVar[str] = "io.opsbus.recovery.planned.v1"

    reason: str = Field(max_length=1024, description="Why this action, in words (policy match, evidence).")
    guards: tuple[GuardCheck, ...] = Field(default=(), description="Safety guards evaluated, all passed.")
    approval: ApprovalRequest | None = Field(default=None, description="Present when a human must approve.")
    verification: VerificationSpec | None = Field(default=None, description="How success will be checked.")


class RecoveryApproved(EventPayload):
    """A human approved a planned recovery step (published by the gateway)."""

    event_type: ClassVar[str] = "io.opsbus.recovery.approved.v1"

    recovery_id: str = Field(min_length=1, description="The recovery approved.")
    step: int = Field(ge=1, description="The step approved.")
    approver: Actor = Field(description="Who approved.")
    reason: str | None = Field(default=None, max_length=1024, description="Approver's comment.")
    expires_at: AwareDatetime = Field(description="The approval is void if execution has not begun by then.")


class RecoveryRejected(EventPayload):
    """A human rejected a planned step, or its approval expired (approver is then the healer)."""

    event_type: ClassVar[str] = "io.opsbus.recovery.rejected.v1"

    recovery_id: str = Field(min_length=1, description="The recovery rejected.")
    step: int = Field(ge=1, description="The step rejected.")
    approver: Actor = Field(description="Who rejected (the healer service when the request expired).")
    reason: str = Field(min_length=1, max_length=1024, description="Why, e.g. `expired without approval`.")
    expired: bool = Field(default=False, description="True when nobody answered before expires_at.")


class RecoveryStarted(_RecoveryStep):
    """The healer began executing a step."""

    event_type: ClassVar[str] = "io.opsbus.recovery.started.v1"

    attempt: int = Field(default=1, ge=1, description="Attempt number for this target within the budget window.")
    approved_by: Actor | None = Field(default=None, description="Approver, when the step needed approval.")


class RecoverySucceeded(_RecoveryStep):
    """Terminal for the recovery: the step's action was applied and verified."""

    event_type: ClassVar[str] = "io.opsbus.recovery.succeeded.v1"

    verification: VerificationResult | None = Field(
        default=None, description="How success was verified; absent for notify_only and dry runs."
    )
    duration_seconds: float = Field(ge=0, description="From start to verified.")


class RecoveryFailed(_RecoveryStep):
    """The step failed (apply error or verification timeout). `next_step` tells whether the ladder goes on."""

    event_type: ClassVar[str] = "io.opsbus.recovery.failed.v1"

    reason: str = Field(max_length=1024, description="What went wrong.")
    error: str | None = Field(default=None, max_length=4096, description="Underlying error, e.g. apiserver status.")
    verification: VerificationResult | None = Field(
        default=None, description="Failed verification, if it got that far."
    )
    next_step: int | None = Field(default=None, ge=2, description="Next ladder step; absent when escalating.")


class AttemptOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    REJECTED = "rejected"
    DRY_RUN = "dry_run"


class AttemptRecord(Frozen):
    """One past step of a recovery, for the escalation history."""

    step: int = Field(ge=1, description="Ladder step.")
    action: ActionKind = Field(description="Action tried.")
    target: ResourceRef = Field(description="Object acted on.")
    outcome: AttemptOutcome = Field(description="How it ended.")
    started_at: AwareDatetime = Field(description="When it began.")
    finished_at: AwareDatetime | None = Field(default=None, description="When it ended.")
    message: str | None = Field(default=None, max_length=1024, description="Reason or error.")


class RecoveryEscalated(EventPayload):
    """Terminal: the ladder is exhausted (or a guard forbids acting); humans take over, with the history."""

    event_type: ClassVar[str] = "io.opsbus.recovery.escalated.v1"

    recovery_id: str = Field(min_length=1, description="The recovery escalated.")
    alert_fingerprint: str = Field(description="Fingerprint of the alert still firing.")
    alertname: str = Field(description="Name of that alert.")
    policy: PolicyRef | None = Field(default=None, description="Policy whose ladder ran; absent when none matched.")
    reason: str = Field(max_length=1024, description="Why, e.g. `ladder exhausted after 3 steps`.")
    history: tuple[AttemptRecord, ...] = Field(default=(), description="Every step tried, oldest first.")
