"""The lifecycle of one alert (one fingerprint): an explicit state machine, so that "resolve fast" and "never flood
while a fault comes and goes" are rules one can read, test exhaustively and reason about.

Phases (`Phase`):

- PENDING: the condition is present and a fire is decided; left when the fire's publish is recorded.
- FIRING: published as firing, the condition present.
- RESOLVING: the condition is absent (or its object deleted); resolved once it stayed absent for the rule's
  confirmation bound (`Policy.confirm`, a couple of seconds: one healthy sample does not resolve), at once for a
  deleted object. The condition coming back within the bound returns to FIRING without any event.
- FLAPPING: the alert fired again `Policy.threshold` times within `Policy.window` of earlier fires. The fire that
  enters this phase is the one announcement (labelled `flapping="true"`, with the reason); the phase is then damped:
  the condition comes and goes without any event, and the alert resolves only once it stayed absent for
  `Policy.stable`.
- RESOLVED: published as resolved. The record is kept while a fire of it is within the window, to count re-fires;
  then (or when its object is deleted) the record is dropped, which ends it.

Every change of phase goes through `step`, which consults `TRANSITIONS`, raises `IllegalTransition` for a pair not in
the table and records the transition with its trigger, reason and time. Time is never read here: every call gets
`at`, from the caller's injected clock. What must never happen here: I/O, or a transition outside the table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from opsbus.common.errors import OpsbusError

HISTORY = 32  # transitions kept per alert (the newest)


class Phase(StrEnum):
    PENDING = "pending"
    FIRING = "firing"
    RESOLVING = "resolving"
    FLAPPING = "flapping"
    RESOLVED = "resolved"


class Trigger(StrEnum):
    DETECTED = "detected"  # the condition is present and no published alert covers it
    FIRE_PUBLISHED = "fire_published"  # the fire decided in PENDING was published
    FLAP_PUBLISHED = "flap_published"  # ... and it announced flapping
    CLEARED = "cleared"  # the condition is no longer present
    RETURNED = "returned"  # the condition is present again before the alert resolved
    DELETED = "deleted"  # the object the alert is about was deleted
    RESOLVE_PUBLISHED = "resolve_published"  # the resolve decided in RESOLVING / FLAPPING was published


#: (phase or None for "no record yet", trigger) -> next phase. Anything else is illegal.
TRANSITIONS: Mapping[tuple[Phase | None, Trigger], Phase] = {
    (None, Trigger.DETECTED): Phase.PENDING,
    (Phase.RESOLVED, Trigger.DETECTED): Phase.PENDING,  # fires again: a new alert, or a flap
    (Phase.PENDING, Trigger.FIRE_PUBLISHED): Phase.FIRING,
    (Phase.PENDING, Trigger.FLAP_PUBLISHED): Phase.FLAPPING,
    (Phase.PENDING, Trigger.CLEARED): Phase.RESOLVED,  # withdrawn before its fire was published: nothing to resolve
    (Phase.PENDING, Trigger.DELETED): Phase.RESOLVED,
    (Phase.FIRING, Trigger.CLEARED): Phase.RESOLVING,
    (Phase.FIRING, Trigger.DELETED): Phase.RESOLVING,
    (Phase.RESOLVING, Trigger.RETURNED): Phase.FIRING,  # back within the confirmation bound: no event
    (Phase.RESOLVING, Trigger.DELETED): Phase.RESOLVING,
    (Phase.RESOLVING, Trigger.RESOLVE_PUBLISHED): Phase.RESOLVED,
    (Phase.FLAPPING, Trigger.CLEARED): Phase.FLAPPING,  # damped: the stable period starts
    (Phase.FLAPPING, Trigger.RETURNED): Phase.FLAPPING,  # damped: one more flap, the stable period starts over
    (Phase.FLAPPING, Trigger.DELETED): Phase.RESOLVING,  # nothing left to flap: resolves at once
    (Phase.FLAPPING, Trigger.RESOLVE_PUBLISHED): Phase.RESOLVED,  # stable for the whole period
}


class IllegalTransition(OpsbusError):
    """A trigger the alert's phase has no transition for: a bug in the caller, never a run-time condition."""


@dataclass(frozen=True)
class Policy:
    """How one rule (alertname) resolves and damps; see `rules.Resolution` for the settings and defaults."""

    confirm: timedelta  # absent this long before a firing alert resolves
    window: timedelta  # fires within this span of each other count as re-fires
    threshold: int  # re-fires within the window that make it flapping; 0: never flapping
    stable: timedelta  # absent this long before a flapping alert resolves


@dataclass(frozen=True)
class Transition:
    source: Phase | None
    target: Phase
    trigger: Trigger
    reason: str
    at: datetime


@dataclass(frozen=True)
class Lifecycle:
    """One fingerprint's lifecycle. Immutable: `step` returns the next one."""

    phase: Phase | None = None
    fires: tuple[datetime, ...] = ()  # startsAt of each published fire still within the window, oldest first
    absent_since: datetime | None = None  # RESOLVING / FLAPPING: when the condition was last seen to go away
    gone: bool = False  # its object was deleted
    flaps: int = 0  # damped flaps of the current FLAPPING episode
    history: tuple[Transition, ...] = field(default_factory=tuple)


def step(life: Lifecycle, trigger: Trigger, at: datetime, reason: str, **changes: object) -> Lifecycle:
    """The lifecycle after `trigger` at `at`, with `changes` applied to its data. Raises `IllegalTransition`."""
    if not reason:
        raise IllegalTransition(f"{trigger} from {life.phase}: a transition needs a reason")
    target = TRANSITIONS.get((life.phase, trigger))
    if target is None:
        raise IllegalTransition(f"no transition from {life.phase or 'no record'} on {trigger} ({reason})")
    record = Transition(source=life.phase, target=target, trigger=trigger, reason=reason, at=at)
    return replace(life, **changes, phase=target, history=(*life.history, record)[-HISTORY:])  # type: ignore[arg-type]


def refires(life: Lifecycle, starts_at: datetime, window: timedelta) -> int:
    """How many earlier fires lie within `window` before a fire at `starts_at` (it counts as that many re-fires).
    Counted on startsAt, which comes from the object, so replicas with the same history count the same."""
    return sum(1 for t in life.fires if starts_at - window <= t <= starts_at)


def resolution_due(life: Lifecycle, policy: Policy, now: datetime) -> str | None:
    """Why the published alert resolves now, or None while it must not."""
    if life.phase not in (Phase.RESOLVING, Phase.FLAPPING):
        return None
    if life.gone:
        return "object deleted"
    if life.absent_since is None:
        return None
    absent = now - life.absent_since
    if life.phase == Phase.RESOLVING and absent >= policy.confirm:
        return "condition cleared"
    if life.phase == Phase.FLAPPING and absent >= policy.stable:
        return (
            f"condition cleared and stable for {policy.stable.total_seconds():.0f}s "
            f"after flapping ({life.flaps} damped flaps)"
        )
    return None


def forgettable(life: Lifecycle, policy: Policy, now: datetime) -> bool:
    """A RESOLVED record no later fire could count against: drop it."""
    if life.phase != Phase.RESOLVED:
        return False
    return life.gone or not life.fires or now - life.fires[-1] > policy.window
