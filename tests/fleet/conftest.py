"""Fixtures of the fleet tier: a hub and two leaf nats-servers (`tests.fleet.topology`)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fleet.topology import Fleet, fleet


@pytest.fixture
async def hub_and_leaves() -> AsyncIterator[Fleet]:
    """The hub and the leaves of `east` and `west`, linked, with the fleet's streams; clients closed first."""
    with fleet() as f:
        try:
            await f.provision()
            await f.wait_linked()
            yield f
        finally:
            await f.close()
