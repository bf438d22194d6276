"""The refresh service end to end on a fake clock: the origin project's scenarios.

Every test drives time with ``FakeClock.advance``; none sleeps for real.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import tracemalloc
from datetime import date, timedelta
from pathlib import Path

import pytest

from catalog_refresher.domain.runs import RunStatus, Trigger
from catalog_refresher.domain.specs import SOURCE_IDS
from catalog_refresher.domain.window import Window
from catalog_refresher.errors import (
    ServiceStopping,
    SourceConnectionError,
    SourceStatusError,
    StoreError,
)
from catalog_refresher.refresh.events import Event
from catalog_refresher.refresh.resilience import CircuitState
from catalog_refresher.sources.base import Payload
from catalog_refresher.store.base import SourceHistory
from catalog_refresher.store.sqlite import SqliteStore
from catalog_refresher.testing import FakeClock, StaticSource
from tests.service_harness import Harness, all_static, build

ERP = [
    {"product_code": "TEST-001", "product_name": "Test Product 1", "stock": 100, "location": "A1"}
]
ESHOP = [{"product_code": "TEST-001", "stock": 80}]


def sales_in(window: Window | None) -> list[dict[str, object]]:
    assert window is not None
    month = window.date_to.strftime("%Y-%m")
    return [
        {"product_code": "TEST-001", "period": month, "b2b_sold": 10, "b2c_sold": 5},
        {"product_code": "TEST-001", "period": month, "b2b_sold": 1, "b2c_sold": 2},
    ]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def harness(tmp_path: Path, clock: FakeClock):  # type: ignore[no-untyped-def]
    sources = all_static(clock, erp_stock=ERP, eshop_stock=ESHOP)
    sources["sales_data"] = StaticSource("sales_data", sales_in, clock=clock)
    h = build(tmp_path / "catalog.db", clock, sources)
    yield h
    await h.stop()


async def test_all_refresh_loops_start_and_log(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """At start every one of the ten sources runs once and logs its seed message."""
    caplog.set_level(logging.INFO, "catalog_refresher")
    await harness.start()
    assert sorted(run.source for run in harness.runs()) == sorted(SOURCE_IDS)
    assert all(run.trigger is Trigger.STARTUP for run in harness.runs())
    assert "Starting ERP stock refresh" in caplog.messages
    assert "Starting sales data refresh" in caplog.messages
    assert "Completed ERP stock refresh. Updated 1 products" in caplog.messages
    assert "Completed sales data refresh. Updated 2 records" in caplog.messages


async def test_erp_refresh_sets_stock_and_location(harness: Harness) -> None:
    """An ERP refresh puts ERP stock, location and name into the product aggregate."""
    await harness.start()
    product = await harness.catalog.get("TEST-001")
    assert product is not None
    assert (product.stock.erp, product.location, product.product_name) == (
        100.0,
        "A1",
        "Test Product 1",
    )


async def test_full_run_yields_aggregate_with_stock_and_sales(harness: Harness) -> None:
    """After all sources ran, the aggregate has ERP stock, e-shop stock and sales by period."""
    await harness.start()
    product = await harness.catalog.get("TEST-001")
    assert product is not None
    assert product.stock.erp == 100
    assert product.stock.eshop == 80
    assert [(s.b2b_sold, s.b2c_sold) for s in product.sales_history] == [(11.0, 7.0)]
    assert set(product.lineage) == {"erp_stock", "eshop_stock", "sales_data"}
    assert product.lineage["erp_stock"].refreshed_at == harness.clock.now()


async def test_error_is_logged_and_the_loop_continues(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A failing ERP run logs the seed's error line; the next slot runs and succeeds."""
    caplog.set_level(logging.INFO, "catalog_refresher")
    erp = StaticSource("erp_stock", ERP, failures=[SourceStatusError(404, "http://erp/x")])
    h = build(tmp_path / "c.db", clock, {"erp_stock": erp})
    await h.start()
    assert any(m.startswith("Error refreshing ERP stock data") for m in caplog.messages)
    await clock.advance(300)
    assert [r.status for r in h.runs("erp_stock")] == [RunStatus.FAILED, RunStatus.SUCCEEDED]
    await h.stop()


@pytest.mark.parametrize(
    ("retention", "days"), [({}, 365), ({"retentions": {"sales_data": 180}}, 180)]
)
async def test_sales_window_follows_retention(
    tmp_path: Path, clock: FakeClock, retention: dict[str, dict[str, int]], days: int
) -> None:
    """Sales are asked for [today - SalesHistoryRetentionDays, today], 365 by default."""
    sales = StaticSource("sales_data", sales_in)
    h = build(tmp_path / "c.db", clock, {"sales_data": sales}, **retention)
    await h.start()
    today = clock.now().date()
    assert sales.windows == [Window(date_from=today - timedelta(days=days), date_to=today)]
    await h.stop()


