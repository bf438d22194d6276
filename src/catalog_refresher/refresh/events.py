"""What the refresh loop tells the world; logs, metrics and alerts subscribe.

The loop never logs or counts anything itself: it emits these events, and
each concern (``observability.py``, later metrics and webhooks) listens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from catalog_refresher.domain.runs import Run


@dataclass(frozen=True, slots=True, kw_only=True)
class RunStarted:
    run: Run


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRetrying:
    run: Run
    attempt: int
    """The attempt that failed, 1-based."""
    attempts: int
    error: str


@dataclass(frozen=True, slots=True, kw_only=True)
class FailingOver:
    run: Run
    error: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RunFinished:
    run: Run
    """The run as recorded, with its final status and counts."""
    valid: int
    """Valid records the source returned (the N of the seed's log line)."""
    duration: float
    """Seconds from start (or from queueing, for a skipped run) to finish."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceNotConfigured:
    source: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Purged:
    source: str
    rows: int


Event = RunStarted | RunRetrying | FailingOver | RunFinished | SourceNotConfigured | Purged
Listener = Callable[[Event], None]


class EventBus:
    """Calls every listener with every event; a failing listener never stops a run."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self.listener_errors = 0

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def emit(self, event: Event) -> None:
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                self.listener_errors += 1
