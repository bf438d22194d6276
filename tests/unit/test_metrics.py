"""Metrics fed by a real refresh service on a fake clock, read back from ``render()``.

Every assertion parses the exposition text with prometheus_client's own parser,
so what is checked is what Prometheus would scrape.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from catalog_refresher.domain.runs import Run, RunStatus, Trigger
from catalog_refresher.errors import (
    InvalidPayloadError,
    SourceConnectionError,
    SourceStatusError,
)
from catalog_refresher.observe.metrics import ERROR_TYPES, Metrics, failure_type
from catalog_refresher.refresh.events import RunFinished
from catalog_refresher.refresh.resilience import CircuitState
from catalog_refresher.sources.base import Source
from catalog_refresher.testing import FakeClock, StaticSource
from tests.service_harness import Harness, build

ERP = [
    {"product_code": "TEST-001", "product_name": "Test Product 1", "stock": 100, "location": "A1"}
]
Labels = frozenset[tuple[str, str]]


def samples(metrics: Metrics) -> dict[tuple[str, Labels], float]:
    """Every sample of ``metrics.render()``, by name and label set."""
    text, _ = metrics.render()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
    }


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    """One sample's value, or ``None`` when it is not exposed."""
    return samples(metrics).get((name, frozenset(labels.items())))


def wired(
    tmp_path: Path, clock: FakeClock, sources: Mapping[str, Source], **options: Any
) -> tuple[Harness, Metrics]:
    """A real service over ``sources`` with metrics subscribed to its bus."""
    h = build(tmp_path / "c.db", clock, sources, **options)
    metrics = Metrics.for_service(h.service, h.catalog)
    h.service.bus.subscribe(metrics)
    return h, metrics


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def test_successful_erp_run_is_counted(tmp_path: Path, clock: FakeClock) -> None:
    """An ERP run that succeeds shows in success, runs, records, duration and last success."""
    h, metrics = wired(tmp_path, clock, {"erp_stock": StaticSource("erp_stock", ERP)})
    await h.start()
    text = metrics.render()[0].decode()
    assert 'catalog_refresh_success_total{data_type="erp_stock"} 1.0' in text.splitlines()
    erp = {"data_type": "erp_stock"}
    assert value(metrics, "catalog_refresh_runs_total", **erp, status="succeeded") == 1
    assert value(metrics, "catalog_refresh_records_total", **erp, kind="fetched") == 1
    assert value(metrics, "catalog_refresh_records_total", **erp, kind="inserted") == 1
    assert value(metrics, "catalog_refresh_duration_seconds_count", **erp) == 1
    assert value(metrics, "catalog_refresh_last_success_timestamp_seconds", **erp) == (
        clock.now().timestamp()
    )
    assert value(metrics, "catalog_refresh_interval_seconds", **erp) == 300
    assert all(
        value(metrics, "catalog_refresh_failure_total", **erp, error_type=t) == 0
        for t in ERROR_TYPES
    )
    await h.stop()


@pytest.mark.parametrize(
    ("failure", "error_type"),
    [
        (SourceStatusError(400, "http://erp"), "http_status"),
        (InvalidPayloadError("not JSON"), "invalid_payload"),
    ],
)
async def test_failed_run_counts_its_error_type(
    tmp_path: Path, clock: FakeClock, failure: Exception, error_type: str
) -> None:
    """A failed run increments failure_total under the run's own error_type, and nothing else."""
    erp = StaticSource("erp_stock", ERP, failures=[failure])
    h, metrics = wired(tmp_path, clock, {"erp_stock": erp})
    await h.start()
    erp_label = {"data_type": "erp_stock"}
    failures = {
        t: value(metrics, "catalog_refresh_failure_total", **erp_label, error_type=t)
        for t in ERROR_TYPES
    }
    assert failures == {t: 1.0 if t == error_type else 0.0 for t in ERROR_TYPES}
    assert value(metrics, "catalog_refresh_success_total", **erp_label) == 0
    assert value(metrics, "catalog_refresh_runs_total", **erp_label, status="failed") == 1
    await h.stop()


