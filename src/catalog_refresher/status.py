"""How each source and the service as a whole are doing (contract 5b and 6).

Pure functions of what the store and the scheduler know, with ``now`` passed
in: the same rules serve ``/health``, ``/health/ready`` and ``/api/sources``.
Health follows ASP.NET Core's model: Healthy, Degraded or Unhealthy per entry,
and the worst entry is the overall status.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from catalog_refresher.config.settings import FreshnessSettings, RepositoryOptions
from catalog_refresher.config.values import format_timespan
from catalog_refresher.domain.runs import RunStatus
from catalog_refresher.refresh.pressure import MB, PressureStats
from catalog_refresher.refresh.resilience import CircuitState
from catalog_refresher.refresh.schedule import is_stale
from catalog_refresher.refresh.store_outage import FailedWrite
from catalog_refresher.store.base import Pause, SourceHistory


class Freshness(enum.StrEnum):
    """How old a source's data is against its ``Freshness`` window (issue 12)."""

    FRESH = "fresh"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceStatus:
    """One source as ``GET /api/sources`` shows it."""

    id: str
    interval: timedelta
    enabled: bool
    priority: int
    last_success_at: datetime | None
    last_attempt_at: datetime | None
    last_status: RunStatus | None
    last_error: str | None
    next_run_at: datetime | None
    circuit_state: CircuitState
    consecutive_failures: int
    record_count: int
    used_backup: bool = False
    stale: bool = False
    tls_unverified: bool = False
    """An endpoint of the source has ``Tls:Verify`` false."""
    pinned_run_id: int | None = None
    """The kept version an operator pinned the source to (served instead of the newest)."""
    paused_at: datetime | None = None
    pause_reason: str | None = None
    age: timedelta | None = None
    """Since the last success (before one: since the service started)."""
    freshness: Freshness | None = None
    """``None`` when the source has no ``Freshness`` window."""
    freshness_limit: timedelta | None = None
    """The window's bound the data is past (``WarnAfter`` or ``FailAfter``)."""

    @property
    def paused(self) -> bool:
        return self.paused_at is not None


def source_status(
    *,
    source: str,
    interval: timedelta,
    enabled: bool,
    priority: int,
    history: SourceHistory,
    circuit_state: CircuitState,
    next_run_at: datetime | None,
    service_started_at: datetime,
    options: RepositoryOptions,
    now: datetime,
    tls_unverified: bool = False,
    pause: Pause | None = None,
    freshness: FreshnessSettings | None = None,
) -> SourceStatus:
    age = now - (history.last_success_at or service_started_at)
    state, limit = freshness_of(freshness, age) if enabled else (None, None)
    stale = enabled and is_stale(
        last_success_at=history.last_success_at,
        started_at=service_started_at,
        interval=interval,
        stale_after_intervals=options.stale_after_intervals,
        now=now,
    )
    return SourceStatus(
        id=source,
        interval=interval,
        enabled=enabled,
        priority=priority,
        last_success_at=history.last_success_at,
        last_attempt_at=history.last_attempt_at,
        last_status=history.last_status,
        last_error=history.last_error,
        next_run_at=next_run_at if enabled else None,
        circuit_state=circuit_state,
        consecutive_failures=history.consecutive_failures,
        record_count=history.record_count,
        used_backup=history.last_used_backup,
        stale=stale,
        tls_unverified=tls_unverified,
        pinned_run_id=history.pinned_run_id,
        paused_at=None if pause is None else pause.paused_at,
        pause_reason=None if pause is None else pause.reason,
        age=age,
        freshness=state,
        freshness_limit=limit,
    )


def freshness_of(
    window: FreshnessSettings | None, age: timedelta
) -> tuple[Freshness | None, timedelta | None]:
    """The data's state in ``window``, and the bound it is past (``None`` when fresh)."""
    if window is None:
        return None, None
    if window.fail_after is not None and age > window.fail_after:
        return Freshness.FAIL, window.fail_after
    if window.warn_after is not None and age > window.warn_after:
        return Freshness.WARN, window.warn_after
    return Freshness.FRESH, None


