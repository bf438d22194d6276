"""Time, injected.

Everything that waits or reads the time goes through a ``Clock``, so that tests
can drive intervals, backoff, circuit breakers and timeouts with a fake clock
(``catalog_refresher.testing.FakeClock``) in milliseconds.

``timeout()`` exists because ``asyncio.timeout`` runs on the event loop's own
time, which a fake clock cannot move.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards, for durations."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


async def sleep_until(clock: Clock, when: datetime) -> None:
    """Wait until ``clock.now()`` reaches ``when``."""
    delay = (when - clock.now()).total_seconds()
    if delay > 0:
        await clock.sleep(delay)


@asynccontextmanager
async def timeout(clock: Clock, seconds: float) -> AsyncIterator[None]:
    """Like ``asyncio.timeout(seconds)``, measured on ``clock``.

    Cancels the body when the time is up and raises ``TimeoutError`` in its place.
    A cancellation from outside is passed through untouched.
    """
    task = asyncio.current_task()
    assert task is not None, "timeout() must be used inside a task"
    fired = False

    async def alarm() -> None:
        nonlocal fired
        await clock.sleep(seconds)
        fired = True
        task.cancel()

    alarm_task = asyncio.create_task(alarm(), name="clock-timeout")
    try:
        yield
    except asyncio.CancelledError:
        if fired and task.uncancel() == 0:
            raise TimeoutError(f"timed out after {seconds:g} s") from None
        raise
    finally:
        alarm_task.cancel()
