"""What keeps the service's loops going: a failed iteration is reported, never fatal."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

from catalog_refresher.clock import Clock
from catalog_refresher.domain.runs import Run
from catalog_refresher.errors import NotOurTurn, StoreError, describe

log = logging.getLogger("catalog_refresher")


async def survive(work: Awaitable[object]) -> None:
    """A loop iteration's failure is reported and the loop goes on (never stops the others)."""
    try:
        await work
    except (asyncio.CancelledError, NotOurTurn):
        raise
    except StoreError as exc:  # the store refusing (a full disk, a database down): one line
        log.debug("refresh loop error", exc_info=exc)
        log.error("refresh loop error: %s", describe(exc))
    except Exception:
        # The loop must outlive any one failure (a store briefly unreachable, a bug).
        log.exception("refresh loop error")


def report_loops_end(loops: asyncio.Task[None]) -> None:
    """The loops end only when cancelled; anything else is a bug worth a loud line."""
    if not loops.cancelled() and (error := loops.exception()) is not None:
        log.critical("the refresh loops stopped", exc_info=error)


async def wait_on_clock(
    clock: Clock, tasks: set[asyncio.Task[Run]], seconds: float
) -> set[asyncio.Task[Run]]:
    """Wait until ``tasks`` are done or ``seconds`` of clock time pass; the rest pending."""
    alarm = asyncio.create_task(clock.sleep(seconds))
    try:
        pending: set[asyncio.Task[Run]] = set(tasks)
        while pending and not alarm.done():
            done, _ = await asyncio.wait([*pending, alarm], return_when=asyncio.FIRST_COMPLETED)
            pending -= done
        return pending
    finally:
        alarm.cancel()
