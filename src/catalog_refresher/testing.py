"""Fakes shipped with the package, for this project's tests and for users' own.

- ``FakeClock``: time that moves only when the test says so.
- ``StaticSource``: a source serving given records, with scripted failures.

``FakeClock`` is the piece everything else leans on: its time moves only when a
test calls ``advance()``, and then it wakes every sleeper whose deadline has
come, in deadline order, letting the event loop settle after each. A test of a
five-minute interval, a two-second backoff or a ten-minute timeout runs in
milliseconds.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from catalog_refresher.domain.window import Window
from catalog_refresher.sources.base import FetchState, Payload

#: How many event-loop turns ``settle()`` gives pending callbacks. Everything
#: the service does between two clock waits (in-memory HTTP transports, inline
#: SQLite) finishes within a handful of turns; this is a generous bound.
_SETTLE_TURNS = 200


@dataclass(order=True)
class _Sleeper:
    deadline: float
    seq: int
    future: asyncio.Future[None] = field(compare=False)


class FakeClock:
    """A ``Clock`` whose time is moved by the test."""

    def __init__(self, start: datetime | None = None) -> None:
        self._start = start or datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
        if self._start.tzinfo is None:
            raise ValueError("FakeClock needs a timezone-aware start time")
        self._elapsed = 0.0
        self._sleepers: list[_Sleeper] = []
        self._seq = itertools.count()

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._elapsed)

    def monotonic(self) -> float:
        return self._elapsed

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, _Sleeper(self._elapsed + seconds, next(self._seq), future))
        try:
            await future
        finally:
            if not future.done():
                future.cancel()

    @property
    def sleepers(self) -> int:
        """How many waits are pending (cancelled ones excluded)."""
        return sum(1 for s in self._sleepers if not s.future.done())

    def next_deadline(self) -> float | None:
        """Seconds until the earliest pending wait ends, if any."""
        self._drop_cancelled()
        return self._sleepers[0].deadline - self._elapsed if self._sleepers else None

    async def settle(self) -> None:
        """Let every task that can run, run, until all wait on this clock again."""
        for _ in range(_SETTLE_TURNS):
            await asyncio.sleep(0)

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, waking sleepers in deadline order."""
        target = self._elapsed + seconds
        await self.settle()
        while True:
            self._drop_cancelled()
            if not self._sleepers or self._sleepers[0].deadline > target:
                break
            sleeper = heapq.heappop(self._sleepers)
            self._elapsed = max(self._elapsed, sleeper.deadline)
            sleeper.future.set_result(None)
            # Wake everyone due at the same instant before letting the loop run.
            while self._sleepers and self._sleepers[0].deadline <= self._elapsed:
                other = heapq.heappop(self._sleepers)
                if not other.future.done():
                    other.future.set_result(None)
            await self.settle()
        self._elapsed = target
        await self.settle()

    async def advance_to(self, when: datetime) -> None:
        await self.advance(max(0.0, (when - self.now()).total_seconds()))

    def _drop_cancelled(self) -> None:
        while self._sleepers and self._sleepers[0].future.done():
            heapq.heappop(self._sleepers)


Records = list[dict[str, Any]]


class StaticSource:
    """A ``Source`` that serves the records it is given, with scripted failures and delays.

    ``records`` is a list of JSON-able dicts, or a function of the window that
    returns one. Each entry of ``failures`` is raised by one fetch, in order,
    before any records are served. ``delay`` makes each fetch take that long on
    ``clock``, for tests of concurrency and timeouts.
    """

    def __init__(
        self,
        source_id: str,
        records: list[dict[str, Any]]
        | Callable[[Window | None], list[dict[str, Any]]]
        | None = None,
        *,
        failures: Iterable[BaseException] = (),
        clock: FakeClock | None = None,
        delay: float = 0.0,
    ) -> None:
        self._source_id = source_id
        self.records = records if records is not None else []
        self.failures = list(failures)
        self.clock = clock
        self.delay = delay
        self.windows: list[Window | None] = []
        self.states: list[FetchState | None] = []
        self.active = 0
        self.most_active = 0

    @property
    def source_id(self) -> str:
        return self._source_id

    @property
    def calls(self) -> int:
        return len(self.windows)

    async def fetch(self, window: Window | None, state: FetchState | None = None) -> Payload:
        self.windows.append(window)
        self.states.append(state)
        self.active += 1
        self.most_active = max(self.most_active, self.active)
        try:
            if self.delay:
                assert self.clock is not None, "a delay needs the clock"
                await self.clock.sleep(self.delay)
            if self.failures:
                raise self.failures.pop(0)
            records = self.records(window) if callable(self.records) else self.records
            return Payload(pages=[msgspec.json.encode(records)], origin=f"static:{self.source_id}")
        finally:
            self.active -= 1

    async def aclose(self) -> None:
        return None
