""" "What would this policy have done": an edited policy document replayed against past alerts.

The console's policy editor asks, before a save, what the edited ladder would have done for the last incidents
of its scope. This module answers with the planner itself (`planning.plan`), so the preview can never disagree
with the healer about matching, `when` conditions, protected namespaces, freeze windows, dry runs or approvals.

What it replays is the alert, not the cluster of that day: the target is taken to exist, with no earlier
attempts on it (no cooldown or budget), no disrupted pods and no rollout history (so `when: changed` steps and
rollbacks find no change to act on, and say so). Those facts are not kept per incident; the preview reports its
assumptions rather than guess them. Pure: no I/O, no clock (`now` is each alert's own time).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from opsbus.healer.domain.planning import (
    AlertState,
    Guards,
    IncidentFacts,
    NoOp,
    Pass,
    Plan,
    PlanningInput,
    Snapshot,
    plan,
    target_for,
)
from opsbus.healer.domain.policy import AlertFacts, PolicySet

ASSUMPTIONS = (
    "the alert is replayed at the time it fired; the target is taken to exist",
    "no earlier attempts on the target (cooldown and attempt budget pass)",
    "no rollout history is known: steps with `when: changed` pass and rollbacks find no revision",
)


@dataclass(frozen=True, slots=True)
class PastAlert:
    """One past incident's first alert, as the gateway's read model kept it."""

    incident_id: str
    alert: AlertState


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one policy document decides for one alert: the matched policy and the first step that is not
    passed (its plan, or the guard that refused it), with the steps passed before it."""

    policy: str | None
    step: int | None
    action: str | None
    decision: str  # no_policy | planned | dry_run | approval | refused | passed
    guard: str | None
    reason: str
    passed: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PreviewRow:
    incident_id: str
    edited: Outcome
    current: Outcome

    @property
    def changed(self) -> bool:
        e, c = self.edited, self.current
        return (e.policy, e.step, e.action, e.decision) != (c.policy, c.step, c.action, c.decision)


def outcome(policies: PolicySet, alert: AlertState, guards: Guards) -> Outcome:
    facts = AlertFacts(alert.alertname, alert.severity, alert.labels, alert.namespace)
    policy = policies.match(facts)
    if policy is None:
        return Outcome(None, None, None, "no_policy", None, "no policy matches this alert: nothing would be done")
    passed: list[str] = []
    for number, step in enumerate(policy.ladder, start=1):
        target = target_for(step, alert)
        snapshot = Snapshot(target=target) if target is not None else None
        decision = plan(
            PlanningInput(
                recovery_id="preview",
                alert=alert,
                policy=policy,
                policy_version=policies.version,
                step=number,
                snapshot=snapshot,
                history=(),
                guards=guards,
                now=alert.event_time,
                incident=IncidentFacts(first_alert_at=alert.event_time),
            )
        )
        if isinstance(decision, Pass):
            passed.append(f"{number}. {step.action.value}: {decision.reason}")
            continue
        if isinstance(decision, NoOp):
            return Outcome(
                policy.name, number, step.action.value, "refused", decision.guard, decision.reason, tuple(passed)
            )
        return Outcome(policy.name, number, step.action.value, _kind(decision), None, decision.reason, tuple(passed))
    return Outcome(
        policy.name, None, None, "passed", None, "every step of the ladder was passed: escalated", tuple(passed)
    )


def _kind(decision: Plan) -> str:
    if decision.dry_run:
        return "dry_run"
    return "approval" if decision.approval is not None else "planned"


def preview(edited: PolicySet, current: PolicySet, alerts: Sequence[PastAlert], guards: Guards) -> list[PreviewRow]:
    """For each past alert, what the edited document and the one in force would each have done."""
    return [
        PreviewRow(a.incident_id, outcome(edited, a.alert, guards), outcome(current, a.alert, guards)) for a in alerts
    ]
