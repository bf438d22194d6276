"""Progress reports: where they go, and the line a terminal shows."""

from __future__ import annotations

import asyncio

from catalog_refresher import progress
from catalog_refresher.console.progress import ProgressLine, size


def test_reports_reach_the_sink_from_tasks_and_threads_and_nowhere_outside() -> None:
    """A report made in a task or in ``asyncio.to_thread`` inside ``reporting`` reaches the
    sink; one made after it ends goes nowhere (and costs nothing)."""
    line = ProgressLine("erp_stock")

    async def work() -> None:
        progress.advance(progress.PAGES)
        await asyncio.to_thread(progress.advance, progress.RECORDS, 500)
        await asyncio.create_task(asyncio.to_thread(progress.phase, "applying"))

    with progress.reporting(line):
        asyncio.run(work())
    progress.advance(progress.ROWS, 7)

    assert not progress.active()
    assert line.text().startswith(
        "erp_stock: applying · 1 pages, 0 B fetched · 500 records decoded · "
    )
    assert "rows applied" not in line.text()  # a counter that never moved is not shown


def test_sizes_read_in_decimal_units() -> None:
    """Bytes under a thousand stay bytes; larger sizes get one decimal in kB, MB, GB."""
    assert [size(n) for n in (0, 999, 1000, 34_500_000, 2_100_000_000)] == [
        "0 B",
        "999 B",
        "1.0 kB",
        "34.5 MB",
        "2.1 GB",
    ]
