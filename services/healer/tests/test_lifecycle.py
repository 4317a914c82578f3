"""The recovery lifecycle: every transition of the table walked, every other move refused, and the scheduler's
choice for a deferred recovery driven by an injected clock (no sleeps).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from opsbus.healer.domain.lifecycle import (
    LIVE,
    RESUMABLE,
    TABLE,
    TERMINAL,
    Deferred,
    IllegalTransition,
    State,
    Transition,
    apply,
    may,
    on_wake,
    target,
)

T0 = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


def walk(clock: Clock, *moves: tuple[Transition, str]) -> list[State]:
    """Drive one recovery from open through `moves`, a second of the clock apart; the states visited."""
    state = State.OPEN
    seen = [state]
    for transition, reason in moves:
        record = apply("r-1", state, transition, reason, clock.advance(1))
        assert (record.from_state, record.transition, record.reason, record.at) == (state, transition, reason, clock())
        state = record.to_state
        seen.append(state)
    return seen


@pytest.mark.parametrize(("state", "transition"), sorted(TABLE), ids=str)
def test_every_transition_in_the_table_is_allowed_and_recorded(state: State, transition: Transition) -> None:
    clock = Clock()
    record = apply("r-9", state, transition, "because", clock())
    assert record.to_state is TABLE[(state, transition)] is target(state, transition)
    assert (record.recovery_id, record.from_state, record.reason, record.at) == ("r-9", state, "because", T0)
    assert may(state, transition)


@pytest.mark.parametrize(
    ("state", "transition"),
    [(s, t) for s in State for t in Transition if (s, t) not in TABLE],
    ids=str,
)
def test_every_other_move_raises(state: State, transition: Transition) -> None:
    assert not may(state, transition)
    with pytest.raises(IllegalTransition, match=f"cannot {transition.value} a recovery that is {state.value}"):
        apply("r-1", state, transition, "no", T0)


def test_terminal_states_have_no_way_out_so_an_escalation_happens_once() -> None:
    assert {State.RESOLVED, State.ESCALATED, State.CLOSED} == TERMINAL
    for s in TERMINAL:
        assert not any(may(s, t) for t in Transition)
    with pytest.raises(IllegalTransition):
        apply("r-1", State.ESCALATED, Transition.OVERDUE, "again", T0)
    assert all(may(s, Transition.GIVE_UP) for s in LIVE)
    assert RESUMABLE <= LIVE and State.DEFERRED not in RESUMABLE  # the scheduler, not the sweep, wakes those


def test_every_state_is_reachable_from_open_and_every_live_state_can_end() -> None:
    reachable = {State.OPEN}
    while True:
        more = {to for (frm, _), to in TABLE.items() if frm in reachable} - reachable
        if not more:
            break
        reachable |= more
    assert reachable == set(State)
    for s in LIVE:
        assert any(to in TERMINAL for (frm, _), to in TABLE.items() if frm == s)


def test_a_ladder_that_fails_twice_then_succeeds() -> None:
    clock = Clock()
    assert walk(
        clock,
        (Transition.PLAN, "policy crashloop"),
        (Transition.APPLY, "delete_pod applied"),
        (Transition.NEXT_STEP, "alert still firing"),
        (Transition.APPLY, "rollout_restart applied"),
        (Transition.NEXT_STEP, "alert still firing"),
        (Transition.APPLY, "rollback requested"),
        (Transition.VERIFY, "deploy rolledback"),
    ) == [State.OPEN, State.ACTING, State.VERIFYING, State.ACTING, State.VERIFYING, State.ACTING, State.VERIFYING,
          State.RESOLVED]  # fmt: skip
    assert clock() == T0 + timedelta(seconds=7)


def test_deferred_by_cooldown_then_due_then_exhausted_escalates() -> None:
    clock = Clock()
    states = walk(
        clock,
        (Transition.DEFER, "cooldown: Deployment/demo/web remediated 5s ago"),
        (Transition.DUE, "cooldown over"),
        (Transition.APPLY, "rollout_restart applied"),
        (Transition.EXHAUST, "ladder exhausted after 1 steps"),
    )
    assert states[-1] is State.ESCALATED and State.DEFERRED in states


def test_approval_asked_then_approved_or_rejected() -> None:
    approved = walk(Clock(), (Transition.PLAN, "p"), (Transition.ASK, "drain"), (Transition.APPROVE, "ok"))
    assert approved[-1] is State.ACTING
    rejected = walk(Clock(), (Transition.ASK, "drain"), (Transition.REJECT, "expired without approval"))
    assert rejected[-1] is State.CLOSED


def test_the_scheduler_wakes_a_deferral_by_the_clock() -> None:
    clock = Clock()
    d = Deferred(due_at=T0 + timedelta(seconds=30), act_by=T0 + timedelta(minutes=5), firing=True)
    assert on_wake(d, clock()) is None  # not yet
    assert on_wake(d, clock.advance(29.9)) is None
    assert on_wake(d, clock.advance(0.1)) is Transition.DUE  # due, still firing: plan again
    assert on_wake(Deferred(d.due_at, d.act_by, firing=False), clock()) is Transition.CLEAR  # resolved: no action
    late = Deferred(due_at=T0 + timedelta(minutes=10), act_by=T0 + timedelta(minutes=5), firing=True)
    assert on_wake(late, clock.advance(4 * 60)) is None
    assert on_wake(late, clock.advance(30)) is Transition.OVERDUE  # the bound came before the due time
    assert on_wake(Deferred(d.due_at, None, firing=True), T0 + timedelta(days=1)) is Transition.DUE
    # a resolved alert is cleared even past the bound: nothing is left to escalate
    assert on_wake(Deferred(late.due_at, late.act_by, firing=False), clock.advance(3600)) is Transition.CLEAR