async def test_configured_interval_takes_effect(tmp_path: Path, clock: FakeClock) -> None:
    """ErpStockRefreshInterval 00:02:00 runs ERP every two minutes, fixed rate."""
    erp = StaticSource("erp_stock", ERP)
    h = build(
        tmp_path / "c.db",
        clock,
        {"erp_stock": erp},
        intervals={"erp_stock": timedelta(minutes=2)},
    )
    await h.start()
    await clock.advance(10 * 60)
    starts = [r.started_at for r in h.runs("erp_stock")]
    assert len(starts) == 6
    assert {b - a for a, b in itertools.pairwise(starts)} == {timedelta(minutes=2)}
    await h.stop()


async def test_ten_thousand_records_refresh_in_one_run(tmp_path: Path, clock: FakeClock) -> None:
    """10,000 ERP records are stored by a single run."""
    rows = [{"product_code": f"P{i:05d}", "stock": i, "location": "B"} for i in range(10_000)]
    h = build(tmp_path / "c.db", clock, {"erp_stock": StaticSource("erp_stock", rows)})
    await h.start()
    (run,) = h.runs("erp_stock")
    assert (run.status, run.counts.inserted) == (RunStatus.SUCCEEDED, 10_000)
    assert h.store.source_history("erp_stock").record_count == 10_000
    await h.stop()


async def test_never_more_than_max_concurrent_refreshes(tmp_path: Path, clock: FakeClock) -> None:
    """With MaxConcurrentRefreshes=2, ten slow sources never run more than two at once."""
    sources = {s: StaticSource(s, [], clock=clock, delay=30) for s in SOURCE_IDS}
    h = build(tmp_path / "c.db", clock, sources, max_concurrent_refreshes=2)
    peak = 0

    class Watch:
        def on_event(self, _event: Event) -> None:
            nonlocal peak
            peak = max(peak, sum(s.active for s in sources.values()))

    h.service.bus.subscribe(Watch())
    await h.start()
    for _ in range(40):
        await clock.advance(10)
        peak = max(peak, sum(s.active for s in sources.values()))
    assert peak == 2
    assert all(s.calls >= 1 for s in sources.values())
    await h.stop()


async def test_higher_priority_goes_first_when_slots_are_short(
    tmp_path: Path, clock: FakeClock
) -> None:
    """When more sources are due than slots, the higher Priority gets the next slot."""
    sources = {s: StaticSource(s, [], clock=clock, delay=10) for s in SOURCE_IDS}
    h = build(
        tmp_path / "c.db", clock, sources, max_concurrent_refreshes=1, priorities={"suppliers": 10}
    )
    await h.start()
    await clock.advance(200)
    order = [r.source for r in sorted(h.runs(), key=lambda r: r.started_at or r.queued_at)]
    assert order[1] == "suppliers"  # the first took the free slot before anyone queued
    await h.stop()


async def test_many_cycles_do_not_grow_memory(tmp_path: Path, clock: FakeClock) -> None:
    """Two hundred refresh cycles of changing data leave memory flat (no per-run leak)."""
    cycle = 0

    def moving(_window: Window | None) -> list[dict[str, object]]:
        # A few stock levels move each cycle, as in a real shop.
        return [
            {"product_code": f"P{i:03d}", "stock": i + (cycle if i % 50 == cycle % 50 else 0)}
            for i in range(500)
        ]

    h = build(
        tmp_path / "c.db",
        clock,
        {"erp_stock": StaticSource("erp_stock", moving)},
        intervals={"erp_stock": timedelta(seconds=1)},
    )
    await h.start()

    async def cycles(n: int) -> None:
        nonlocal cycle
        for _ in range(n):
            cycle += 1
            await clock.advance(1)
            await h.catalog.get(f"P{cycle % 500:03d}")

    await cycles(50)  # warm up caches and the fingerprint index
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    await cycles(200)
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert len(h.runs("erp_stock")) > 250
    assert grown < 500_000, f"memory grew by {grown} bytes over 200 cycles"
    await h.stop()


