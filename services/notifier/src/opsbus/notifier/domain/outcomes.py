"""The lifecycle of one routed alert towards one integration, so that no notification can vanish unseen.

Issue 29 was a silent loss: an alert reached its group and no message ever left, with no trace. The invariant
this module makes checkable: every event routed to a receiver ends, per integration of that receiver, in a
terminal or accounted state, each reached by a named transition with a reason:

    routed --queue------> queued --deliver-----> delivered
    routed --mute-------> muted  --queue-------> queued      (the silence ended and the alert was told)
    routed --skip-------> not_sent               (deliberately: send_resolved false, fired and resolved before
    routed --supersede--> not_sent                the first flush, nothing new to tell, no integration ...)
    queued --dead_letter> dead

`routed` and `queued` are open: a row that stays open past its due time plus a bound is what the notifier's
housekeeping check counts (`opsbus_notifier_unaccounted_alerts`). The executor applies a transition with
`UPDATE ... WHERE state IN sources(transition)`, so a transition from any other state is a no-op in SQL
and an `IllegalTransitionError` here. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from opsbus.common.errors import PermanentError
from opsbus.notifier.domain.grouping import FlushPlan
from opsbus.notifier.domain.notices import Notice


class State(StrEnum):
    ROUTED = "routed"
    QUEUED = "queued"
    DELIVERED = "delivered"
    DEAD = "dead"
    MUTED = "muted"
    NOT_SENT = "not_sent"


class Transition(StrEnum):
    QUEUE = "queue"
    MUTE = "mute"
    SKIP = "skip"
    SUPERSEDE = "supersede"
    DELIVER = "deliver"
    DEAD_LETTER = "dead_letter"


TRANSITIONS: Mapping[tuple[State, Transition], State] = {
    (State.ROUTED, Transition.QUEUE): State.QUEUED,
    (State.ROUTED, Transition.MUTE): State.MUTED,
    (State.ROUTED, Transition.SKIP): State.NOT_SENT,
    (State.ROUTED, Transition.SUPERSEDE): State.NOT_SENT,
    (State.MUTED, Transition.QUEUE): State.QUEUED,
    (State.QUEUED, Transition.DELIVER): State.DELIVERED,
    (State.QUEUED, Transition.DEAD_LETTER): State.DEAD,
}

#: states that still owe an outcome; a row in one of them past its due time (plus the bound) is unaccounted
OPEN: frozenset[State] = frozenset({State.ROUTED, State.QUEUED})

#: the integration name of a receiver with none: the alert is recorded as deliberately not sent
NO_INTEGRATION = "-"


class IllegalTransitionError(PermanentError):
    """A transition asked of a state that has no such transition (a bug in the caller)."""


def advance(state: State, transition: Transition) -> State:
    try:
        return TRANSITIONS[(state, transition)]
    except KeyError:
        raise IllegalTransitionError(f"no transition {transition} from {state}") from None


def sources(transition: Transition) -> frozenset[State]:
    """The states `transition` applies to (the executor's `WHERE state IN (...)`)."""
    return frozenset(s for s, t in TRANSITIONS if t == transition)


def target(transition: Transition) -> State:
    [state] = {to for (_, t), to in TRANSITIONS.items() if t == transition}
    return state


@dataclass(frozen=True, slots=True)
class Change:
    """Apply `transition` to the group's rows of `event_ids` for `integrations` (None: whichever integrations
    still have a row in a source state). Changes are applied in order."""

    transition: Transition
    event_ids: tuple[str, ...]
    integrations: tuple[str, ...] | None
    reason: str
    notification_id: str | None = None


def flush_changes(alerts: Mapping[str, Notice], plan: FlushPlan, queued: Iterable[str]) -> list[Change]:
    """The outcome of every alert of a group at a flush, per integration.

    `alerts` are the group's alerts before the flush; `queued` the integrations that now hold a row of the
    plan's notification (inserted, or an exact replay already there). An alert in the notification is queued
    for those and deliberately not sent to the others (send_resolved false, or an integration that is no longer
    configured); an alert left out is muted (with the reason) or not sent (with the planner's reason)."""
    with_row = tuple(sorted(set(queued)))
    n = plan.notification
    told = {a.event_id for a in n.alerts} if n is not None else set()
    muted = {fp: why for fp, why in plan.muted.items() if fp in alerts}
    changes = [Change(Transition.MUTE, (alerts[fp].event_id,), None, why) for fp, why in sorted(muted.items())]
    in_notification = tuple(sorted(a.event_id for fp, a in alerts.items() if a.event_id in told and fp not in muted))
    if n is not None and in_notification:
        if with_row:
            changes.append(Change(Transition.QUEUE, in_notification, with_row, plan.reason, n.id))
        why = (
            "the integration does not take resolved notifications"
            if n.status == "resolved"
            else "the integration took no row of the notification"
        )
        changes.append(Change(Transition.SKIP, in_notification, None, why))
    rest = tuple(sorted(a.event_id for fp, a in alerts.items() if a.event_id not in told and fp not in muted))
    if rest:
        changes.append(Change(Transition.SKIP, rest, None, f"not told: {plan.reason}"))
    return changes


def superseded_reason(newer: Notice) -> str:
    return f"superseded by event {newer.event_id} ({newer.status}) before it was told"
