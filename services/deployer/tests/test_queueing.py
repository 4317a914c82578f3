"""One active rollout per workload; the newest queued request wins (keptn#9507)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from opsbus.deployer.domain.queueing import Queued, admit, next_to_start

T0 = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_first_request_is_queued_and_starts() -> None:
    a = Queued("a", at(0))
    assert admit([], a).enqueue
    assert next_to_start([a]) == "a"


def test_three_in_a_row_the_middle_one_is_superseded() -> None:
    running = Queued("a", at(0), running=True)
    b = Queued("b", at(1))
    first = admit([running], b)
    assert first.enqueue and first.supersede == ()  # the running rollout is never superseded
    c = Queued("c", at(2))
    second = admit([running, b], c)
    assert second.enqueue
    assert second.supersede == ("b",)
    assert next_to_start([running, c]) is None  # one active rollout per workload
    assert next_to_start([c]) == "c"


def test_an_older_request_arriving_late_is_superseded_at_once() -> None:
    newer = Queued("new", at(10))
    late = admit([newer], Queued("old", at(5)))
    assert not late.enqueue
    assert late.superseded_by == "new"
    assert late.supersede == ()


def test_several_queued_are_all_superseded_and_the_newest_starts() -> None:
    queued = [Queued("b", at(1)), Queued("c", at(2))]
    d = admit(queued, Queued("d", at(3)))
    assert set(d.supersede) == {"b", "c"}
    assert next_to_start([Queued("b", at(1)), Queued("d", at(3))]) == "d"


def test_same_time_is_ordered_by_id_so_replicas_agree() -> None:
    x = admit([Queued("b", at(1))], Queued("a", at(1)))
    assert not x.enqueue and x.superseded_by == "b"
