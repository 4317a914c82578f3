"""Group commit, pure asyncio: items handed in together are worked on together, a lone item at once, and a
failed batch fails every caller in it (each message is then redelivered). No database, no bus."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from opsbus.healer.batching import GroupCommit


class Work:
    def __init__(self, fail: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.fail = fail
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, items: Sequence[int]) -> None:
        self.batches.append(list(items))
        await self.gate.wait()
        if self.fail:
            raise RuntimeError("transaction failed")


async def test_items_handed_in_together_are_one_batch_and_a_lone_item_goes_at_once() -> None:
    work = Work()
    commit = GroupCommit(work)
    await asyncio.gather(*(commit.submit(i) for i in range(5)))
    await commit.submit(9)
    assert work.batches == [[0, 1, 2, 3, 4], [9]]


async def test_items_arriving_while_a_batch_is_written_go_in_the_next_one_up_to_the_limit() -> None:
    work = Work()
    commit = GroupCommit(work, max_batch=3)
    work.gate.clear()
    first = asyncio.create_task(commit.submit(0))
    await asyncio.sleep(0.01)  # batch [0] is being written
    later = [asyncio.create_task(commit.submit(i)) for i in range(1, 6)]
    await asyncio.sleep(0.01)
    work.gate.set()
    await asyncio.gather(first, *later)
    assert work.batches == [[0], [1, 2, 3], [4, 5]]


async def test_a_failed_batch_fails_each_of_its_callers_and_the_next_batch_still_runs() -> None:
    work = Work(fail=True)
    commit = GroupCommit(work)
    outcomes = await asyncio.gather(*(commit.submit(i) for i in range(3)), return_exceptions=True)
    assert [str(o) for o in outcomes] == ["transaction failed"] * 3
    work.fail = False
    await commit.submit(3)
    assert work.batches == [[0, 1, 2], [3]]


async def test_a_cancelled_caller_is_left_out_of_the_batch() -> None:
    work = Work()
    commit = GroupCommit(work)
    gone = asyncio.create_task(commit.submit(0))
    stays = asyncio.create_task(commit.submit(1))
    await asyncio.sleep(0)
    gone.cancel()
    await stays
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert work.batches == [[1]]
    await commit.close()