class Health(enum.StrEnum):
    HEALTHY = "Healthy"
    DEGRADED = "Degraded"
    UNHEALTHY = "Unhealthy"

    @property
    def rank(self) -> int:
        return [Health.HEALTHY, Health.DEGRADED, Health.UNHEALTHY].index(self)


@dataclass(frozen=True, slots=True)
class HealthEntry:
    status: Health
    description: str


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthReport:
    status: Health
    entries: dict[str, HealthEntry] = field(default_factory=dict)


REFRESH_ENTRY = "catalog-refresh"
#: Present only with ``CatalogRepository:MemoryLimitMb`` set. An entry of its own rather
#: than a reason of ``catalog-refresh``: that entry keeps the contract's one meaning (the
#: seed's "Last refresh was N minutes ago"), and the memory is the process's, not a source's.
MEMORY_ENTRY = "memory"


def source_health(status: SourceStatus) -> HealthEntry:
    """Degraded when the latest run did not succeed, the circuit is open, the
    data is stale, or the backup served it; an endpoint read without TLS
    verification is said in the description, whatever the status."""
    entry = _source_health(status)
    if status.tls_unverified and status.enabled:
        return HealthEntry(entry.status, f"{entry.description}; TLS verification is off")
    return entry


def _source_health(status: SourceStatus) -> HealthEntry:
    if not status.enabled:
        return HealthEntry(Health.HEALTHY, "disabled: not configured or interval 00:00:00")
    problems = []
    if status.paused:
        problems.append(f"paused: {status.pause_reason}" if status.pause_reason else "paused")
    if status.freshness in (Freshness.WARN, Freshness.FAIL):
        assert status.freshness_limit is not None
        bound = "FailAfter" if status.freshness is Freshness.FAIL else "WarnAfter"
        problems.append(
            f"freshness {status.freshness.value}: data older than {bound}"
            f" {format_timespan(status.freshness_limit)}"
        )
    if status.last_status not in (None, RunStatus.SUCCEEDED):
        assert status.last_status is not None
        problems.append(f"latest run {status.last_status.value}")
    if status.circuit_state is not CircuitState.CLOSED:
        problems.append(f"circuit {status.circuit_state.value}")
    if status.stale:
        problems.append("stale")
    if status.used_backup:
        problems.append("served from its backup")
    if status.pinned_run_id is not None:
        problems.append(f"pinned to run {status.pinned_run_id}")
    if problems:
        return HealthEntry(Health.DEGRADED, "; ".join(problems))
    if status.last_success_at is None:
        return HealthEntry(Health.HEALTHY, "waiting for its first refresh")
    return HealthEntry(Health.HEALTHY, f"last refreshed at {status.last_success_at.isoformat()}")


def refresh_health(
    *,
    last_success_at: datetime | None,
    started_at: datetime,
    degraded_after: timedelta,
    now: datetime,
) -> HealthEntry:
    """The seed's check: Degraded when no source succeeded within ``degraded_after``."""
    since = now - (last_success_at or started_at)
    if since > degraded_after:
        minutes = since.total_seconds() / 60
        return HealthEntry(Health.DEGRADED, f"Last refresh was {minutes:.1f} minutes ago")
    return HealthEntry(Health.HEALTHY, "Catalog refresh is running normally")


def memory_health(stats: PressureStats) -> HealthEntry:
    """Degraded while the process tree's RSS is above the limit, saying what gave way."""
    limit = f"{stats.limit / MB:.0f} MB"
    if stats.rss is None:
        return HealthEntry(Health.HEALTHY, f"not measured yet; limit {limit}")
    rss = f"{stats.rss / MB:.0f} MB"
    if not stats.above:
        return HealthEntry(Health.HEALTHY, f"memory {rss}, within the {limit} limit")
    runs = "1 run" if stats.waiting == 1 else f"{stats.waiting} runs"
    return HealthEntry(
        Health.DEGRADED, f"memory {rss} above the {limit} limit; cache shrunk, {runs} deferred"
    )


