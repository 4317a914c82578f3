"""The lifecycle of a recovery (the healer's incident): named states, named transitions, one table.

A recovery is opened by an alert, acts on its ladder's steps, verifies each, and ends resolved, escalated
to humans, or closed without action (for a reason: the alert resolved, a dry run, a rejection, nothing to
act on). A guard that says "not now" (cooldown, attempt budget, rate limit, blast-radius cap, freeze
window) parks it in `deferred` with a due time, and the scheduler re-plans it then: a deferral is never a
drop. An incident that could not be acted on within its policy's bound is escalated, exactly once: the
escalated state is terminal, so a second escalation is an illegal transition.

Alerts of one workload (or of one node) that fire within a window are one incident: the first recovery leads
it and acts; the others `join` it and wait in `deferred` without a due time and without a bound of their own.
When the lead ends, they end with it (escalated with it, once, in its announcement) or are woken (closed if
their alert resolved, else planned again): no alert of the incident is forgotten.

Pure: no I/O and no clock reads; `now` is an argument. The executor stores the state and every
`TransitionRecord` (with its reason) in the same transaction as the events announcing it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class State(StrEnum):
    OPEN = "open"  # an alert matched a policy; nothing planned yet
    ACTING = "acting"  # planning a step, or applying it
    VERIFYING = "verifying"  # a step was applied; waiting for its check within its timeout
    DEFERRED = "deferred"  # a guard said "not now": re-planned at its due time if the alert still fires
    AWAITING_APPROVAL = "awaiting_approval"  # a disruptive step waits for a person
    RESOLVED = "resolved"  # a step's verification passed
    ESCALATED = "escalated"  # humans take over (recovery.escalated with the whole history)
    CLOSED = "closed"  # ended without acting, for a recorded reason


class Transition(StrEnum):
    PLAN = "plan"  # open -> acting: the walk begins
    APPLY = "apply"  # acting -> verifying: the step's write is done
    VERIFY = "verify"  # verifying -> resolved
    NEXT_STEP = "next_step"  # verifying -> acting: the step failed, the ladder goes on
    EXHAUST = "exhaust"  # verifying -> escalated: the last step failed
    DEFER = "defer"  # open/acting -> deferred
    DUE = "due"  # deferred -> acting: the due time came and the alert still fires
    OVERDUE = "overdue"  # deferred -> escalated: not acted on within the policy's bound
    ASK = "ask"  # open/acting -> awaiting_approval
    APPROVE = "approve"  # awaiting_approval -> acting
    REJECT = "reject"  # awaiting_approval -> closed (rejected, or the request expired)
    REFUSE = "refuse"  # open/acting -> escalated: a guard forbids acting and humans must look
    SKIP = "skip"  # open/acting -> closed: nothing to do (alert resolved, target gone, dry run)
    CLEAR = "clear"  # deferred -> closed: the alert resolved while deferred, no action
    GIVE_UP = "give_up"  # any live state -> escalated: a permanent error stops the walk
    JOIN = "join"  # open/acting -> deferred: the alert joins a live incident of its workload or node (no own action)
    PASS = "pass"  # noqa: S105 - not a secret. acting -> acting: the step does not apply (a pod step in a workload-wide incident, a rollback
    #               when no change preceded the fault): the ladder goes on to the next step


TERMINAL = frozenset({State.RESOLVED, State.ESCALATED, State.CLOSED})
LIVE = frozenset(State) - TERMINAL
# The states a replica must drive on its own (no event will come): resumed by the orphan sweep.
RESUMABLE = frozenset({State.OPEN, State.ACTING, State.VERIFYING})

TABLE: dict[tuple[State, Transition], State] = {
    (State.OPEN, Transition.PLAN): State.ACTING,
    (State.ACTING, Transition.APPLY): State.VERIFYING,
    (State.VERIFYING, Transition.VERIFY): State.RESOLVED,
    (State.VERIFYING, Transition.NEXT_STEP): State.ACTING,
    (State.VERIFYING, Transition.EXHAUST): State.ESCALATED,
    (State.ACTING, Transition.EXHAUST): State.ESCALATED,  # the last step did not apply: humans look
    (State.ACTING, Transition.PASS): State.ACTING,
    (State.OPEN, Transition.JOIN): State.DEFERRED,
    (State.ACTING, Transition.JOIN): State.DEFERRED,
    (State.OPEN, Transition.DEFER): State.DEFERRED,
    (State.ACTING, Transition.DEFER): State.DEFERRED,
    (State.DEFERRED, Transition.DUE): State.ACTING,
    (State.DEFERRED, Transition.OVERDUE): State.ESCALATED,
    (State.DEFERRED, Transition.CLEAR): State.CLOSED,
    (State.OPEN, Transition.ASK): State.AWAITING_APPROVAL,
    (State.ACTING, Transition.ASK): State.AWAITING_APPROVAL,
    (State.AWAITING_APPROVAL, Transition.APPROVE): State.ACTING,
    (State.AWAITING_APPROVAL, Transition.REJECT): State.CLOSED,
    (State.OPEN, Transition.REFUSE): State.ESCALATED,
    (State.ACTING, Transition.REFUSE): State.ESCALATED,
    (State.OPEN, Transition.SKIP): State.CLOSED,
    (State.ACTING, Transition.SKIP): State.CLOSED,
    **{(s, Transition.GIVE_UP): State.ESCALATED for s in LIVE},
}


class IllegalTransition(ValueError):
    """A transition the table does not allow from the current state (e.g. a second escalation)."""

    def __init__(self, state: State, transition: Transition) -> None:
        super().__init__(f"cannot {transition.value} a recovery that is {state.value}")
        self.state = state
        self.transition = transition


@dataclass(frozen=True, slots=True)
class TransitionRecord:
    """One step of the lifecycle, as stored and audited: from, by what, to, why, when."""

    recovery_id: str
    from_state: State
    transition: Transition
    to_state: State
    reason: str
    at: datetime


def target(state: State, transition: Transition) -> State:
    """The state `transition` leads to from `state`; `IllegalTransition` when the table has no such move."""
    try:
        return TABLE[(state, transition)]
    except KeyError:
        raise IllegalTransition(state, transition) from None


def apply(recovery_id: str, state: State, transition: Transition, reason: str, now: datetime) -> TransitionRecord:
    """Move a recovery: the record to store (raises `IllegalTransition` before anything is written)."""
    return TransitionRecord(recovery_id, state, transition, target(state, transition), reason[:2048], now)


def may(state: State, transition: Transition) -> bool:
    return (state, transition) in TABLE


@dataclass(frozen=True, slots=True)
class Deferred:
    """A deferred recovery as the scheduler sees it when its time may have come."""

    due_at: datetime
    act_by: datetime | None  # the policy's bound: escalate when still deferred past it
    firing: bool


def on_wake(d: Deferred, now: datetime) -> Transition | None:
    """What the scheduler does with a deferred recovery at `now`: clear it when its alert resolved, escalate
    it when it could not be acted on within its bound, re-plan it when it is due, else nothing yet."""
    if not d.firing:
        return Transition.CLEAR
    if d.act_by is not None and now >= d.act_by:
        return Transition.OVERDUE
    if now >= d.due_at:
        return Transition.DUE
    return None
