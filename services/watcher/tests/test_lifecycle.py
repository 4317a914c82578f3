"""The alert lifecycle: every transition of the table walked, every other pair refused; then the book driven by an
injected clock through fast resolution, flapping (announced once, damped, resolved after the stable period), the
flap window, per-rule policies, withdrawal, deletion, restore and two replicas; and the engine publishing it."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from itertools import product

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from opsbus.common.events.payloads.alert import AlertFired, AlertResolved
from opsbus.watcher.domain.alerting import AlertBook, Damp, Decision, Fire, Resolve, fired_payload
from opsbus.watcher.domain.detecting import Finding
from opsbus.watcher.domain.lifecycle import (
    TRANSITIONS,
    IllegalTransition,
    Lifecycle,
    Phase,
    Policy,
    Trigger,
    step,
)
from opsbus.watcher.domain.objects import POD
from opsbus.watcher.domain.rules import Resolution
from opsbus.watcher.executing import Engine
from opsbus.watcher.settings import WatcherOptions

from . import shapes as s
from .test_alerting import CRASH, NOW, NoLogs, Sent, _finding

POLICY = Policy(confirm=timedelta(seconds=2), window=timedelta(seconds=600), threshold=1, stable=timedelta(seconds=60))
KEY = "Pod/payments/checkout-7d9f8b6c5-x2x4q"


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


# --- the table ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("source", "trigger"), list(TRANSITIONS))
def test_every_transition_of_the_table_is_recorded_with_its_reason(source: Phase | None, trigger: Trigger) -> None:
    life = Lifecycle(phase=source)
    after = step(life, trigger, at(1), f"because {trigger}")
    assert after.phase == TRANSITIONS[(source, trigger)]
    (record,) = after.history
    assert (record.source, record.target, record.trigger, record.at) == (source, after.phase, trigger, at(1))
    assert record.reason == f"because {trigger}"


ILLEGAL = [(p, t) for p, t in product([None, *Phase], Trigger) if (p, t) not in TRANSITIONS]


@pytest.mark.parametrize(("source", "trigger"), ILLEGAL)
def test_every_other_pair_is_illegal(source: Phase | None, trigger: Trigger) -> None:
    with pytest.raises(IllegalTransition, match=str(trigger)):
        step(Lifecycle(phase=source), trigger, at(1), "no such transition")


def test_a_transition_without_a_reason_is_refused_and_every_phase_is_reachable() -> None:
    with pytest.raises(IllegalTransition, match="needs a reason"):
        step(Lifecycle(), Trigger.DETECTED, at(0), "")
    assert set(TRANSITIONS.values()) == set(Phase)
    assert len(ILLEGAL) + len(TRANSITIONS) == (len(Phase) + 1) * len(Trigger)


def test_history_is_bounded_to_the_newest_transitions() -> None:
    life = step(Lifecycle(), Trigger.DETECTED, at(0), "detected")
    life = step(life, Trigger.FLAP_PUBLISHED, at(0), "published")
    for i in range(50):
        life = step(life, Trigger.CLEARED if i % 2 == 0 else Trigger.RETURNED, at(i), f"flap {i}")
    assert len(life.history) == 32
    assert life.history[-1].reason == "flap 49"


# --- the book on an injected clock ---------------------------------------------------------------------------


class Clocked:
    """A book and a fault whose every return is dated anew by the object (as a Ready transition would be)."""

    def __init__(self, policy: Policy = POLICY, finding: Finding | None = None) -> None:
        self.book = AlertBook(lambda _: policy)
        self.finding = finding or _finding()
        self.fp = self.finding.fingerprint
        self.fired: list[AlertFired] = []
        self.resolved: list[Resolve] = []
        self.damped: list[Damp] = []

    def tick(self, seconds: float, *, present: bool, since: float | None = None, deleted: bool = False) -> None:
        """Evaluate at NOW+seconds and publish whatever is decided (as the engine does)."""
        finding = self.finding if since is None else dataclasses.replace(self.finding, since=at(since))
        if present:
            self.finding = finding
        decisions = self.book.evaluate(
            {self.fp: (finding, KEY)} if present else {}, [KEY] if deleted else [], at(seconds)
        )
        self.publish(decisions, at(seconds))

    def publish(self, decisions: list[Decision], now: datetime) -> None:
        for d in decisions:
            if isinstance(d, Fire):
                payload = fired_payload(d.finding, d.starts_at, flapping=d.flapping)
                self.book.fired(d, payload, now)
                self.fired.append(payload)
            elif isinstance(d, Resolve):
                self.book.resolved(d, now)
                self.resolved.append(d)
            else:
                self.damped.append(d)

    def phase(self) -> Phase | None:
        return self.book.phase(self.fp)

    def reasons(self) -> list[str]:
        return [t.reason for t in self.book.alerts[self.fp].life.history]


def test_a_stable_recovery_resolves_after_the_confirmation_bound_not_on_one_healthy_sample() -> None:
    c = Clocked()
    c.tick(0, present=True)
    assert c.phase() == Phase.FIRING and len(c.fired) == 1
    c.tick(1, present=False)
    assert c.phase() == Phase.RESOLVING and c.resolved == []  # one healthy sample: not yet
    c.tick(2, present=True)  # back within the bound: still the same alert, no event
    assert c.phase() == Phase.FIRING and len(c.fired) == 1 and c.resolved == []
    c.tick(3, present=False)
    c.tick(4, present=False)
    assert c.resolved == []
    c.tick(5, present=False)
    (resolve,) = c.resolved
    assert resolve.resolution == "condition cleared" and resolve.ends_at == at(3)
    assert c.phase() == Phase.RESOLVED and c.book.firing == {}
    assert [t.target for t in c.book.alerts[c.fp].life.history] == [
        Phase.PENDING,
        Phase.FIRING,
        Phase.RESOLVING,
        Phase.FIRING,
        Phase.RESOLVING,
        Phase.RESOLVED,
    ]


def flap(c: Clocked, cycles: int, start: float, period: float = 10) -> float:
    """The fault comes back and goes away `cycles` times, each return dated by the object."""
    t = start
    for _ in range(cycles):
        c.tick(t, present=True, since=t)
        c.tick(t + period / 2, present=False)
        c.tick(t + period / 2 + 3, present=False)  # past the confirmation bound
        t += period
    return t


def test_a_flapping_alert_is_announced_once_damped_and_resolves_after_the_stable_period() -> None:
    c = Clocked()
    t = flap(c, 1, 0)  # an ordinary fire and resolve: nothing says yet that it flaps
    assert len(c.fired) == 1 and len(c.resolved) == 1
    t = flap(c, 6, t)  # six more cycles within the window
    assert len(c.fired) == 2 and len(c.resolved) == 1  # one announcement, then nothing
    announcement = c.fired[1]
    assert announcement.fingerprint == c.fired[0].fingerprint  # the same alert for the notifier
    assert announcement.labels["flapping"] == "true" and announcement.annotations.summary.startswith("Flapping: ")
    assert "fired 2 times within 600s: flapping" in announcement.annotations.extra["flapping"]
    assert [d.flap for d in c.damped] == [1, 2, 3, 4, 5]
    assert c.phase() == Phase.FLAPPING and c.fp in c.book.firing

    c.tick(t + 54, present=False)  # absent since t-5: 59 s of calm, not yet stable
    assert len(c.resolved) == 1
    c.tick(t + 55, present=False)
    final = c.resolved[-1]
    assert final.ends_at == at(t - 5)
    assert final.resolution.startswith("condition cleared and stable for 60s after flapping (5 damped flaps)")
    assert final.alert.fired.labels["flapping"] == "true"
    assert c.phase() == Phase.RESOLVED
    assert "flap 5 damped: condition back, the stable period starts over" in c.reasons()


def test_a_flap_during_the_stable_period_starts_it_over() -> None:
    c = Clocked()
    t = flap(c, 2, 0)
    assert c.phase() == Phase.FLAPPING
    c.tick(t + 50, present=True, since=t + 50)  # back before 60 s of calm
    c.tick(t + 51, present=False)
    c.tick(t + 110, present=False)
    assert len(c.resolved) == 1  # 59 s of calm only
    c.tick(t + 111, present=False)
    assert len(c.resolved) == 2 and len(c.fired) == 2


def test_a_re_fire_after_the_window_is_an_ordinary_alert_and_the_record_is_dropped() -> None:
    c = Clocked()
    flap(c, 1, 0)
    c.tick(700, present=False)  # the fire at 0 is more than 600 s old: nothing left to count
    assert c.fp not in c.book.alerts
    c.tick(800, present=True, since=800)
    assert len(c.fired) == 2 and "flapping" not in c.fired[1].labels and c.phase() == Phase.FIRING


def test_the_threshold_counts_re_fires_within_the_window_and_zero_turns_it_off() -> None:
    two = Clocked(dataclasses.replace(POLICY, threshold=2))
    flap(two, 3, 0)
    assert ["flapping" in f.labels for f in two.fired] == [False, False, True]
    off = Clocked(dataclasses.replace(POLICY, threshold=0))
    flap(off, 4, 0)
    assert len(off.fired) == len(off.resolved) == 4 and off.damped == []


def test_a_flapping_alert_whose_object_is_deleted_resolves_at_once() -> None:
    c = Clocked()
    t = flap(c, 2, 0)
    c.tick(t, present=True, since=t)
    c.tick(t + 0.5, present=False, deleted=True)
    assert c.resolved[-1].resolution == "object deleted" and c.resolved[-1].ends_at == at(t + 0.5)
    assert c.fp not in c.book.alerts  # gone: no later fire can count against it


def test_deleted_and_recreated_in_one_evaluation_resolves_the_old_alert_then_fires_anew() -> None:
    c = Clocked()
    c.tick(0, present=True)
    c.tick(1, present=True, since=1, deleted=True)  # a StatefulSet pod: same name, same fault
    assert [r.resolution for r in c.resolved] == ["object deleted"]
    c.tick(2, present=True, since=1)
    assert len(c.fired) == 2 and "flapping" not in c.fired[1].labels


def test_a_fire_not_recorded_as_published_is_decided_again_or_withdrawn() -> None:
    book = AlertBook(lambda _: POLICY)
    f = _finding()
    (fire,) = book.evaluate({f.fingerprint: (f, KEY)}, [], at(0))
    assert book.phase(f.fingerprint) == Phase.PENDING
    assert book.evaluate({f.fingerprint: (f, KEY)}, [], at(1)) == [fire]  # publish failed: the same fire again
    assert book.evaluate({}, [], at(2)) == []  # gone before it was published: nothing to resolve
    assert f.fingerprint not in book.alerts
    (again,) = book.evaluate({f.fingerprint: (f, KEY)}, [], at(3))
    assert book.evaluate({}, [KEY], at(4)) == [] and f.fingerprint not in book.alerts
    assert isinstance(again, Fire)


def test_a_restored_flapping_alert_stays_damped() -> None:
    c = Clocked()
    flap(c, 2, 0)
    restarted = Clocked()
    restarted.book.restore([(c.fired[-1], "id-2", KEY)], at(30))
    assert restarted.phase() == Phase.FLAPPING
    for replica in (c, restarted):  # the replica that kept running and the restarted one see the same
        replica.tick(31, present=False)
        replica.tick(40, present=True, since=40)
        replica.tick(41, present=False)
        replica.tick(101, present=False)
    assert restarted.fired == [] and len(restarted.damped) == 1
    (final,) = restarted.resolved
    assert final.resolution.startswith("condition cleared and stable")
    assert final.event_id == c.resolved[-1].event_id and len(c.resolved) == 2


def test_two_replicas_seeing_the_same_flaps_publish_the_same_ids() -> None:
    one, two = Clocked(), Clocked()
    flap(one, 4, 0)
    t = 0.0
    for _ in range(4):  # the other replica sees every change 0.4 s later
        two.tick(t + 0.4, present=True, since=t)
        two.tick(t + 5.4, present=False)
        two.tick(t + 8.4, present=False)
        t += 10
    one.tick(t + 60, present=False)
    two.tick(t + 60.4, present=False)
    assert [f.labels.get("flapping") for f in one.fired] == [f.labels.get("flapping") for f in two.fired]
    assert [f.starts_at for f in one.fired] == [f.starts_at for f in two.fired]
    assert [r.event_id for r in one.resolved] == [r.event_id for r in two.resolved]
    assert len(one.resolved) == 2


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["present", "absent", "deleted", "wait"]), max_size=60))
def test_any_sequence_of_observations_keeps_the_lifecycle_legal_and_the_events_paired(script: list[str]) -> None:
    c = Clocked()
    t = 0.0
    for i, what in enumerate(script):
        t += 30.0 if what == "wait" else 1.0
        c.tick(t, present=what == "present", since=float(i) if what == "present" else None, deleted=what == "deleted")
    starts = [f.starts_at for f in c.fired]
    assert [r.alert.fired.starts_at for r in c.resolved] == starts[: len(c.resolved)]  # each resolve after its fire
    assert len(c.fired) - len(c.resolved) in (0, 1)
    assert (len(c.fired) - len(c.resolved) == 1) == (c.fp in c.book.firing)


# --- per-rule policy -------------------------------------------------------------------------------------------


def test_per_rule_overrides_fall_back_to_the_defaults() -> None:
    resolution = Resolution.model_validate(
        {"flap_stable_seconds": 90, "rules": {"KubeNodeNotReady": {"flap_threshold": 3, "resolve_after_seconds": 10}}}
    )
    table = resolution.policies(2.0)
    assert table("KubePodCrashLooping") == Policy(
        confirm=timedelta(seconds=2), window=timedelta(seconds=600), threshold=1, stable=timedelta(seconds=90)
    )
    assert table("KubeNodeNotReady") == Policy(
        confirm=timedelta(seconds=10), window=timedelta(seconds=600), threshold=3, stable=timedelta(seconds=90)
    )
    defaults = WatcherOptions()
    assert defaults.thresholds.resolve_after_seconds == 2.0
    assert (defaults.resolution.flap_window_seconds, defaults.resolution.flap_threshold) == (600.0, 1)


# --- the engine ------------------------------------------------------------------------------------------------


async def test_engine_publishes_one_announcement_per_flap_episode_and_audits_the_damped_flaps() -> None:
    clock = [NOW]
    sent = Sent()
    opts = WatcherOptions.model_validate({"resolution": {"flap_stable_seconds": 30}})
    registry = CollectorRegistry()
    engine = Engine(cluster="prod", options=opts, sender=sent, logs=NoLogs(), registry=registry, clock=lambda: clock[0])
    engine.synced = True
    rv = 1

    async def set_pod(crashing: bool) -> None:
        nonlocal rv
        rv += 1
        since = clock[0].isoformat()
        obj = CRASH if crashing else s.pod()
        ready = [{"type": "Ready", "status": "False" if crashing else "True", "lastTransitionTime": since}]
        obj = {**obj, "metadata": {**obj["metadata"], "resourceVersion": str(rv)}}
        obj = {**obj, "status": {**obj["status"], "conditions": ready}}
        await engine.on_change(POD, engine.cache.apply("Pod", "MODIFIED", obj), False)  # type: ignore[arg-type]

    async def advance(seconds: float) -> None:
        for _ in range(int(seconds)):
            clock[0] += timedelta(seconds=1)
            await engine.evaluate()

    await engine.on_change(POD, engine.cache.apply("Pod", "ADDED", s.pod(rv="1")), False)  # type: ignore[arg-type]
    for _ in range(6):  # six cycles of the fault on and off, 10 s each
        await set_pod(True)
        await advance(5)
        await set_pod(False)
        await advance(5)
    fired = [e.payload_as(AlertFired) for e in sent.of("fired")]
    assert [f.labels.get("flapping") for f in fired] == [None, "true"]
    assert len(sent.of("resolved")) == 1
    await advance(31)
    resolved = [e.payload_as(AlertResolved) for e in sent.of("resolved")]
    assert len(resolved) == 2 and "after flapping (4 damped flaps)" in (resolved[-1].resolution or "")
    audits = [e.data["action"] for e in sent.events if e.family == "audit"]
    assert audits.count("alert.damp") == 4
    assert audits.count("alert.fire") == 2 and audits.count("alert.resolve") == 2
    labels = {"alertname": "KubePodCrashLooping"}
    assert registry.get_sample_value("opsbus_watcher_flaps_damped_total", labels) == 4
    assert registry.get_sample_value("opsbus_watcher_flapping_alerts_total", labels) == 1
