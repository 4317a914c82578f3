"""The alert book (fire once, confirmation bound, deletion, deterministic ids, restore), the relist diff, and the
engine end to end on plain data with an injected clock and an in-memory sender. Flapping: test_lifecycle.py."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry

from opsbus.common.events import Envelope
from opsbus.common.events.payloads.alert import AlertFired, AlertResolved
from opsbus.common.events.payloads.cluster import ChangeType, ClusterEvent
from opsbus.watcher.domain.alerting import AlertBook, Fire, Resolve, fired_id, fired_payload
from opsbus.watcher.domain.cache import Cache, diff
from opsbus.watcher.domain.lifecycle import Policy
from opsbus.watcher.domain.objects import POD, key_of
from opsbus.watcher.executing import Engine
from opsbus.watcher.settings import WatcherOptions

from . import shapes as s

NOW = datetime(2025, 3, 14, 9, 27, 0, tzinfo=UTC)
CRASH = s.pod(ready=False, containers=[s.waiting("CrashLoopBackOff", "back-off", 5, s.terminated("Error", 1))])


# --- relist diff --------------------------------------------------------------------------------------------


def test_relist_diff_synthesizes_each_missed_transition_once() -> None:
    a, b, c = s.pod("a", uid="ua", rv="1"), s.pod("b", uid="ub", rv="1"), s.pod("c", uid="uc", rv="1")
    b2 = s.pod("b", uid="ub", rv="2")
    c_new = s.pod("c", uid="uc2", rv="3")  # deleted and recreated under the same name while we were away
    d = s.pod("d", uid="ud", rv="4")
    before = {key_of(o): o for o in (a, b, c)}
    after = {key_of(o): o for o in (a, b2, c_new, d)}
    changes = [(ch.type, ch.key) for ch in diff("Pod", before, after)]
    assert sorted(changes) == sorted(
        [
            (ChangeType.DELETED, "payments/c"),
            (ChangeType.MODIFIED, "payments/b"),
            (ChangeType.ADDED, "payments/c"),
            (ChangeType.ADDED, "payments/d"),
        ]
    )
    assert diff("Pod", after, after) == []


def test_cache_apply_ignores_replays_and_replace_is_scoped() -> None:
    cache = Cache()
    p = s.pod("a", rv="1")
    assert cache.apply("Pod", "ADDED", p) is not None
    assert cache.apply("Pod", "ADDED", p) is None  # a reconnect replaying the same version
    assert cache.apply("Pod", "MODIFIED", s.pod("a", rv="2")).type == ChangeType.MODIFIED  # type: ignore[union-attr]
    cache.apply("Pod", "ADDED", s.pod("z", ns="other", uid="uz"))
    changes = cache.replace("Pod", {}, scope="payments")
    assert [(c.type, c.key) for c in changes] == [(ChangeType.DELETED, "payments/a")]
    assert cache.get("Pod", "other/z") is not None
    assert cache.apply("Pod", "DELETED", s.pod("a")) is None  # already gone


# --- the book -----------------------------------------------------------------------------------------------


def _finding() -> Any:
    from opsbus.watcher.domain.detecting import Context, RestartHistory, detect  # noqa: PLC0415
    from opsbus.watcher.domain.rules import Thresholds  # noqa: PLC0415

    ctx = Context(cluster="prod", cache=Cache(), thresholds=Thresholds(), restarts=RestartHistory(timedelta(1)))
    (f,) = detect("Pod", CRASH, ctx, NOW)
    return f


def book_of(confirm: float, threshold: int = 1) -> AlertBook:
    policy = Policy(
        confirm=timedelta(seconds=confirm),
        window=timedelta(seconds=600),
        threshold=threshold,
        stable=timedelta(seconds=120),
    )
    return AlertBook(lambda _: policy)


def test_fires_once_resolves_after_the_confirmation_bound_and_survives_a_blip() -> None:
    f = _finding()
    book = book_of(30)
    present = {f.fingerprint: (f, "Pod/payments/x")}
    (fire,) = book.evaluate(present, [], NOW)
    assert isinstance(fire, Fire)
    book.fired(fire, fired_payload(f, fire.starts_at), NOW)
    for i in range(1, 5):
        assert book.evaluate(present, [], NOW + timedelta(seconds=i)) == []  # still firing: no second fire
    assert book.evaluate({}, [], NOW + timedelta(seconds=10)) == []  # condition gone: confirmation starts
    assert book.evaluate(present, [], NOW + timedelta(seconds=20)) == []  # back within it: no flap
    assert book.evaluate({}, [], NOW + timedelta(seconds=30)) == []
    assert book.evaluate({}, [], NOW + timedelta(seconds=59)) == []
    (resolve,) = book.evaluate({}, [], NOW + timedelta(seconds=60))
    assert isinstance(resolve, Resolve)
    assert resolve.resolution == "condition cleared"
    assert resolve.ends_at == NOW + timedelta(seconds=30)  # when it cleared, not when the confirmation ended
    book.resolved(resolve, NOW + timedelta(seconds=60))
    assert book.firing == {}


def test_object_deleted_resolves_at_once() -> None:
    f = _finding()
    book = book_of(300)
    (fire,) = book.evaluate({f.fingerprint: (f, "Pod/payments/x")}, [], NOW)
    assert isinstance(fire, Fire)
    book.fired(fire, fired_payload(f, fire.starts_at), NOW)
    (resolve,) = book.evaluate({}, ["Pod/payments/x"], NOW + timedelta(seconds=1))
    assert isinstance(resolve, Resolve) and resolve.resolution == "object deleted"


def test_ids_are_deterministic_so_two_replicas_publish_the_same_event() -> None:
    f = _finding()
    one, two = book_of(1), book_of(1)
    (a,) = one.evaluate({f.fingerprint: (f, "k")}, [], NOW)
    (b,) = two.evaluate({f.fingerprint: (f, "k")}, [], NOW + timedelta(seconds=3))  # saw it later
    assert isinstance(a, Fire) and isinstance(b, Fire)
    assert a.event_id == b.event_id == fired_id(f.fingerprint, f.since)


def test_restored_alert_does_not_fire_again_and_resolves_if_gone() -> None:
    f = _finding()
    book = book_of(5)
    payload = fired_payload(f, f.since)
    book.restore([(payload, "id-1", "Pod/payments/x")], NOW)
    assert book.evaluate({f.fingerprint: (f, "Pod/payments/x")}, [], NOW) == []
    book.evaluate({}, [], NOW + timedelta(seconds=1))
    (resolve,) = book.evaluate({}, [], NOW + timedelta(seconds=6))
    assert isinstance(resolve, Resolve) and resolve.alert.target.name == "x"


# --- the engine on plain data -------------------------------------------------------------------------------


class Sent:
    def __init__(self) -> None:
        self.events: list[Envelope] = []

    async def send(self, event: Envelope) -> asyncio.Future[Any]:
        self.events.append(event)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut

    def of(self, verb: str) -> list[Envelope]:
        return [e for e in self.events if e.type.endswith(f".{verb}.v1") and e.family == "alert"]


class NoLogs:
    async def pod_log(
        self, namespace: str, pod: str, container: str, *, previous: bool, lines: int, timeout: float
    ) -> list[str] | None:
        return None


async def test_engine_fires_with_evidence_once_then_resolves_and_audits() -> None:
    clock = [NOW]
    sent = Sent()
    opts = WatcherOptions.model_validate({"thresholds": {"resolve_after_seconds": 5}})
    engine = Engine(
        cluster="prod", options=opts, sender=sent, logs=NoLogs(), registry=CollectorRegistry(), clock=lambda: clock[0]
    )
    engine.synced = True
    from opsbus.watcher.domain.objects import EVENT  # noqa: PLC0415

    ev = s.k8s_event("checkout.17", "checkout-7d9f8b6c5-x2x4q")
    await engine.on_change(EVENT, engine.cache.apply("Event", "ADDED", ev), False)  # type: ignore[arg-type]
    healthy = s.pod(rv="1")
    await engine.on_change(POD, engine.cache.apply("Pod", "ADDED", healthy), False)  # type: ignore[arg-type]
    assert await engine.evaluate() == []
    crash = {**CRASH, "metadata": {**CRASH["metadata"], "resourceVersion": "2"}}
    await engine.on_change(POD, engine.cache.apply("Pod", "MODIFIED", crash), False)  # type: ignore[arg-type]
    await engine.evaluate()
    clock[0] += timedelta(seconds=1)
    await engine.evaluate()
    (fired,) = sent.of("fired")
    alert = fired.payload_as(AlertFired)
    assert alert.alertname == "KubePodCrashLooping"
    assert [e.reason for e in alert.evidence.events] == ["BackOff"]
    assert alert.annotations.extra["logs"].startswith("unavailable")
    cluster_events = [e.payload_as(ClusterEvent) for e in sent.events if e.family == "cluster"]
    assert [c.change for c in cluster_events] == [ChangeType.ADDED, ChangeType.ADDED, ChangeType.MODIFIED]
    audits = [e for e in sent.events if e.family == "audit"]
    assert [a.data["action"] for a in audits] == ["alert.fire"]

    await engine.on_change(POD, engine.cache.apply("Pod", "MODIFIED", s.pod(rv="3")), False)  # type: ignore[arg-type]
    clock[0] += timedelta(seconds=1)
    await engine.evaluate()
    clock[0] += timedelta(seconds=5)
    await engine.evaluate()
    (resolved,) = sent.of("resolved")
    assert resolved.payload_as(AlertResolved).fingerprint == alert.fingerprint
    assert len(sent.of("fired")) == 1
    assert [a.data["action"] for a in sent.events if a.family == "audit"] == ["alert.fire", "alert.resolve"]
