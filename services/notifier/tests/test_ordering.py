"""`KeyedOrder`: concurrent handlers that share a key run one at a time in the order they entered; handlers
with no key in common run together; nothing is kept once idle; a cancelled waiter neither blocks the next one
nor lets it overtake."""

from __future__ import annotations

import asyncio

from opsbus.notifier.ordering import KeyedOrder


async def test_tasks_sharing_a_key_run_in_entry_order_and_others_in_parallel() -> None:
    order = KeyedOrder()
    log: list[str] = []
    gate = asyncio.Event()

    async def work(name: str, keys: list[str], *, wait: bool = False) -> None:
        async with order.turn(keys):
            log.append(f"{name}+")
            if wait:
                await gate.wait()
            await asyncio.sleep(0)
            log.append(f"{name}-")

    tasks = [
        asyncio.create_task(work("a", ["alert:1", "group:g"], wait=True)),
        asyncio.create_task(work("b", ["alert:2", "group:g"])),  # shares the group with a
        asyncio.create_task(work("c", ["alert:1", "group:h"])),  # shares the alert with a
        asyncio.create_task(work("d", ["alert:3", "group:k"])),  # shares nothing
    ]
    for _ in range(5):
        await asyncio.sleep(0)
    assert "d-" in log and log.count("a+") == 1 and "b+" not in log and "c+" not in log
    gate.set()
    await asyncio.gather(*tasks)
    assert log.index("a-") < log.index("b+") and log.index("a-") < log.index("c+")
    assert len(order) == 0


async def test_a_key_chain_keeps_entry_order_across_several_keys() -> None:
    order = KeyedOrder()
    seen: list[int] = []

    async def work(n: int, keys: list[str]) -> None:
        async with order.turn(keys):
            await asyncio.sleep(0.001 * (5 - n))  # earlier ones are slower: order must not follow speed
            seen.append(n)

    await asyncio.gather(*(work(n, ["x", f"y{n % 2}"]) for n in range(5)))
    assert seen == [0, 1, 2, 3, 4]


async def test_a_cancelled_waiter_still_holds_the_next_one_until_the_earlier_ends() -> None:
    order = KeyedOrder()
    release = asyncio.Event()
    done: list[str] = []

    async def holder() -> None:
        async with order.turn(["k"]):
            await release.wait()
            done.append("holder")

    async def waiter(name: str) -> None:
        async with order.turn(["k"]):
            done.append(name)

    first = asyncio.create_task(holder())
    cancelled = asyncio.create_task(waiter("cancelled"))
    last = asyncio.create_task(waiter("last"))
    await asyncio.sleep(0)
    cancelled.cancel()
    for _ in range(5):
        await asyncio.sleep(0)
    assert cancelled.cancelled() and done == []  # the holder still runs: "last" must wait for it
    release.set()
    await asyncio.gather(first, last)
    assert done == ["holder", "last"] and len(order) == 0
