"""The seed's memory-pressure rule: "reduce cache size, prioritize critical data sources".

With ``CatalogRepository:MemoryLimitMb`` set, ``MemoryGuard`` measures the RSS of
the service's process tree (``refresh/memory.py``) on the clock, every
``CHECK_EVERY`` seconds, and again before each run. Above the limit:

1. the cache shrinks first: ``MemoryPressure(above=True)`` goes on the bus and the
   catalog evicts down to ``CACHE_SHARE`` of its size, and stays that small;
2. then runs of sources below the top ``Priority`` of the enabled sources wait,
   recorded ``queued`` (deferred, not failed: ``RunDeferred``), while the memory
   stays above. The sources of the top priority still run: they are the critical
   ones. When every source has the same priority, none is more critical than
   another and none waits.

When a measurement is at or below the limit again, ``MemoryPressure(above=False)``
lets the cache grow back as it is read, and the deferred runs go, taking their
slots in priority order as usual. Reads are never refused: a smaller cache only
means more of them are assembled from the store.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from catalog_refresher.clock import Clock
from catalog_refresher.config.settings import RepositoryOptions
from catalog_refresher.domain.runs import Run
from catalog_refresher.refresh.events import EventBus, MemoryPressure, RunDeferred
from catalog_refresher.refresh.memory import RssProbe
from catalog_refresher.refresh.runner import Offload

log = logging.getLogger("catalog_refresher")

#: Seconds between measurements while the service runs (besides one before each run).
CHECK_EVERY = 5.0
#: The share of ``Cache:MaxSize`` the cache keeps while the memory is above the limit.
CACHE_SHARE = 0.25
#: ``MemoryLimitMb`` counts mebibytes, as Kubernetes' ``Mi`` and cgroups do.
MB = 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class PressureStats:
    """What the guard last saw, for health and metrics."""

    limit: int
    """The ceiling in bytes."""
    rss: int | None
    """The tree's RSS at the last measurement; ``None`` before one (or without ``/proc``)."""
    above: bool
    waiting: int
    """Runs deferred now."""
    deferred: int
    """Runs deferred since start."""


class MemoryGuard:
    """Keeps the service under its memory ceiling; off (never measures) without one."""

    def __init__(
        self,
        *,
        limit_mb: int | None,
        probe: RssProbe,
        clock: Clock,
        bus: EventBus,
        offload: Offload,
        priorities: Mapping[str, int],
        every: float = CHECK_EVERY,
    ) -> None:
        """``priorities``: each enabled source's ``Priority``; the highest are never deferred."""
        self.limit = None if not limit_mb else limit_mb * MB
        self.probe = probe
        self.clock = clock
        self.bus = bus
        self.offload = offload
        self.every = every
        self._top = max(priorities.values(), default=0)
        self._priorities = dict(priorities)
        self._rss: int | None = None
        self._above = False
        self._below = asyncio.Event()
        self._below.set()
        self._waiting = 0
        self._deferred = 0
        self._unmeasurable_said = False

    @classmethod
    def of(
        cls,
        options: RepositoryOptions,
        priorities: Mapping[str, int],
        probe: RssProbe | None,
        clock: Clock,
        bus: EventBus,
        offload: Offload,
    ) -> MemoryGuard:
        """The guard of ``MemoryLimitMb``; without a probe the memory is never measured."""
        return cls(
            limit_mb=options.memory_limit_mb,
            probe=probe or (lambda: None),
            clock=clock,
            bus=bus,
            offload=offload,
            priorities=priorities,
        )

    @property
    def enabled(self) -> bool:
        return self.limit is not None

    def critical(self, source: str) -> bool:
        """The source has the top priority among the enabled sources: it never waits."""
        return self._priorities.get(source, 0) >= self._top

    def stats(self) -> PressureStats | None:
        """``None`` when no limit is configured."""
        if self.limit is None:
            return None
        return PressureStats(
            limit=self.limit,
            rss=self._rss,
            above=self._above,
            waiting=self._waiting,
            deferred=self._deferred,
        )

    async def watch(self) -> None:
        """Measure every ``every`` seconds of the clock, for as long as the service runs
        (returns at once without a limit)."""
        while self.limit is not None:
            try:
                await self.check()
            except Exception:  # a probe that fails must not end the service's loops
                log.exception("cannot measure the service's memory")
            await self.clock.sleep(self.every)

    async def check(self) -> bool:
        """Measure now and act on a crossing of the limit; true while above it."""
        if self.limit is None:
            return False
        rss = await self.offload(self.probe)
        if rss is None:
            if not self._unmeasurable_said:
                self._unmeasurable_said = True
                log.warning("MemoryLimitMb is set but this system has no /proc to measure RSS")
            return self._above
        self._rss = rss
        above = rss > self.limit
        if above != self._above:
            self._above = above
            if above:
                self._below.clear()
            else:
                self._below.set()
            self.bus.emit(
                MemoryPressure(rss=rss, limit=self.limit, above=above, cache_share=CACHE_SHARE)
            )
        return above

    async def admit(self, source: str, run: Run | None = None) -> None:
        """Return when a run of ``source`` may take a slot: at once, or once the memory is
        below the limit again. ``run`` is ``None`` when it is not claimed yet (with peers,
        a replica takes a slot before it claims, so one under pressure leaves the run to
        its peers)."""
        if self.limit is None or not await self.check() or self.critical(source):
            return
        self._waiting += 1
        self._deferred += 1
        self.bus.emit(RunDeferred(source=source, run=run, rss=self._rss or 0, limit=self.limit))
        try:
            while self._above:
                await self._below.wait()
        finally:
            self._waiting -= 1
