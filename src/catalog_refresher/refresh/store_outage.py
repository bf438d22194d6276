"""A store that refuses writes (a full disk, a database down) is a counted failure.

When the store cannot record a run at all (its claim fails) or cannot record a
run's end, nothing in the audit log tells: ``StoreOutage`` keeps, per source,
the write that failed last, until a write of that source is taken again. Each
failed write is a ``StoreWriteFailed`` (the ``store`` failure counter, one log
line naming the cause: no traceback); health and ``/api/sources`` read the
outage from here (``control.py``), since the store cannot tell them.

A run whose end cannot be written keeps retrying the write (``record_end``) until
the store takes it, so that it never stays ``running``; if the service stops
first, the next start's recovery records it cancelled.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from catalog_refresher.clock import Clock
from catalog_refresher.domain.runs import Run, RunOutcome, RunStatus
from catalog_refresher.errors import StoreError, StoreUnreachable, describe
from catalog_refresher.refresh.events import EventBus, StoreWriteFailed
from catalog_refresher.store.base import Store

#: ``runner.Offload`` (blocking work off the loop), said loosely: the runner imports this.
Offload = Callable[..., Awaitable[Any]]

log = logging.getLogger("catalog_refresher.refresh")

#: How often a run retries writing its end while the store refuses it.
RECORD_END_RETRY_EVERY = 1.0


@dataclass(frozen=True, slots=True)
class FailedWrite:
    """The store refused a write of a source's, ``since`` (the first) up to ``at``."""

    since: datetime
    at: datetime
    error: str
    attempts: int
    unreachable: bool = False
    """The store's server could not be reached (``StoreUnreachable``), not just written."""


class StoreOutage:
    """The writes the store refused, by source, until it takes one again."""

    def __init__(self, clock: Clock, bus: EventBus, store: Store, offload: Offload) -> None:
        self.clock = clock
        self.bus = bus
        self.store = store
        self.offload = offload
        self._failed: dict[str, FailedWrite] = {}

    def failed(
        self, source: str, exc: StoreError, run_id: int | None = None, *, announce: bool = True
    ) -> None:
        """A write of ``source``'s failed: kept for health and, ``announce``d, counted and
        logged in one line (the traceback at debug level only)."""
        log.debug("the store refused a write of %s", source, exc_info=exc)
        now, error = self.clock.now(), _one_line(exc)
        before = self._failed.get(source)
        since, attempts = (before.since, before.attempts) if before else (now, 0)
        unreachable = isinstance(exc, StoreUnreachable)
        self._failed[source] = FailedWrite(since, now, error, attempts + 1, unreachable)
        if announce:
            event = StoreWriteFailed(
                source=source, error=error, run_id=run_id, repeated=before is not None
            )
            self.bus.emit(event)

    def taken(self, source: str) -> None:
        """A write of ``source``'s was taken: the store works for it again."""
        if self._failed.pop(source, None) is not None:
            log.info("the store takes writes of %s again", source)

    def failing(self) -> dict[str, FailedWrite]:
        """The sources whose last write the store refused, and how."""
        return dict(self._failed)

    async def record_end(
        self, source: str, run_id: int, write: Callable[[], Awaitable[object]]
    ) -> None:
        """``await write()`` (a run's end) until the store takes it; the first refusal is
        counted, the retries are not. Cancelled meanwhile (the service stops), the run is
        left to the next start's recovery, which records it cancelled."""
        first = True
        while True:
            try:
                await write()
            except StoreError as exc:
                self.failed(source, exc, run_id, announce=first)
                first = False
            else:
                self.taken(source)
                return
            await self.clock.sleep(RECORD_END_RETRY_EVERY)

    async def end_refused(self, run: Run, exc: StoreError) -> Run:
        """``run`` failed because the store refused one of its writes (its start, say):
        counted now, and recorded ``failed`` once the store takes writes again. A run being
        cancelled (the service stops) does not wait for that: the next start's recovery
        records it."""
        self.failed(run.source, exc, run.id)
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise exc
        outcome = RunOutcome(
            status=RunStatus.FAILED,
            finished_at=self.clock.now(),
            error=f"the store refused a write of the run: {_one_line(exc)}",
            error_type="store",
        )
        await self.record_end(
            run.source, run.id, lambda: self.offload(self.store.finish_run, run.id, outcome)
        )
        try:
            recorded = await self.offload(self.store.get_run, run.id)
        except StoreError:
            recorded = None
        return recorded or run


def _one_line(exc: StoreError) -> str:
    text = describe(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