async def test_retried_connection_errors_count_retries_then_one_failure(
    tmp_path: Path, clock: FakeClock
) -> None:
    """Three refused connections make two retries and one failure of type connection."""
    erp = StaticSource("erp_stock", ERP, failures=[SourceConnectionError("refused")] * 3)
    h, metrics = wired(tmp_path, clock, {"erp_stock": erp})
    await h.start()
    await clock.advance(10)  # the 2 s and 4 s backoffs, with jitter
    labels = {"data_type": "erp_stock"}
    assert value(metrics, "catalog_refresh_retries_total", **labels) == 2
    assert value(metrics, "catalog_refresh_failure_total", **labels, error_type="connection") == 1
    await h.stop()


async def test_timed_out_run_counts_as_timeout(tmp_path: Path, clock: FakeClock) -> None:
    """A run that outlasts RefreshTimeout is a failure of type timeout, lasting 600 s."""
    erp = StaticSource("erp_stock", ERP, clock=clock, delay=700)
    h, metrics = wired(tmp_path, clock, {"erp_stock": erp})
    await h.start()
    await clock.advance(600)
    labels = {"data_type": "erp_stock"}
    assert value(metrics, "catalog_refresh_failure_total", **labels, error_type="timeout") == 1
    assert value(metrics, "catalog_refresh_duration_seconds_sum", **labels) == 600
    await h.stop()


async def test_rejected_run_counts_as_rejected(tmp_path: Path, clock: FakeClock) -> None:
    """An empty snapshot refused by the publish guard is a failure of type rejected."""
    erp = StaticSource("erp_stock", ERP)
    h, metrics = wired(tmp_path, clock, {"erp_stock": erp})
    await h.start()
    erp.records = []
    await clock.advance(300)
    labels = {"data_type": "erp_stock"}
    assert value(metrics, "catalog_refresh_failure_total", **labels, error_type="rejected") == 1
    assert value(metrics, "catalog_refresh_success_total", **labels) == 1
    await h.stop()


async def test_in_progress_rises_during_a_run_and_falls_after(
    tmp_path: Path, clock: FakeClock
) -> None:
    """The in-progress gauge is 1 while a slow fetch runs and 0 once the run ends."""
    erp = StaticSource("erp_stock", ERP, clock=clock, delay=30)
    h, metrics = wired(tmp_path, clock, {"erp_stock": erp})
    await h.start()
    labels = {"data_type": "erp_stock"}
    assert value(metrics, "catalog_refresh_in_progress", **labels) == 1
    await clock.advance(30)
    assert value(metrics, "catalog_refresh_in_progress", **labels) == 0
    assert value(metrics, "catalog_refresh_duration_seconds_sum", **labels) == 30
    await h.stop()


async def test_circuit_state_is_read_at_scrape_time(tmp_path: Path, clock: FakeClock) -> None:
    """Circuit state is 2 once five failures open the breaker, and skipped runs are no failures."""
    erp = StaticSource("erp_stock", ERP, failures=[SourceStatusError(400, "u")] * 5)
    h, metrics = wired(
        tmp_path, clock, {"erp_stock": erp}, intervals={"erp_stock": timedelta(seconds=20)}
    )
    await h.start()
    labels = {"data_type": "erp_stock"}
    assert value(metrics, "catalog_refresh_circuit_state", **labels) == 0
    await clock.advance(4 * 20)
    assert value(metrics, "catalog_refresh_circuit_state", **labels) == 2
    await clock.advance(20)
    assert value(metrics, "catalog_refresh_runs_total", **labels, status="skipped") == 1
    assert value(metrics, "catalog_refresh_failure_total", **labels, error_type="http_status") == 5
    await clock.advance(40)  # the probe succeeds and closes the circuit
    assert value(metrics, "catalog_refresh_circuit_state", **labels) == 0
    await h.stop()


def test_half_open_circuit_is_one() -> None:
    """A half-open breaker is exported as 1, between closed (0) and open (2)."""
    metrics = Metrics(sources=["lots"], circuit=lambda source: CircuitState.HALF_OPEN)
    assert value(metrics, "catalog_refresh_circuit_state", data_type="lots") == 1


