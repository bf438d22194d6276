"""What the refresh loop tells the world; logs, metrics, alerts and the cache subscribe.

The loop never logs, counts or invalidates anything itself: it emits these
events, and each concern is an ``Observer`` of the bus (``observe/`` for log
lines, metrics and alerts; ``catalog.py`` for the cache). The composition root
(``app.py``) subscribes them all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

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
class DataChanged:
    """A run's data was committed; emitted before that run's ``RunFinished``."""

    source: str
    products: frozenset[str] | None
    """Product codes whose aggregate changed; ``None`` for too many to list (treat as all)."""
    version: int
    """The source's ``data_version`` after the change."""


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


@dataclass(frozen=True, slots=True, kw_only=True)
class MemoryPressure:
    """The service's memory crossed ``CatalogRepository:MemoryLimitMb`` (``refresh/pressure.py``).

    Emitted when the tree's RSS goes above the limit (``above``) and when it is
    below again; the cache keeps ``cache_share`` of its size while above.
    """

    rss: int
    """Bytes resident in the service's process tree, as measured."""
    limit: int
    """The ceiling, in bytes."""
    above: bool
    cache_share: float


@dataclass(frozen=True, slots=True, kw_only=True)
class RunDeferred:
    """A run of a source below the top ``Priority`` waits for the memory to fall (queued)."""

    source: str
    run: Run | None
    """The run, recorded ``queued``; ``None`` when it is not claimed yet (with peers)."""
    rss: int
    limit: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SourcePaused:
    """A source was taken off its schedule (``refresh/pause.py``)."""

    source: str
    reason: str | None
    at: datetime
    auto: bool = False
    """Paused by ``AutoPauseAfterFailures``, not by an operator."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceResumed:
    source: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigReloaded:
    """A reload was applied (``changes`` says what) or refused (``error`` says why)."""

    changes: tuple[str, ...] = ()
    error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreWriteFailed:
    """The store refused a write of ``source``'s (a claim, or a run's end): a counted
    ``store`` failure, though no run may be recorded (``refresh/store_outage.py``)."""

    source: str
    error: str
    """One line naming the cause, e.g. ``SQLite write failed: database or disk is full``."""
    run_id: int | None = None
    """The run whose end could not be recorded; ``None`` for a claim."""
    repeated: bool = False
    """Not the outage's first failed write of the source (logged at debug level only)."""


Event = (
    RunStarted
    | RunRetrying
    | FailingOver
    | DataChanged
    | RunFinished
    | SourceNotConfigured
    | Purged
    | MemoryPressure
    | RunDeferred
    | SourcePaused
    | SourceResumed
    | ConfigReloaded
    | StoreWriteFailed
)


class Observer(Protocol):
    """Whatever reacts to runs: told every event, in the order they happen."""

    def on_event(self, event: Event) -> None:
        """React to ``event``; ignore the kinds of no interest. Must not block."""


class EventBus:
    """Tells every observer every event; a failing observer never stops a run."""

    def __init__(self) -> None:
        self._observers: list[Observer] = []
        self.listener_errors = 0

    def subscribe(self, observer: Observer) -> None:
        """Tell ``observer`` every event from now on, after those subscribed before it."""
        self._observers.append(observer)

    def emit(self, event: Event) -> None:
        for observer in self._observers:
            try:
                observer.on_event(event)
            except Exception:
                self.listener_errors += 1