async def test_temporary_failures_are_retried_and_recovered(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Two connection errors are retried after about 2 s and 4 s; the third attempt wins."""
    caplog.set_level(logging.INFO, "catalog_refresher")
    failures = [SourceConnectionError("refused"), SourceConnectionError("refused")]
    erp = StaticSource("erp_stock", ERP, failures=failures)
    h = build(tmp_path / "c.db", clock, {"erp_stock": erp})
    await h.start()
    await clock.advance(8)
    (run,) = h.runs("erp_stock")
    assert (run.status, run.attempts) == (RunStatus.SUCCEEDED, 3)
    assert run.started_at
    assert run.finished_at
    waited = (run.finished_at - run.started_at).total_seconds()
    assert 6.0 <= waited <= 7.0  # 2 s + 4 s, plus up to a quarter second of jitter each
    assert [m for m in caplog.messages if m.startswith("Retry")] == [
        "Retry 1/3 for erp_stock: refused",
        "Retry 2/3 for erp_stock: refused",
    ]
    await h.stop()


async def test_malformed_payload_is_not_retried(tmp_path: Path, clock: FakeClock) -> None:
    """A payload that is not JSON fails the run at once, with one attempt."""
    erp = StaticSource("erp_stock", ERP)

    async def broken(window: Window | None, state: object = None) -> object:
        from catalog_refresher.sources.base import Payload

        erp.windows.append(window)
        return Payload(pages=[b"<html>oops</html>"])

    erp.fetch = broken  # type: ignore[method-assign]
    h = build(tmp_path / "c.db", clock, {"erp_stock": erp})
    await h.start()
    (run,) = h.runs("erp_stock")
    assert (run.status, run.attempts, run.error_type) == (RunStatus.FAILED, 1, "invalid_payload")
    await h.stop()


async def test_circuit_opens_after_threshold_and_closes_after_success(
    tmp_path: Path, clock: FakeClock
) -> None:
    """Five failed runs open the circuit; after a minute a probe succeeds and closes it."""
    erp = StaticSource("erp_stock", ERP, failures=[SourceStatusError(400, "u")] * 5)
    h = build(
        tmp_path / "c.db",
        clock,
        {"erp_stock": erp},
        intervals={"erp_stock": timedelta(seconds=20)},
    )
    await h.start()
    await clock.advance(4 * 20)
    assert [r.status for r in h.runs("erp_stock")] == [RunStatus.FAILED] * 5
    assert h.service.circuit("erp_stock") is CircuitState.OPEN
    await clock.advance(20)
    assert h.runs("erp_stock")[-1].status is RunStatus.SKIPPED
    assert erp.calls == 5  # not called while open
    await clock.advance(40)  # one minute after the last failure: half-open, probe runs
    assert h.runs("erp_stock")[-1].status is RunStatus.SUCCEEDED
    assert h.service.circuit("erp_stock") is CircuitState.CLOSED
    await h.stop()


async def test_run_exceeding_refresh_timeout_is_timed_out(tmp_path: Path, clock: FakeClock) -> None:
    """A fetch that outlasts RefreshTimeout ends the run as timed_out and changes nothing."""
    erp = StaticSource("erp_stock", ERP, clock=clock, delay=700)
    h = build(tmp_path / "c.db", clock, {"erp_stock": erp})
    await h.start()
    await clock.advance(600)
    run = h.runs("erp_stock")[0]
    assert run.status is RunStatus.TIMED_OUT
    assert run.finished_at is not None
    assert run.started_at is not None
    assert run.finished_at - run.started_at == timedelta(minutes=10)
    assert await h.catalog.get("TEST-001") is None
    await h.stop()


async def test_backup_serves_when_primary_fails(tmp_path: Path, clock: FakeClock) -> None:
    """When the primary keeps failing, the backup's data is applied and the run says so."""
    primary = StaticSource("erp_stock", [], failures=[SourceStatusError(503, "u")] * 3)
    backup = StaticSource("erp_stock", ERP)
    h = build(tmp_path / "c.db", clock, {"erp_stock": primary}, backups={"erp_stock": backup})
    await h.start()
    await clock.advance(10)
    (run,) = h.runs("erp_stock")
    assert (run.status, run.used_backup, run.attempts) == (RunStatus.SUCCEEDED, True, 4)
    product = await h.catalog.get("TEST-001")
    assert product is not None
    assert product.stock.erp == 100
    await h.stop()


async def test_empty_snapshot_is_rejected_and_data_stays(tmp_path: Path, clock: FakeClock) -> None:
    """An empty ERP snapshot after a good one is rejected; the previous stock stays served."""
    erp = StaticSource("erp_stock", ERP)
    h = build(tmp_path / "c.db", clock, {"erp_stock": erp})
    await h.start()
    erp.records = []
    await clock.advance(300)
    assert [r.status for r in h.runs("erp_stock")] == [RunStatus.SUCCEEDED, RunStatus.REJECTED]
    product = await h.catalog.get("TEST-001")
    assert product is not None
    assert product.stock.erp == 100
    forced = await h.service.refresh("erp_stock", force=True)
    assert (forced.status, forced.counts.deleted) == (RunStatus.SUCCEEDED, 1)
    assert await h.catalog.get("TEST-001") is None
    await h.stop()


async def test_invalid_records_are_counted_and_skipped(tmp_path: Path, clock: FakeClock) -> None:
    """Invalid records are counted with their reasons; the valid ones are stored."""
    rows = [*ERP, {"product_code": "", "stock": 1}, {"product_code": "X", "stock": "lots"}]
    h = build(tmp_path / "c.db", clock, {"erp_stock": StaticSource("erp_stock", rows)})
    await h.start()
    (run,) = h.runs("erp_stock")
    assert (run.status, run.counts.fetched, run.counts.invalid, run.counts.inserted) == (
        RunStatus.SUCCEEDED,
        3,
        2,
        1,
    )
    assert len(run.invalid_reasons) == 2
    assert "product_code is empty" in run.invalid_reasons[0]
    await h.stop()


async def test_an_all_invalid_run_says_why_in_its_error_and_log_line(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Every record invalid: the rejected run's error and the log line show the first reasons."""
    caplog.set_level(logging.INFO, "catalog_refresher")
    rows = [{"product_code": "A"}, {"product_code": "B", "stock": "lots"}]
    h = build(tmp_path / "c.db", clock, {"erp_stock": StaticSource("erp_stock", rows)})
    await h.start()
    (run,) = h.runs("erp_stock")
    assert run.status is RunStatus.REJECTED
    assert run.error == (
        "every record (2) was invalid: record 0: Object missing required field `stock`;"
        " record 1: Expected `float`, got `str` - at `$.stock`"
    )
    assert f"Rejected ERP stock refresh: {run.error}" in caplog.messages
    await h.stop()


async def test_data_and_runs_survive_a_restart(tmp_path: Path, clock: FakeClock) -> None:
    """After a restart the last good data is served at once and a source not yet due waits."""
    erp = StaticSource("erp_stock", ERP)
    first = build(tmp_path / "c.db", clock, {"erp_stock": erp})
    await first.start()
    await first.stop()
    first.store.close()
    await clock.advance(60)
    second = build(tmp_path / "c.db", clock, {"erp_stock": erp})
    product = await second.catalog.get("TEST-001")
    assert product is not None
    assert product.stock.erp == 100
    await second.start()
    assert erp.calls == 1  # last run started a minute ago: not due for four more
    (first_run,) = second.runs("erp_stock")
    assert first_run.started_at is not None
    assert second.service.next_run_at["erp_stock"] == first_run.started_at + timedelta(minutes=5)
    await clock.advance(240)
    assert erp.calls == 2
    assert len(second.runs("erp_stock")) == 2
    await second.stop()


async def test_retention_purges_old_history(tmp_path: Path, clock: FakeClock) -> None:
    """History older than the retention window is purged, even while the source is failing."""
    today = clock.now().date()
    old_day = (today - timedelta(days=100)).isoformat()
    consumed = StaticSource(
        "consumed_materials", [{"product_code": "P1", "date": old_day, "quantity": 3}]
    )
    h = build(tmp_path / "c.db", clock, {"consumed_materials": consumed})
    await h.start()
    assert h.store.source_history("consumed_materials").record_count == 1
    await h.stop()
    h.store.close()
    consumed.failures = [SourceStatusError(500, "u")] * 100
    shorter = build(
        tmp_path / "c.db",
        clock,
        {"consumed_materials": consumed},
        retentions={"consumed_materials": 30},
    )
    await shorter.start()
    assert shorter.store.source_history("consumed_materials").record_count == 0
    assert await shorter.catalog.get("P1") is None
    await shorter.stop()


async def test_manual_refresh_joins_the_run_in_flight(tmp_path: Path, clock: FakeClock) -> None:
    """A manual refresh while a scheduled run is in flight returns that run; no second one."""
    erp = StaticSource("erp_stock", ERP, clock=clock, delay=30)
    h = build(tmp_path / "c.db", clock, {"erp_stock": erp})
    await h.start()
    in_flight = h.service.in_flight("erp_stock")
    handle = await h.service.submit("erp_stock")
    assert in_flight is not None
    assert handle.run.id == in_flight.id
    await clock.advance(30)
    assert len(h.runs("erp_stock")) == 1
    assert erp.calls == 1
    await h.stop()


async def test_shutdown_gives_grace_then_cancels(tmp_path: Path, clock: FakeClock) -> None:
    """Stopping waits ShutdownGracePeriod for runs in flight, then records them cancelled."""
    erp = StaticSource("erp_stock", ERP, clock=clock, delay=120)
    quick = StaticSource("eshop_stock", ESHOP, clock=clock, delay=10)
    h = build(tmp_path / "c.db", clock, {"erp_stock": erp, "eshop_stock": quick})
    await h.start()
    stopping = __import__("asyncio").create_task(h.service.stop())
    await clock.advance(30)
    await stopping
    statuses = {r.source: r.status for r in h.runs()}
    assert statuses == {"erp_stock": RunStatus.CANCELLED, "eshop_stock": RunStatus.SUCCEEDED}
    assert await h.catalog.get("TEST-001") is not None  # e-shop data committed within the grace
    assert (await h.catalog.get("TEST-001")).stock.erp is None  # type: ignore[union-attr]


async def test_sales_window_dates(tmp_path: Path) -> None:
    """At 00:30 UTC on 1 March the default sales window starts 365 days earlier."""
    from datetime import UTC, datetime

    clock = FakeClock(datetime(2027, 3, 1, 0, 30, tzinfo=UTC))
    sales = StaticSource("sales_data", [])
    h = build(tmp_path / "c.db", clock, {"sales_data": sales})
    await h.start()
    assert sales.windows == [Window(date_from=date(2026, 3, 1), date_to=date(2027, 3, 1))]
    await h.stop()


class _UnreadableAtFirst(SqliteStore):
    """A real SQLite store whose history reads fail ``failures`` times (a database restarting)."""

    failures = 0

    def source_history(self, source: str) -> SourceHistory:
        if self.failures:
            self.failures -= 1
            raise StoreError("SQLite read failed: database is locked")
        return super().source_history(source)


async def test_a_loop_outlives_a_store_unreadable_at_its_start(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A loop whose first history read fails asks again a few seconds later and runs its source."""
    store = _UnreadableAtFirst(tmp_path / "c.db")
    h = build(tmp_path / "c.db", clock, {"erp_stock": StaticSource("erp_stock", ERP)}, store=store)
    await h.service.prepare()
    store.failures = 1
    h.service.start()
    await clock.settle()
    assert h.runs("erp_stock") == []
    assert "cannot read the history of erp_stock; retrying" in caplog.messages
    await clock.advance(5)
    assert [r.status for r in h.runs("erp_stock")] == [RunStatus.SUCCEEDED]
    await h.stop()


class _TruncatedBody:
    """A source whose body ends in the middle of its JSON."""

    source_id = "erp_stock"

    async def fetch(self, window: Window | None, state: object = None) -> Payload:
        return Payload(pages=[b'[{"product_code": "A", "stock": 1'], origin="test")

    async def aclose(self) -> None:
        return None


async def test_a_runs_error_says_its_cause_once(tmp_path: Path, clock: FakeClock) -> None:
    """A body cut short fails the run with msgspec's reason in its error once, not twice."""
    h = build(tmp_path / "c.db", clock, {"erp_stock": _TruncatedBody()})
    await h.service.prepare()
    run = await h.service.refresh("erp_stock")
    assert run.status is RunStatus.FAILED
    assert run.error == "the payload is not valid JSON: Input data was truncated"


async def test_at_shutdown_queued_runs_are_cancelled_and_never_call_their_source(
    tmp_path: Path, clock: FakeClock
) -> None:
    """One slot: ERP runs, e-shop waits. Stopping cancels e-shop at once, without a fetch, lets
    ERP commit within the grace period, and refuses a refresh asked for meanwhile."""
    erp = StaticSource("erp_stock", ERP, clock=clock, delay=10)
    eshop = StaticSource("eshop_stock", ESHOP, clock=clock, delay=10)
    h = build(
        tmp_path / "c.db",
        clock,
        {"erp_stock": erp, "eshop_stock": eshop},
        priorities={"erp_stock": 1},
        max_concurrent_refreshes=1,
    )
    await h.start()
    assert (erp.active, eshop.calls) == (1, 0)
    stopping = asyncio.create_task(h.service.stop())
    await clock.settle()
    (queued,) = h.runs("eshop_stock")
    assert queued.status is RunStatus.CANCELLED
    assert queued.error == "cancelled: the service stopped before it started"
    with pytest.raises(ServiceStopping):
        await h.service.submit("eshop_stock")
    await clock.advance(10)
    await stopping
    assert eshop.calls == 0
    assert [run.status for run in h.runs("erp_stock")] == [RunStatus.SUCCEEDED]
