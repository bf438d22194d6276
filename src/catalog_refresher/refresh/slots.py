"""At most ``MaxConcurrentRefreshes`` runs at once, higher priority first.

``asyncio.Semaphore`` wakes waiters in arrival order; contract 5b wants the
higher ``Priority`` first when slots are short, so this small semaphore keeps its
waiters in a heap instead.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class PrioritySlots:
    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("need at least one slot")
        self.size = size
        self._free = size
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    @property
    def in_use(self) -> int:
        return self.size - self._free

    @property
    def waiting(self) -> int:
        return sum(1 for *_, f in self._waiters if not f.done())

    @asynccontextmanager
    async def hold(self, priority: int = 0) -> AsyncIterator[None]:
        await self.acquire(priority)
        try:
            yield
        finally:
            self.release()

    async def acquire(self, priority: int = 0) -> None:
        """Take a slot (higher priority first); pair with ``release``, or use ``hold``."""
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (-priority, next(self._order), future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # granted and cancelled at once: hand the slot on
            raise

    def release(self) -> None:
        while self._waiters:
            *_, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_result(None)  # the slot passes straight to the waiter
                return
        self._free += 1

    def resize(self, size: int) -> None:
        """Change the number of slots (a configuration reload); runs holding one keep it,
        and with fewer slots new runs wait until enough have been released."""
        if size < 1:
            raise ValueError("need at least one slot")
        self._free += size - self.size
        self.size = size
        while self._free > 0 and self.waiting:
            self._free -= 1
            self.release()
