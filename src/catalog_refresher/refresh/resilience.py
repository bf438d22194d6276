"""Retries with backoff, and a circuit breaker per source (contract 5b).

Retries use tenacity, given the injected clock's ``sleep`` so that backoff is
instant under a fake clock; a source's fetch and an alert's POST both go
through ``with_retries``, and what is worth retrying is the error's
``transient``. The breaker is written here: the ones on PyPI count calls and
read the system clock, while this one counts *runs* (a run already
includes its retries), is rebuilt from the audit log at start, and must let a
manual refresh act as the half-open probe.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    wait_exponential,
    wait_random,
)

from catalog_refresher.clock import Clock
from catalog_refresher.errors import CatalogRefresherError, SourceStatusError

T = TypeVar("T")


def is_transient(exc: BaseException) -> bool:
    """A project error that may pass (connection errors, timeouts, HTTP 429 and 5xx).

    Never a malformed payload, and never a foreign error: the boundary that
    meets one translates it first.
    """
    return isinstance(exc, CatalogRefresherError) and exc.transient


async def with_retries(
    operation: Callable[[], Awaitable[T]],
    *,
    attempts: int,
    base_delay: timedelta,
    clock: Clock,
    on_retry: Callable[[int, BaseException], None],
    jitter: timedelta | None = None,
    deadline: float | None = None,
) -> tuple[T, int]:
    """Run ``operation``, retrying transient failures; returns its result and the attempts used.

    Waits about ``base_delay``, then twice that, and so on, plus up to ``jitter``
    (by default a quarter of ``base_delay``) so that many sources failing
    together do not retry in lockstep. A failure that asks for a longer wait
    (``SourceStatusError.retry_after``, from a 429's or 503's ``Retry-After``) gets
    that wait instead. A wait that would end after ``deadline`` (``clock.monotonic()``
    time: when the run's RefreshTimeout is up) is not begun: the attempt could not
    finish in time, so its failure is the run's. The last failure is re-raised as it is.
    """
    base = base_delay.total_seconds()
    spread = base / 4 if jitter is None else jitter.total_seconds()
    backoff = wait_exponential(multiplier=base, exp_base=2) + wait_random(0, spread)

    def wait(state: RetryCallState) -> float:
        delay: float = backoff(state)
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, SourceStatusError) and exc.retry_after is not None:
            return max(delay, exc.retry_after)
        return delay

    def stop(state: RetryCallState) -> bool:
        if state.attempt_number >= attempts:
            return True
        return deadline is not None and clock.monotonic() + state.upcoming_sleep > deadline

    def before_sleep(state: RetryCallState) -> None:
        assert state.outcome is not None
        exc = state.outcome.exception()
        assert exc is not None
        on_retry(state.attempt_number, exc)

    retrying = AsyncRetrying(
        stop=stop,
        wait=wait,
        retry=retry_if_exception(is_transient),
        sleep=clock.sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    async for attempt in retrying:
        with attempt:
            result = await operation()
        if attempt.retry_state.outcome and not attempt.retry_state.outcome.failed:
            return result, attempt.retry_state.attempt_number
    raise AssertionError("unreachable: tenacity re-raises the last failure")  # pragma: no cover


class CircuitState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Opens after ``threshold`` consecutive failed runs; one probe after ``open_for``."""

    def __init__(
        self,
        *,
        threshold: int,
        open_for: timedelta,
        failures: int = 0,
        last_failure_at: datetime | None = None,
    ) -> None:
        self.threshold = threshold
        self.open_for = open_for
        self.failures = failures
        self._opened_at = last_failure_at if failures >= threshold else None
        self._probing = False

    def state(self, now: datetime) -> CircuitState:
        if self._opened_at is None:
            return CircuitState.CLOSED
        if self._probing or now - self._opened_at >= self.open_for:
            return CircuitState.HALF_OPEN
        return CircuitState.OPEN

    def allow(self, now: datetime, *, manual: bool = False) -> bool:
        """May a run call the source now? A run that may becomes the probe if half-open."""
        state = self.state(now)
        if state is CircuitState.CLOSED:
            return True
        if self._probing:
            return False
        if state is CircuitState.HALF_OPEN or manual:
            self._probing = True
            return True
        return False

    def record_success(self) -> None:
        self.failures = 0
        self._opened_at = None
        self._probing = False

    def record_failure(self, now: datetime) -> None:
        self.failures += 1
        if self._probing or self.failures >= self.threshold:
            self._opened_at = now  # a failed probe opens the circuit for another period
        self._probing = False

    def record_neutral(self) -> None:
        """A run that neither failed nor succeeded (rejected, cancelled) ends a probe."""
        self._probing = False
