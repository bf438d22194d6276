"""Prometheus metrics for ``GET /metrics`` (contract section 6), fed by refresh events.

``Metrics`` owns its own ``CollectorRegistry`` (never the process-global one,
so two services in one process, or two tests, never share counters). It is
an ``Observer`` of the ``EventBus`` (``bus.subscribe(metrics)``); the refresh
loop never touches a metric itself (STYLE 13). Values that live elsewhere,
the circuit state of each source and the cache's statistics, are read at
scrape time through callables, so nothing has to push them.

Exported, every ``catalog_refresh_*`` family with the label ``data_type`` =
source id:

==============================================  =========  ==========================
name                                            type       extra labels
==============================================  =========  ==========================
catalog_refresh_duration_seconds                histogram  (runs that started)
catalog_refresh_success_total                   counter
catalog_refresh_failure_total                   counter    error_type (ERROR_TYPES)
catalog_refresh_last_success_timestamp_seconds  gauge
catalog_refresh_runs_total                      counter    status (finished statuses)
catalog_refresh_in_progress                     gauge
catalog_refresh_records_total                   counter    kind (RECORD_KINDS)
catalog_refresh_retries_total                   counter
catalog_refresh_failovers_total                 counter
catalog_refresh_purged_rows_total               counter
catalog_refresh_circuit_state                   gauge      0 closed, 1 half-open, 2 open
catalog_refresh_interval_seconds                gauge      configured interval
catalog_refresh_deferred_total                  counter    runs deferred by memory pressure
catalog_cache_size, catalog_cache_max_size      gauge      (no labels)
catalog_cache_hits_total, ..._misses_total      counter    (no labels)
catalog_cache_hit_ratio                         gauge      (no labels)
catalog_cache_pressure_evictions_total          counter    (no labels)
catalog_memory_rss_bytes                        gauge      (no labels; with a limit)
catalog_memory_limit_bytes                      gauge      (no labels; with a limit)
catalog_memory_above_limit                      gauge      1 above, 0 not (with a limit)
catalog_memory_deferred_runs                    gauge      runs waiting now (with a limit)
==============================================  =========  ==========================

The ``catalog_memory_*`` gauges exist only with ``CatalogRepository:MemoryLimitMb``
set (``refresh/pressure.py`` measures only then); like the cache's, they are
exported whatever ``EnableMetrics`` says.

Failures: ``timed_out`` counts as ``timeout``, ``rejected`` as ``rejected``,
``failed`` as the run's ``error_type`` (``other`` when missing or unknown, so
the label set stays bounded). ``skipped`` and ``cancelled`` are not failures.

With ``enabled=False`` (``EnableMetrics=false``) no ``catalog_refresh_*``
sample is recorded or exposed. The ``catalog_cache_*`` gauges stay: the
contract scopes the switch to refresh samples, and they cost nothing until
scraped.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from catalog_refresher.config.settings import FreshnessSettings
from catalog_refresher.domain.runs import Run, RunStatus
from catalog_refresher.domain.specs import SPECS
from catalog_refresher.refresh.events import (
    Event,
    FailingOver,
    Purged,
    RunDeferred,
    RunFinished,
    RunRetrying,
    RunStarted,
    StoreWriteFailed,
)
from catalog_refresher.refresh.pressure import PressureStats
from catalog_refresher.refresh.resilience import CircuitState

if TYPE_CHECKING:
    from catalog_refresher.catalog import CacheStats, Catalog
    from catalog_refresher.refresh.service import RefreshService

#: The contract's ``error_type`` values; anything else is reported as ``other``.
ERROR_TYPES = (
    "connection",
    "timeout",
    "http_status",
    "invalid_payload",
    "rejected",
    "store",
    "other",
)
#: The ``kind`` label of ``catalog_refresh_records_total``.
RECORD_KINDS = ("fetched", "inserted", "updated", "deleted", "invalid")
#: From a 50 ms in-memory refresh to the default 10 min RefreshTimeout and beyond (30 min).
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 900, 1800)
#: ``catalog_refresh_circuit_state`` values; alert rules test ``== 2`` for open.
CIRCUIT_VALUES = {CircuitState.CLOSED: 0, CircuitState.HALF_OPEN: 1, CircuitState.OPEN: 2}


def failure_type(run: Run) -> str | None:
    """The ``error_type`` label of a finished run, or ``None`` when it is no failure."""
    match run.status:
        case RunStatus.TIMED_OUT:
            return "timeout"
        case RunStatus.REJECTED:
            return "rejected"
        case RunStatus.FAILED:
            return run.error_type if run.error_type in ERROR_TYPES else "other"
        case _:
            return None


class Metrics:
    """The service's metrics; subscribe them to the bus, serve ``render()``."""

    def __init__(
        self,
        *,
        enabled: bool = True,
        sources: Iterable[str] = (),
        intervals: Mapping[str, timedelta] | None = None,
        circuit: Callable[[str], CircuitState] | None = None,
        cache_stats: Callable[[], CacheStats] | None = None,
        pressure_stats: Callable[[], PressureStats | None] | None = None,
        paused: Callable[[], Collection[str]] | None = None,
        now: Callable[[], datetime] | None = None,
        freshness: Callable[[], Mapping[str, FreshnessSettings]] | None = None,
    ) -> None:
        """``sources`` are primed at zero and get a circuit-state sample each scrape.

        ``intervals`` (source id -> configured interval) feed
        ``catalog_refresh_interval_seconds``, which the staleness alert divides by.
        """
        self.enabled = enabled
        self.registry = CollectorRegistry()
        self.sources = tuple(sources)
        self.intervals = dict(intervals or {})
        self._circuit = circuit
        self._cache_stats = cache_stats
        self._pressure_stats = pressure_stats
        self._paused = paused
        self._now = now
        self._freshness = freshness
        self._last_success_at: dict[str, datetime] = {}
        self._running: dict[str, int] = {}
        # Disabled: the metric objects exist (so on_event needs no checks) but are
        # never registered, and on_event returns before touching them anyway.
        target = self.registry if enabled else None
        by_source = ("data_type",)
        self.duration = Histogram(
            "catalog_refresh_duration_seconds",
            "Seconds from a run's start to its end, whatever its status.",
            by_source,
            buckets=DURATION_BUCKETS,
            registry=target,
        )
        self.success = Counter(
            "catalog_refresh_success_total", "Runs that succeeded.", by_source, registry=target
        )
        self.failure = Counter(
            "catalog_refresh_failure_total",
            "Runs that failed, timed out or were rejected, by error type.",
            (*by_source, "error_type"),
            registry=target,
        )
        self.last_success = Gauge(
            "catalog_refresh_last_success_timestamp_seconds",
            "Unix time at which the source's latest successful run finished.",
            by_source,
            registry=target,
        )
        self.runs = Counter(
            "catalog_refresh_runs_total",
            "Finished runs by final status.",
            (*by_source, "status"),
            registry=target,
        )
        self.in_progress = Gauge(
            "catalog_refresh_in_progress", "Runs holding a slot now.", by_source, registry=target
        )
        self.records = Counter(
            "catalog_refresh_records_total",
            "Records fetched, inserted, updated, deleted and invalid, over finished runs.",
            (*by_source, "kind"),
            registry=target,
        )
        self.retries = Counter(
            "catalog_refresh_retries_total", "Fetch attempts retried.", by_source, registry=target
        )
        self.failovers = Counter(
            "catalog_refresh_failovers_total",
            "Runs that failed over to the source's backup.",
            by_source,
            registry=target,
        )
        self.purged = Counter(
            "catalog_refresh_purged_rows_total",
            "History rows purged past retention.",
            by_source,
            registry=target,
        )
        self.deferred = Counter(
            "catalog_refresh_deferred_total",
            "Runs that waited because the memory was above MemoryLimitMb.",
            by_source,
            registry=target,
        )
        self.registry.register(_ScrapeTimeCollector(self))
        if enabled:
            self._prime()

    @classmethod
    def for_service(cls, service: RefreshService, catalog: Catalog | None = None) -> Metrics:
        """Metrics for ``service`` (EnableMetrics, sources, circuits); the caller subscribes."""
        options = service.options
        sources = service.enabled_sources
        return cls(
            enabled=options.enable_metrics,
            sources=sources,
            intervals={source: options.interval(SPECS[source]) for source in sources},
            circuit=service.circuit,
            cache_stats=catalog.stats if catalog is not None else None,
            pressure_stats=service.pressure.stats,
            paused=lambda: service.pauses.known.keys(),
            now=service.clock.now,
            freshness=lambda: {
                source: config.freshness
                for source, config in service.settings.sources.items()
                if config.freshness is not None
            },
        )

    def _prime(self) -> None:
        """Create the per-source series at 0, so ``increase()`` sees the first failure."""
        for source in self.sources:
            self.success.labels(source)
            self.in_progress.labels(source).set(0)
            self.retries.labels(source)
            self.deferred.labels(source)
            for error_type in ERROR_TYPES:
                self.failure.labels(source, error_type)

    def load_last_success(self, last_success: Mapping[str, datetime | None]) -> None:
        """Seed ``last_success_timestamp`` from the audit log at start.

        Without it a restart hides how long ago a source last succeeded until it
        succeeds again, and the staleness alerts cannot see a source stuck since.
        """
        if not self.enabled:
            return
        for source, at in last_success.items():
            if at is not None:
                self.last_success.labels(source).set(at.timestamp())
                self._last_success_at[source] = at

    # --- events -------------------------------------------------------------------

    def on_event(self, event: Event) -> None:
        """The ``EventBus`` observer: record what ``event`` says (nothing when disabled)."""
        if not self.enabled:
            return
        match event:
            case RunStarted(run=run):
                # A source never has two runs in flight, so a gauge of 0/1 per source
                # that remembers the run id cannot drift if a RunFinished goes missing.
                self._running[run.source] = run.id
                self.in_progress.labels(run.source).set(1)
            case RunFinished():
                self._finished(event)
            case RunRetrying(run=run):
                self.retries.labels(run.source).inc()
            case FailingOver(run=run):
                self.failovers.labels(run.source).inc()
            case Purged(source=source, rows=rows):
                self.purged.labels(source).inc(rows)
            case RunDeferred(source=source):
                self.deferred.labels(source).inc()
            case StoreWriteFailed(source=source):
                self.failure.labels(source, "store").inc()
            case _:
                pass

    def _finished(self, event: RunFinished) -> None:
        run = event.run
        source = run.source
        if self._running.get(source) == run.id:
            del self._running[source]
            self.in_progress.labels(source).set(0)
        self.runs.labels(source, run.status.value).inc()
        if run.started_at is not None:
            self.duration.labels(source).observe(max(0.0, event.duration))
        if run.status is RunStatus.SUCCEEDED:
            self.success.labels(source).inc()
            if run.finished_at is not None:
                self.last_success.labels(source).set(run.finished_at.timestamp())
                self._last_success_at[source] = run.finished_at
        error_type = failure_type(run)
        if error_type is not None:
            self.failure.labels(source, error_type).inc()
        counts = run.counts
        for kind in RECORD_KINDS:
            value: int = getattr(counts, kind)
            if value:
                self.records.labels(source, kind).inc(value)

    # --- exposition ---------------------------------------------------------------

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The exposition text and its content type, for ``GET /metrics``.

        Prometheus text format 0.0.4 unless ``accept`` (the request's ``Accept``
        header) asks for OpenMetrics.
        """
        encode, content_type = choose_encoder(accept or "")
        return encode(self.registry), content_type


class _ScrapeTimeCollector(Collector):
    """Reads circuit states, intervals and cache statistics when scraped."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        metrics = self.metrics
        if metrics.enabled:
            if metrics._circuit is not None and metrics.sources:
                circuit = GaugeMetricFamily(
                    "catalog_refresh_circuit_state",
                    "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
                    labels=["data_type"],
                )
                for source in metrics.sources:
                    circuit.add_metric([source], CIRCUIT_VALUES[metrics._circuit(source)])
                yield circuit
            if metrics.intervals:
                interval = GaugeMetricFamily(
                    "catalog_refresh_interval_seconds",
                    "The source's configured refresh interval.",
                    labels=["data_type"],
                )
                for source, value in metrics.intervals.items():
                    interval.add_metric([source], value.total_seconds())
                yield interval
            yield from _operator_gauges(metrics)
        if metrics._cache_stats is not None:
            stats = metrics._cache_stats()
            yield GaugeMetricFamily(
                "catalog_cache_size", "Product aggregates in the cache.", value=stats.size
            )
            yield GaugeMetricFamily(
                "catalog_cache_max_size", "Most aggregates the cache keeps.", value=stats.max_size
            )
            yield CounterMetricFamily(
                "catalog_cache_hits", "Product reads served from the cache.", value=stats.hits
            )
            yield CounterMetricFamily(
                "catalog_cache_misses",
                "Product reads assembled from the store.",
                value=stats.misses,
            )
            yield GaugeMetricFamily(
                "catalog_cache_hit_ratio",
                "hits / (hits + misses) since start; 0 before any read.",
                value=stats.hit_ratio,
            )
            yield CounterMetricFamily(
                "catalog_cache_pressure_evictions",
                "Aggregates evicted to shrink the cache while memory was above its limit.",
                value=stats.pressure_evictions,
            )
        pressure = metrics._pressure_stats() if metrics._pressure_stats is not None else None
        if pressure is not None:
            yield from _memory_families(pressure)


