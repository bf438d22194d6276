"""Incremental runs against every Store implementation: the cursor lives in the store
and a source read incrementally ends with the rows a full read gives."""

from __future__ import annotations

from pathlib import Path

from catalog_refresher.domain.runs import RunMode, RunStatus
from catalog_refresher.refresh.pipeline import Pipeline
from catalog_refresher.store.base import RunQuery, Store
from catalog_refresher.store.sqlite import SqliteStore
from tests.helpers import T0
from tests.incremental_world import ErpWorld, refresh


def test_five_incremental_reads_end_with_the_rows_of_a_full_read(
    store: Store, tmp_path: Path
) -> None:
    """Inserts, updates and tombstones between five reads: the store holds exactly the rows
    one full read of the final state gives, and each read after the first was incremental."""
    world = ErpWorld()
    for n in range(20):
        world.put(f"P-{n:02}", n)
    pipeline = Pipeline(store, now=lambda: T0)
    modes = [refresh(store, pipeline, world)[0]]
    for step in range(4):
        world.put(f"N-{step}", 100 + step)  # insert
        world.put(f"P-{step:02}", 500 + step)  # update
        world.remove(f"P-{10 + step:02}")  # tombstone
        mode, processed = refresh(store, pipeline, world)
        modes.append(mode)
        assert processed.outcome.status is RunStatus.SUCCEEDED
        counts = processed.outcome.counts
        assert (counts.inserted, counts.updated, counts.deleted) == (1, 1, 1)
    assert modes == [RunMode.FULL] + [RunMode.INCREMENTAL] * 4

    full = SqliteStore(tmp_path / "full.db")
    full.migrate()
    refresh(full, Pipeline(full, now=lambda: T0), world, incremental=None)
    assert dict(store.iter_rows("erp_stock")) == dict(full.iter_rows("erp_stock"))
    assert len(dict(store.iter_rows("erp_stock"))) == 20
    full.close()


def test_the_cursor_and_validators_are_kept_and_reset_in_the_store(store: Store) -> None:
    """The run's cursor is the largest change time, stored with its data and in the audit
    log; a reset forgets it, so the next run is full."""
    world = ErpWorld()
    world.put("P-1", 1)
    world.put("P-2", 2)
    pipeline = Pipeline(store, now=lambda: T0)
    refresh(store, pipeline, world)
    sync = store.sync_state("erp_stock")
    assert sync.cursor == world.stamp(2)
    assert sync.full_at == T0
    world.put("P-3", 3)
    mode, _processed = refresh(store, pipeline, world)
    assert mode is RunMode.INCREMENTAL
    run = store.get_run(max(r.id for r in store.list_runs(RunQuery())[0]))
    assert run is not None
    assert (run.mode, run.cursor_before, run.cursor_after) == (
        RunMode.INCREMENTAL,
        world.stamp(2),
        world.stamp(3),
    )
    assert store.sync_state("erp_stock").runs_since_full == 1
    store.reset_sync("erp_stock")
    assert store.sync_state("erp_stock").cursor is None
    assert refresh(store, pipeline, world)[0] is RunMode.FULL
