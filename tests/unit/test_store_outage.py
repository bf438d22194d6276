"""A store that refuses writes (a full disk) is a counted failure, told by health.

The fault matrix's disk_full cell (tests/e2e/test_fault_matrix.py) found a full disk
invisible: every claim failed as a ``refresh loop error`` traceback, so no run was
recorded; the run in flight could not record its end ("Task exception was never
retrieved") and stayed ``running``; health and the metrics went on showing the last
success. The disk here is a real SQLite file whose writes fail with SQLite's own
``database or disk is full`` once the test says the disk is full (the edge we do not own).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest

from catalog_refresher.control import LocalControl
from catalog_refresher.domain.runs import RunStatus
from catalog_refresher.observe.metrics import Metrics
from catalog_refresher.refresh.runner import inline
from catalog_refresher.status import Health
from catalog_refresher.store.sqlite import SqliteStore
from catalog_refresher.testing import FakeClock, StaticSource
from tests.service_harness import Harness, build

ERP = [{"product_code": "P-1", "product_name": "One", "stock": 1}]
FULL = "database or disk is full"


class FullDisk(SqliteStore):
    """A real SQLite store on a disk that fills up: once ``fill(after=n)`` is called, the
    next ``n`` write transactions are taken and every later one fails as SQLite's would."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.room: int | None = None

    def fill(self, after: int = 0) -> None:
        self.room = after

    def free(self) -> None:
        self.room = None

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with super()._write() as conn:
            if self.room is not None:
                if self.room <= 0:
                    raise sqlite3.OperationalError(FULL)
                self.room -= 1
            yield conn


def failures(metrics: Metrics, error_type: str = "store") -> float:
    value = metrics.registry.get_sample_value(
        "catalog_refresh_failure_total", {"data_type": "erp_stock", "error_type": error_type}
    )
    return value or 0.0


async def harness(tmp_path: Path) -> tuple[Harness, FullDisk, Metrics, LocalControl]:
    clock = FakeClock()
    store = FullDisk(tmp_path / "c.db")
    erp = StaticSource("erp_stock", ERP, clock=clock)
    h = build(
        tmp_path / "c.db",
        clock,
        {"erp_stock": erp},
        store=store,
        intervals={"erp_stock": timedelta(seconds=10)},
    )
    metrics = Metrics(sources=["erp_stock"])
    h.service.bus.subscribe(metrics)
    control = LocalControl(h.service, store, clock, inline)
    await h.service.prepare()
    await h.service.refresh("erp_stock")  # the last good data
    return h, store, metrics, control


async def test_claims_the_full_store_refuses_are_counted_and_told(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """With the disk full, each scheduled claim that fails is a ``store`` failure in the
    metrics, one ERROR line naming the cause (no traceback), and health and /api/sources
    say the store cannot be written; once the disk has room, runs succeed and it clears."""
    h, store, metrics, control = await harness(tmp_path)
    store.fill()
    caplog.set_level(logging.DEBUG, logger="catalog_refresher")
    await h.start()
    await h.clock.advance(10)  # the next slot's claim fails
    await h.clock.advance(10)  # and the one after it
    assert failures(metrics) == 2
    assert [r.status for r in h.runs("erp_stock")] == [RunStatus.SUCCEEDED]
    loud = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    claim = (
        "The store cannot be written: a run of erp_stock was not recorded"
        f" (SQLite write failed: {FULL})"
    )
    assert loud.count(claim) == 1  # the second is at debug level
    # (housekeeping's writes fail too: "refresh loop error: ..." one line each)
    assert all(FULL in line and "\n" not in line for line in loud), loud
    assert all(r.exc_info is None for r in caplog.records if r.levelno > logging.DEBUG)
    report = await control.health()
    assert report.status is Health.DEGRADED
    assert report.entries["erp_stock"].status is Health.DEGRADED
    refresh = report.entries["catalog-refresh"]
    assert refresh.status is Health.DEGRADED
    assert "the store cannot be written since" in refresh.description
    assert FULL in refresh.description
    erp = next(s for s in await control.sources() if s.id == "erp_stock")
    assert erp.last_status is RunStatus.FAILED
    assert erp.last_error == f"the store cannot be written: SQLite write failed: {FULL}"
    store.free()
    await h.clock.advance(10)
    assert [r.status for r in h.runs("erp_stock")] == [RunStatus.SUCCEEDED] * 2
    assert (await control.health()).status is Health.HEALTHY
    await h.stop()


async def test_a_run_whose_end_the_full_store_refuses_is_recorded_once_it_has_room(
    tmp_path: Path,
) -> None:
    """The run's claim and start are written, then the disk is full: its apply rolls back,
    its end is refused and retried (counted once, the run never raising out of its task),
    and once the disk has room it is recorded failed with the cause; the data stays the
    last good data."""
    h, store, metrics, control = await harness(tmp_path)
    store.fill(after=2)  # the claim and the start of the run
    handle = await h.service.submit("erp_stock")
    await h.clock.settle()
    await h.clock.advance(3)  # three retries of its end, all refused
    assert not handle.done.done()
    assert h.store.get_run(handle.run.id).status is RunStatus.RUNNING  # type: ignore[union-attr]
    assert failures(metrics) == 1
    assert (await control.health()).entries["catalog-refresh"].status is Health.DEGRADED
    store.free()
    await h.clock.advance(1)
    run = await asyncio.wait_for(handle.done, 5)
    assert run.status is RunStatus.FAILED
    assert run.error_type == "store"
    assert run.error == f"SQLite write failed: {FULL}"
    assert failures(metrics) == 2  # the refused end, and the run failed by the store
    assert [r.status for r in h.runs("erp_stock")] == [RunStatus.SUCCEEDED, RunStatus.FAILED]
    product = await h.catalog.get("P-1")
    assert product is not None
    assert product.stock is not None
