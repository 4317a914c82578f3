"""The console's budget for long lists, checked in `make test`: the incidents page with 10,000 incidents in
Debian's Chromium renders its first row and scrolls from top to bottom within bounds set against the same page
with 100 incidents, measured in the same run, with only the rows on screen in the DOM (bench/console_list.py;
figures in docs/benchmarks.md)."""

from __future__ import annotations

import pytest
from bench.console_list import report, run

from tests.browser.harness import require_console

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]


async def test_ten_thousand_incidents_scroll_without_jank() -> None:
    require_console()
    result = await run(rows=10_000, frames=120)  # run() also scrolls the list to its end and finds the last row
    print("\n" + report([result]))
    assert result.large.height_px > 400_000, "not 10,000 rows of list"
    assert result.verdicts() == []
