"""The routed-alert lifecycle: the transition table walked exhaustively, and the outcome of each alert at a flush."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from opsbus.notifier.domain.config import parse_config
from opsbus.notifier.domain.grouping import Group, flush, ingest
from opsbus.notifier.domain.notices import Notice
from opsbus.notifier.domain.outcomes import (
    OPEN,
    TRANSITIONS,
    Change,
    IllegalTransitionError,
    State,
    Transition,
    advance,
    flush_changes,
    sources,
    target,
)

ROUTE = parse_config(
    "route: {receiver: r, group_by: [alertname], group_wait: 10s, group_interval: 1m}\nreceivers: [{name: r}]"
).root
T0 = datetime(2025, 6, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def notice(fp: str, status: str) -> Notice:
    return Notice.model_validate(
        {
            "fingerprint": fp,
            "status": status,
            "labels": {"alertname": "KubePodOOMKilled"},
            "title": fp,
            "event_id": f"ev-{fp}-{status}",
            "event_type": "io.opsbus.alert.fired.v1",
            "subject": "Pod/shop/cart-0",
            "starts_at": T0,
        }
    )


EXPECTED = {
    (State.ROUTED, Transition.QUEUE): State.QUEUED,
    (State.ROUTED, Transition.MUTE): State.MUTED,
    (State.ROUTED, Transition.SKIP): State.NOT_SENT,
    (State.ROUTED, Transition.SUPERSEDE): State.NOT_SENT,
    (State.MUTED, Transition.QUEUE): State.QUEUED,
    (State.QUEUED, Transition.DELIVER): State.DELIVERED,
    (State.QUEUED, Transition.DEAD_LETTER): State.DEAD,
}


@pytest.mark.parametrize(("state", "transition"), list(itertools.product(State, Transition)))
def test_every_state_and_transition_pair_is_either_in_the_table_or_illegal(
    state: State, transition: Transition
) -> None:
    if (state, transition) in EXPECTED:
        assert advance(state, transition) is EXPECTED[(state, transition)]
        assert state in sources(transition)
        assert target(transition) is EXPECTED[(state, transition)]
    else:
        with pytest.raises(IllegalTransitionError):
            advance(state, transition)
        assert state not in sources(transition)


def test_the_table_is_the_documented_one_and_terminal_states_have_no_way_out() -> None:
    assert dict(TRANSITIONS) == EXPECTED
    for final in (State.DELIVERED, State.DEAD, State.NOT_SENT):
        assert not [t for (s, t) in TRANSITIONS if s is final]
    assert frozenset({State.ROUTED, State.QUEUED}) == OPEN
    reachable = {State.ROUTED}
    for _ in State:
        reachable |= {to for (s, _t), to in TRANSITIONS.items() if s in reachable}
    assert reachable == set(State)  # no dead entry in the enum


def group_of(*notices_: tuple[float, str, str]) -> Group:
    group: Group | None = None
    for seconds, fp, status in notices_:
        plan = ingest(group, ROUTE, notice(fp, status), at(seconds), epoch="e1")
        group = plan.group or group
    assert group is not None
    return group


def test_a_told_alert_is_queued_for_the_integrations_with_a_row_and_skipped_for_the_others() -> None:
    group = group_of((0, "a", "firing"))
    plan = flush(group, group.next_flush_at)
    assert plan.notification is not None
    changes = flush_changes(group.alerts, plan, ["webhook/0"])
    assert changes == [
        Change(Transition.QUEUE, ("ev-a-firing",), ("webhook/0",), "first notification", plan.notification.id),
        Change(Transition.SKIP, ("ev-a-firing",), None, "the integration took no row of the notification"),
    ]


def test_a_resolved_notification_skipped_by_a_send_resolved_false_integration_is_deliberately_not_sent() -> None:
    group = group_of((0, "a", "firing"))
    first = flush(group, group.next_flush_at)
    assert first.group is not None
    resolved = ingest(first.group, ROUTE, notice("a", "resolved"), at(60), epoch="unused").group
    assert resolved is not None
    plan = flush(resolved, resolved.next_flush_at)
    assert plan.notification is not None and plan.notification.status == "resolved"
    changes = flush_changes(resolved.alerts, plan, [])
    assert changes == [
        Change(Transition.SKIP, ("ev-a-resolved",), None, "the integration does not take resolved notifications")
    ]


def test_muted_and_untold_alerts_get_their_reason() -> None:
    group = group_of((0, "a", "firing"), (1, "b", "firing"))
    plan = flush(group, group.next_flush_at, muted={"b": "silenced by s1"})
    assert plan.notification is not None
    changes = flush_changes(group.alerts, plan, ["webhook/0"])
    assert Change(Transition.MUTE, ("ev-b-firing",), None, "silenced by s1") in changes
    assert [c.transition for c in changes if "ev-a-firing" in c.event_ids] == [Transition.QUEUE, Transition.SKIP]


def test_fired_and_resolved_before_the_first_flush_is_not_sent_with_the_reason() -> None:
    group = group_of((0, "a", "firing"), (1, "a", "resolved"))
    plan = flush(group, group.next_flush_at + timedelta(seconds=1))
    assert plan.notification is None
    [change] = flush_changes(group.alerts, plan, [])
    assert change.transition is Transition.SKIP and change.event_ids == ("ev-a-resolved",)
    assert change.reason.startswith("not told: ")