def _memory_families(stats: PressureStats) -> Iterator[Metric]:
    """The memory guard's last measurement and what it holds back."""
    if stats.rss is not None:
        yield GaugeMetricFamily(
            "catalog_memory_rss_bytes",
            "Resident bytes of the service's process tree (service and workers), last measured.",
            value=stats.rss,
        )
    yield GaugeMetricFamily(
        "catalog_memory_limit_bytes", "CatalogRepository:MemoryLimitMb in bytes.", value=stats.limit
    )
    yield GaugeMetricFamily(
        "catalog_memory_above_limit",
        "1 while the last measurement was above the limit (cache shrunk, runs deferred).",
        value=int(stats.above),
    )
    yield GaugeMetricFamily(
        "catalog_memory_deferred_runs",
        "Runs of lower-priority sources waiting for the memory to fall.",
        value=stats.waiting,
    )


def _operator_gauges(metrics: Metrics) -> Iterator[Metric]:
    """Paused sources and the age of each source's data (issue 12)."""
    if metrics._paused is not None and metrics.sources:
        paused = GaugeMetricFamily(
            "catalog_source_paused",
            "1 while the source is paused (no scheduled runs), else 0.",
            labels=["data_type"],
        )
        held = set(metrics._paused())
        for source in metrics.sources:
            paused.add_metric([source], 1.0 if source in held else 0.0)
        yield paused
    if metrics._now is not None and metrics._last_success_at:
        age = GaugeMetricFamily(
            "catalog_source_age_seconds",
            "Seconds since the source's latest successful run finished.",
            labels=["data_type"],
        )
        now = metrics._now()
        for source, at in sorted(metrics._last_success_at.items()):
            if source not in metrics.sources:
                continue
            age.add_metric([source], max(0.0, (now - at).total_seconds()))
        yield age
    if metrics._freshness is not None:
        windows = metrics._freshness()
        for bound in ("warn_after", "fail_after"):
            family = GaugeMetricFamily(
                f"catalog_source_freshness_{bound}_seconds",
                f"The source's Freshness {bound.title().replace('_', '')}, in seconds.",
                labels=["data_type"],
            )
            for source, window in sorted(windows.items()):
                limit: timedelta | None = getattr(window, bound)
                if limit is not None:
                    family.add_metric([source], limit.total_seconds())
            yield family
