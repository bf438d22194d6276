"""The pipeline in a real worker process, against a real SQLite file."""

from __future__ import annotations

import multiprocessing
import os
import signal
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from catalog_refresher.domain.runs import RunOutcome, RunStatus, Trigger
from catalog_refresher.domain.window import Window
from catalog_refresher.errors import RunFenced
from catalog_refresher.refresh.pipeline import Job
from catalog_refresher.refresh.workers import ORPHANED_EXIT, WorkerPool, _die_with
from catalog_refresher.sources.base import Payload
from catalog_refresher.store.open import open_store
from catalog_refresher.testing import FakeClock
from tests.service_harness import build

ROWS = [{"product_code": f"P{i}", "stock": i, "location": "A1"} for i in range(100)]


class _NotJson:
    """A source whose body is an HTML error page, not JSON."""

    source_id = "erp_stock"

    async def fetch(self, window: Window | None, state: object = None) -> Payload:
        return Payload(pages=[b"<html><body>Service Unavailable</body></html>"], origin="test")

    async def aclose(self) -> None:
        return None


def job_for(run_id: int) -> Job:
    return Job(
        run_id=run_id,
        source="erp_stock",
        forced=False,
        window=None,
        max_delete_share=0.5,
        attempts=1,
        used_backup=False,
    )


async def test_worker_applies_and_keeps_its_index(tmp_path: Path) -> None:
    """A worker process applies a run; a second run with one change writes only that row."""
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    store = open_store(url)
    pool = WorkerPool(url, workers=1)
    try:
        for expected_inserted, expected_updated, rows in (
            (100, 0, ROWS),
            (0, 1, [*ROWS[:-1], {**ROWS[-1], "stock": 1000}]),
        ):
            run = store.create_run(
                source="erp_stock", trigger=Trigger.MANUAL, forced=False, at=datetime.now(UTC)
            )
            store.mark_running(run.id, at=datetime.now(UTC))
            payload = Payload(pages=[msgspec.json.encode(rows)])
            processed = await pool(job_for(run.id), payload)
            assert processed.outcome.status is RunStatus.SUCCEEDED
            assert processed.applied is not None
            recorded = store.get_run(run.id)
            assert recorded is not None
            assert recorded.status is RunStatus.SUCCEEDED
            assert (recorded.counts.inserted, recorded.counts.updated) == (
                expected_inserted,
                expected_updated,
            )
    finally:
        pool.shutdown()
        store.close()


async def test_worker_refuses_a_run_finished_meanwhile(tmp_path: Path) -> None:
    """A run the main process already ended (timed out) is fenced off in the worker."""
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    store = open_store(url)
    pool = WorkerPool(url, workers=1)
    try:
        run = store.create_run(
            source="erp_stock", trigger=Trigger.MANUAL, forced=False, at=datetime.now(UTC)
        )
        store.finish_run(
            run.id, RunOutcome(status=RunStatus.TIMED_OUT, finished_at=datetime.now(UTC))
        )
        payload = Payload(pages=[msgspec.json.encode(ROWS)])
        with pytest.raises(RunFenced):
            await pool(job_for(run.id), payload)
        assert store.source_history("erp_stock").record_count == 0
    finally:
        pool.shutdown()
        store.close()


async def test_an_error_from_a_worker_is_one_line_without_its_traceback(tmp_path: Path) -> None:
    """A body that is not JSON fails in the worker; the run's error names the cause on one
    line, without the worker's traceback (which concurrent.futures chains to it)."""
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    store = open_store(url)
    pool = WorkerPool(url, workers=1)
    service = build(
        tmp_path / "catalog.db", FakeClock(), {"erp_stock": _NotJson()}, store=store, process=pool
    )
    try:
        await service.service.prepare()
        run = await service.service.refresh("erp_stock")
    finally:
        pool.shutdown()
        store.close()
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert run.error.startswith("the payload is not valid JSON")
    assert "\n" not in run.error
    assert "Traceback" not in run.error
    assert ".py" not in run.error


def _orphan_guarded(parent: int, *, signal_self: bool) -> None:
    """In a spawned process: the worker's guard for ``parent``, then a SIGTERM to itself."""
    _die_with(parent)
    if signal_self:
        os.kill(os.getpid(), signal.SIGTERM)


@pytest.mark.parametrize(
    ("expected", "code"),
    [("ours", 0), ("another", ORPHANED_EXIT)],
    ids=["parent-alive", "parent-already-gone"],
)
def test_the_worker_guard_ends_it_only_when_its_parent_is_gone(expected: str, code: int) -> None:
    """With its parent alive a worker ignores SIGTERM (the group's stop is the service's
    to decide); one whose parent is not the service any more (it died before the death
    signal was armed) ends at once."""
    parent = os.getpid() if expected == "ours" else os.getpid() + 1_000_000
    context = multiprocessing.get_context("spawn")
    child = context.Process(
        target=_orphan_guarded, args=(parent,), kwargs={"signal_self": expected == "ours"}
    )
    child.start()
    child.join(timeout=60)
    assert child.exitcode == code
