"""Small pieces of the service's task handling: a loop that survives its iterations'
failures, the report of the loops' end, and a wait bounded on the injected clock."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from datetime import datetime

from catalog_refresher.clock import Clock, sleep_until
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
        # The loop must outlive any one failure (a bug): loudly, with its traceback.
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


async def sleep_or_wake(clock: Clock, wake: asyncio.Event, when: datetime) -> bool:
    """Sleep until ``when``; true if ``wake`` was set earlier (a dead peer's orphaned run
    to recover)."""
    wake.clear()
    sleep = asyncio.ensure_future(sleep_until(clock, when))
    woken = asyncio.ensure_future(wake.wait())
    try:
        await asyncio.wait([sleep, woken], return_when=asyncio.FIRST_COMPLETED)
    finally:
        sleep.cancel()
        woken.cancel()
    return wake.is_set()
