"""Readiness checks may be registered while `/readyz` is being answered (a service's set-up adds its checks
as its parts come up, and the probe is already polling): the answer must not fail for that (issue 21: the
healer's `/readyz` once failed with "dictionary changed size during iteration")."""

from __future__ import annotations

import asyncio

from opsbus.common.runtime import Runtime
from opsbus.common.settings import HttpSettings, ServiceSettings


async def test_a_check_registered_while_readiness_is_evaluated_does_not_break_it() -> None:
    runtime: Runtime[ServiceSettings] = Runtime("probe", ServiceSettings(http=HttpSettings(port=0)))
    evaluating = asyncio.Event()
    go_on = asyncio.Event()

    async def slow_database() -> bool:
        evaluating.set()
        await go_on.wait()
        return True

    runtime.add_check("database", slow_database)
    answer = asyncio.create_task(runtime.readiness())
    await evaluating.wait()
    for n in range(5):  # set-up goes on meanwhile and registers more checks
        runtime.add_check(f"consumer-{n}", lambda: False)
    go_on.set()
    failures = await answer

    assert failures == {"lifecycle": "starting"}  # evaluated what existed when asked; no exception
    later = await runtime.readiness()
    assert set(later) == {"lifecycle"} | {f"consumer-{n}" for n in range(5)}
