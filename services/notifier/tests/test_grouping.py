"""Grouping timing and dedup, table-driven against Alertmanager's documented behaviour, with an injected clock.

The #322 confusion pinned: group_wait delays only a *new* group's first notification; an alert joining an
existing group waits for the next group_interval tick; repeat_interval is checked only at those ticks.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from opsbus.notifier.domain.config import parse_config
from opsbus.notifier.domain.grouping import FlushPlan, Group, flush, group_key, ingest, notification_id
from opsbus.notifier.domain.notices import Notice

CONFIG = parse_config(
    """
route:
  receiver: r
  group_by: [alertname, namespace]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 12m
receivers: [{name: r}]
"""
)
ROUTE = CONFIG.root

T0 = datetime(2025, 3, 14, 9, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def notice(fp: str, status: str = "firing", *, ephemeral: bool = False, **labels: str) -> Notice:
    base = {"alertname": "KubePodCrashLooping", "cluster": "prod", "namespace": "payments", "event_type": "alert"}
    return Notice(
        fingerprint=fp,
        status=status,
        ephemeral=ephemeral,
        labels={**base, **labels},
        title=f"alert {fp}",
        event_id=f"ev-{fp}-{status}",
        event_type="io.opsbus.alert.fired.v1",
        subject="Pod/payments/checkout-1",
        starts_at=T0,
    )


class Sim:
    """Drives one group through events and flushes, the way the executor does, recording what was sent."""

    def __init__(self) -> None:
        self.group: Group | None = None
        self.epochs = 0
        self.sent: list[tuple[float, str, list[str]]] = []
        self.plans: list[FlushPlan] = []

    def event(self, seconds: float, n: Notice) -> None:
        self.epochs += 1
        plan = ingest(self.group, ROUTE, n, at(seconds), epoch=f"epoch-{self.epochs}")
        if plan.group is not None:
            self.group = plan.group

    def run_until(self, seconds: float, muted: dict[str, str] | None = None) -> None:
        while self.group is not None and self.group.next_flush_at <= at(seconds):
            when = self.group.next_flush_at
            plan = flush(self.group, when, muted=muted)
            self.plans.append(plan)
            if plan.notification is not None:
                offset = (when - at(0)).total_seconds()
                self.sent.append((offset, plan.notification.status, [a.fingerprint for a in plan.notification.alerts]))
            self.group = plan.group


def test_first_notification_after_group_wait_collects_siblings() -> None:
    sim = Sim()
    sim.event(0, notice("a1"))
    sim.event(10, notice("a2"))
    sim.run_until(29)
    assert sim.sent == []
    sim.run_until(30)
    assert sim.sent == [(30, "firing", ["a1", "a2"])]


def test_alert_joining_an_existing_group_waits_for_group_interval_not_group_wait() -> None:
    sim = Sim()
    sim.event(0, notice("a1"))
    sim.run_until(30)
    sim.event(40, notice("a2"))
    sim.run_until(40 + 30)  # group_wait after it joined: nothing, that is not how it works
    assert len(sim.sent) == 1
    sim.run_until(330)  # first flush at 30 + group_interval 300
    assert sim.sent[-1:] == [(330, "firing", ["a1", "a2"])]


def test_resolved_before_group_wait_is_never_sent() -> None:
    sim = Sim()
    sim.event(0, notice("a1"))
    sim.event(5, notice("a1", "resolved"))
    sim.run_until(3600)
    assert sim.sent == []
    assert sim.group is None  # the group is gone


def test_repeat_interval_is_rounded_up_to_group_interval_ticks() -> None:
    sim = Sim()
    sim.event(0, notice("a1"))
    sim.run_until(3000)
    times = [t for t, _, _ in sim.sent]
    # sent at 30; ticks at 330, 630, 930 ...; 12m repeat is due at 750 -> first tick after it is 930
    assert times[:3] == [30, 930, 1830]


def test_resolution_is_told_at_the_next_tick_and_the_group_ends() -> None:
    sim = Sim()
    sim.event(0, notice("a1"))
    sim.event(0, notice("a2"))
    sim.run_until(30)
    sim.event(100, notice("a1", "resolved"))
    sim.run_until(330)
    assert sim.sent[-1:] == [(330, "firing", ["a2", "a1"])]  # still firing: a1 reported resolved alongside
    sim.event(400, notice("a2", "resolved"))
    sim.run_until(630)
    assert sim.sent[-1:] == [(630, "resolved", ["a2"])]
    assert sim.group is None


def test_muted_alert_is_not_sent_until_the_mute_ends() -> None:
    sim = Sim()
    sim.event(0, notice("a1"))
    sim.run_until(30, muted={"a1": "silenced by s1"})
    assert sim.sent == []
    assert sim.plans[-1].muted == {"a1": "silenced by s1"}
    sim.run_until(330)
    assert sim.sent == [(330, "firing", ["a1"])]


def test_ephemeral_notices_are_told_once() -> None:
    sim = Sim()
    sim.event(0, notice("e1", ephemeral=True))
    sim.run_until(10_000)
    assert sim.sent == [(30, "firing", ["e1"])]
    assert sim.group is None


def test_group_key_and_notification_id_are_deterministic() -> None:
    key, labels = group_key(ROUTE, {"alertname": "X", "namespace": "n", "pod": "p"})
    assert key == '0:{"alertname":"X","namespace":"n"}'
    assert labels == {"alertname": "X", "namespace": "n"}
    assert notification_id(key, "e1", 1) == notification_id(key, "e1", 1) != notification_id(key, "e1", 2)
    assert notification_id(key, "e1", 1) != notification_id(key, "e2", 1)


def test_a_redelivered_flush_produces_the_same_notification() -> None:
    sim = Sim()
    sim.event(0, notice("a1"))
    assert sim.group is not None
    when: datetime = sim.group.next_flush_at
    first, second = flush(sim.group, when), flush(sim.group, when + timedelta(seconds=1))
    assert first.notification is not None and second.notification is not None
    assert first.notification.id == second.notification.id