def with_memory(report: HealthReport, stats: PressureStats | None) -> HealthReport:
    """``report`` with the ``memory`` entry (none without a limit), its status the worst."""
    if stats is None:
        return report
    entries = {**report.entries, MEMORY_ENTRY: memory_health(stats)}
    return HealthReport(status=worst(e.status for e in entries.values()), entries=entries)


def health_report(
    sources: Iterable[SourceStatus],
    *,
    started_at: datetime,
    options: RepositoryOptions,
    now: datetime,
) -> HealthReport:
    sources = list(sources)
    successes = [s.last_success_at for s in sources if s.last_success_at is not None]
    entries = {
        REFRESH_ENTRY: refresh_health(
            last_success_at=max(successes, default=None),
            started_at=started_at,
            degraded_after=options.health_degraded_after,
            now=now,
        )
    }
    entries.update({s.id: source_health(s) for s in sources})
    return HealthReport(status=worst(e.status for e in entries.values()), entries=entries)


def with_refused_write(status: SourceStatus, failed: FailedWrite | None) -> SourceStatus:
    """``status`` as it is while the store refuses the source's writes: its latest attempt
    failed (no run could record it, so the audit log does not say)."""
    if failed is None:
        return status
    return dataclasses.replace(
        status,
        last_status=RunStatus.FAILED,
        last_error=f"the store cannot be written: {failed.error}",
        last_attempt_at=failed.at,
    )


def with_store_outage(report: HealthReport, failing: Mapping[str, FailedWrite]) -> HealthReport:
    """``report`` with the ``catalog-refresh`` entry Degraded while the store refuses writes.

    Degraded, not Unhealthy: the last good data is still read and served; an Unhealthy
    replica would be restarted or taken out of rotation, which frees no disk and serves
    nothing. A store that cannot be read (or reached) is Unhealthy (``store_unreadable``).
    """
    if not failing:
        return report
    since = min(f.since for f in failing.values())
    refused = sum(f.attempts for f in failing.values())
    error = max(failing.values(), key=lambda f: f.at).error
    entry = HealthEntry(
        Health.DEGRADED,
        f"the store cannot be written since {since.isoformat()} ({refused} writes refused,"
        f" no run recorded): {error}",
    )
    entries = {**report.entries, REFRESH_ENTRY: worse(report.entries.get(REFRESH_ENTRY), entry)}
    return HealthReport(status=worst(e.status for e in entries.values()), entries=entries)


def worse(entry: HealthEntry | None, other: HealthEntry) -> HealthEntry:
    return other if entry is None or other.status.rank >= entry.status.rank else entry


def store_busy(seconds: float) -> HealthReport:
    """Degraded, not Unhealthy: the data already served stays good; only its state is late."""
    entry = HealthEntry(
        Health.DEGRADED,
        f"the store did not answer within {seconds:g} s: busy (a long write holding it?)",
    )
    return HealthReport(status=Health.DEGRADED, entries={REFRESH_ENTRY: entry})


def store_unreadable(error: Exception | str) -> HealthReport:
    entry = HealthEntry(Health.UNHEALTHY, f"Catalog refresh health check failed: {error}")
    return HealthReport(status=Health.UNHEALTHY, entries={REFRESH_ENTRY: entry})


def worst(statuses: Iterable[Health]) -> Health:
    return max(statuses, key=lambda h: h.rank, default=Health.HEALTHY)


def ready(sources: Iterable[SourceStatus]) -> bool:
    """Every enabled source has data or has finished a run."""
    return all(s.record_count > 0 or s.last_status is not None for s in sources if s.enabled)