async def test_disabled_metrics_expose_no_refresh_sample(tmp_path: Path, clock: FakeClock) -> None:
    """With EnableMetrics=false no catalog_refresh_* line appears, but the cache gauges stay."""
    h, metrics = wired(
        tmp_path, clock, {"erp_stock": StaticSource("erp_stock", ERP)}, enable_metrics=False
    )
    assert metrics.enabled is False
    await h.start()
    metrics.load_last_success({"erp_stock": clock.now()})
    text = metrics.render()[0].decode()
    assert not [line for line in text.splitlines() if line.startswith("catalog_refresh_")]
    assert "catalog_refresh_" not in text
    assert value(metrics, "catalog_cache_hit_ratio") == 0
    await h.stop()


async def test_cache_statistics_are_exported(tmp_path: Path, clock: FakeClock) -> None:
    """Cache size, hits, misses and hit ratio follow the catalog's reads."""
    h, metrics = wired(tmp_path, clock, {"erp_stock": StaticSource("erp_stock", ERP)})
    await h.start()
    for _ in range(4):
        await h.catalog.get("TEST-001")  # one miss, then three hits
    assert value(metrics, "catalog_cache_size") == 1
    assert value(metrics, "catalog_cache_misses_total") == 1
    assert value(metrics, "catalog_cache_hits_total") == 3
    assert value(metrics, "catalog_cache_hit_ratio") == 0.75
    await h.stop()


def test_last_success_is_seeded_from_history() -> None:
    """load_last_success sets the gauge for sources that succeeded before a restart."""
    metrics = Metrics(sources=["erp_stock", "lots"])
    at = datetime(2026, 11, 29, 9, 55, tzinfo=UTC)
    metrics.load_last_success({"erp_stock": at, "lots": None})
    labels = {"data_type": "erp_stock"}
    assert value(metrics, "catalog_refresh_last_success_timestamp_seconds", **labels) == (
        at.timestamp()
    )
    assert (
        value(metrics, "catalog_refresh_last_success_timestamp_seconds", data_type="lots") is None
    )


def test_render_negotiates_openmetrics() -> None:
    """render() answers the Prometheus text format, or OpenMetrics when the scraper asks."""
    metrics = Metrics()
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain; version=0.0.4")
    body, content_type = metrics.render("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")


def test_each_instance_has_its_own_registry() -> None:
    """Two Metrics never share a counter (no process-global registry)."""
    first, second = Metrics(sources=["lots"]), Metrics(sources=["lots"])
    run = _run(RunStatus.SUCCEEDED)
    first.on_event(RunFinished(run=run, valid=1, duration=0.1))
    assert value(first, "catalog_refresh_success_total", data_type="lots") == 1
    assert value(second, "catalog_refresh_success_total", data_type="lots") == 0


@pytest.mark.parametrize(
    ("status", "error_type", "expected"),
    [
        (RunStatus.SUCCEEDED, None, None),
        (RunStatus.SKIPPED, None, None),
        (RunStatus.CANCELLED, None, None),
        (RunStatus.TIMED_OUT, "timeout", "timeout"),
        (RunStatus.REJECTED, "rejected", "rejected"),
        (RunStatus.FAILED, "store", "store"),
        (RunStatus.FAILED, None, "other"),
        (RunStatus.FAILED, "something_new", "other"),
    ],
)
def test_failure_type_maps_statuses(
    status: RunStatus, error_type: str | None, expected: str | None
) -> None:
    """Skipped and cancelled runs are no failures; unknown error types collapse to other."""
    assert failure_type(_run(status, error_type)) == expected


def _run(status: RunStatus, error_type: str | None = None) -> Run:
    at = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
    return Run(
        id=1,
        source="lots",
        trigger=Trigger.SCHEDULE,
        status=status,
        forced=False,
        queued_at=at,
        started_at=at,
        finished_at=at,
        error_type=error_type,
    )
