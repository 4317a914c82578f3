"""Triage at intake: what an alert's first step can be decided from the alert, the clock and the history alone.

Under a storm most alerts end the same cheap way: they join a live incident of their workload or node, they are
stale or already resolved (nothing to do), or a guard that needs no cluster read says "not now" (a freeze
window, the attempt budget or cooldown of their target, the cluster-wide rate limit). Deciding those for a
whole pull batch in one transaction, with one history read, is what keeps the intake cheap; only the alerts
left over walk the ladder one by one (a cluster snapshot, the full planner under the planning lock).

The answers are the planner's own: the same incident rule (`incidents.lead_for`) and the same guard functions
(`planning.alert_guards`, `planning.timing_guards`), so triage never decides anything the ladder would not.
Deferring before the target is read is safe: a deferral is planned again, with every guard, at its due time.
An alert whose target cannot be named or lies in a protected namespace is left to the ladder (it escalates
there, with its evidence). Pure: no I/O, no clock reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from opsbus.common.events.payloads import GuardCheck
from opsbus.healer.domain.incidents import Lead, lead_for, own_key
from opsbus.healer.domain.planning import (
    AlertState,
    Guards,
    NoOp,
    PastAttempt,
    Refusal,
    alert_guards,
    target_for,
    timing_guards,
)
from opsbus.healer.domain.policy import Policy


@dataclass(frozen=True, slots=True)
class TriageInput:
    """One argument object: it grows without breaking callers."""

    recovery_id: str
    alert: AlertState
    policy: Policy
    history: Sequence[PastAttempt]
    leads: Sequence[Lead]  # the live incidents, those opened earlier in the same batch included
    guards: Guards
    now: datetime


@dataclass(frozen=True, slots=True)
class Triage:
    """`joins`: the live incident the alert belongs to (its lead acts for it). Else the alert leads its own
    incident (`key`, None when it groups with nothing) and `decision` is its first step decided here (a no-op,
    or a deferral when `retry_after` is set), or None: the ladder walks it."""

    joins: Lead | None
    key: str | None
    decision: NoOp | None


def triage(inp: TriageInput) -> Triage:
    alert, policy, g, now = inp.alert, inp.policy, inp.guards, inp.now
    lead = lead_for(alert, policy.name, inp.leads, policy.group_window, now)
    if lead is not None:
        return Triage(joins=lead, key=lead.key, decision=None)
    key = own_key(alert)
    step = policy.ladder[0]
    target = target_for(step, alert)
    namespace = (target.namespace if target is not None else None) or alert.namespace
    if target is None or (namespace is not None and namespace in g.protected_namespaces):
        return Triage(joins=None, key=key, decision=None)
    checks: list[GuardCheck] = []
    guards = (
        *alert_guards(alert, g, now, continuing=False),
        *timing_guards(
            recovery_id=inp.recovery_id, alert=alert, policy=policy, step=step, history=inp.history, g=g, now=now
        ),
    )
    for c in guards:
        if isinstance(c, Refusal):
            failed = GuardCheck(name=c.guard, passed=False, detail=c.reason[:1024])
            noop = NoOp(inp.recovery_id, 1, c.guard, c.reason, (*checks, failed), retry_after=c.retry_after)
            return Triage(joins=None, key=key, decision=noop)
        checks.append(c)
    return Triage(joins=None, key=key, decision=None)
