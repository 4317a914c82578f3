"""RestartHistory: the restart-rate memory, per container, forgotten per pod."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from opsbus.watcher.domain.detecting import RestartHistory

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_increase_counts_restarts_within_the_window_from_the_oldest_sample() -> None:
    h = RestartHistory(window=timedelta(minutes=10))
    h.record("shop/web-1/app", 2, T0)
    h.record("shop/web-1/app", 2, T0 + timedelta(minutes=1))  # unchanged count: no new sample
    h.record("shop/web-1/app", 5, T0 + timedelta(minutes=2))
    assert h.increase("shop/web-1/app", T0 + timedelta(minutes=2)) == 3
    h.record("shop/web-1/app", 6, T0 + timedelta(minutes=13))  # the T0 sample left the window
    assert h.increase("shop/web-1/app", T0 + timedelta(minutes=13)) == 1
    assert h.increase("shop/web-1/sidecar", T0) == 0  # never seen


def test_reset_starts_afresh_for_that_container_only() -> None:
    h = RestartHistory(window=timedelta(minutes=10))
    h.record("shop/web-1/app", 1, T0)
    h.record("shop/web-1/app", 4, T0 + timedelta(seconds=30))
    h.record("shop/web-1/sidecar", 0, T0)
    h.record("shop/web-1/sidecar", 2, T0 + timedelta(seconds=30))
    h.reset("shop/web-1/app", 4, T0 + timedelta(seconds=31))
    assert h.increase("shop/web-1/app", T0 + timedelta(seconds=31)) == 0
    assert h.increase("shop/web-1/sidecar", T0 + timedelta(seconds=31)) == 2


def test_forget_pod_drops_all_its_containers_and_no_other_pod() -> None:
    h = RestartHistory(window=timedelta(minutes=10))
    for key in ("shop/web-1/app", "shop/web-1/sidecar", "shop/web-10/app", "other/web-1/app"):
        h.record(key, 0, T0)
        h.record(key, 3, T0 + timedelta(seconds=5))
    h.forget_pod("shop/web-1")
    now = T0 + timedelta(seconds=5)
    assert h.increase("shop/web-1/app", now) == 0
    assert h.increase("shop/web-1/sidecar", now) == 0
    assert h.increase("shop/web-10/app", now) == 3  # a pod whose name starts the same is kept
    assert h.increase("other/web-1/app", now) == 3  # the same name in another namespace is kept
