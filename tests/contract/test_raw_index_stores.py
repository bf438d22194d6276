"""The raw index against every Store implementation: a pipeline that skips the records
sent again as the same bytes publishes what a pipeline decoding every record publishes
(``tests/raw_twins.py``), its row counts and keyed reads taken from the store under test."""

from __future__ import annotations

from pathlib import Path

from catalog_refresher.store.base import Store
from catalog_refresher.store.sqlite import SqliteStore
from tests.raw_twins import Twins, random_runs


def test_random_snapshots_publish_what_a_whole_decode_publishes(
    store: Store, tmp_path: Path
) -> None:
    """Twenty runs of random changes: the kept pipeline (on the store under test) and a
    fresh one per run (on SQLite) agree after each; the kept one used its raw index."""
    fresh = SqliteStore(tmp_path / "fresh.db")
    fresh.migrate()
    twins = Twins(store, fresh)
    random_runs(twins, runs=20, seed=5)
    assert twins.raw_index() is not None
    fresh.close()
