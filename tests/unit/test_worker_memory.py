"""What a refresh worker does to give back the memory of a run (issue 11)."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalog_refresher.domain.records import ErpStock
from catalog_refresher.domain.specs import SPECS
from catalog_refresher.errors import RunFenced
from catalog_refresher.refresh import diff as diffing
from catalog_refresher.refresh import workers
from catalog_refresher.refresh.pipeline import Job, Pipeline
from catalog_refresher.refresh.validate import Batch
from catalog_refresher.store.sqlite import SqliteStore
from tests.helpers import T0, payload, record, start_run


def _job(run_id: int) -> Job:
    return Job(
        run_id=run_id,
        source="erp_stock",
        forced=False,
        window=None,
        max_delete_share=0.5,
        attempts=1,
        used_backup=False,
    )


def test_the_index_keeps_copies_of_new_keys_not_the_runs_strings() -> None:
    """A key a run inserts is held by the index as a string of its own, equal to the batch's
    but not the batch's object (which would keep the run's freed memory resident); its
    fingerprint is the record's."""
    batch = Batch(rows={f"P-{n}": ErpStock(product_code=f"P-{n}", stock=n) for n in range(50)})
    found = diffing.diff(SPECS["erp_stock"], diffing.FingerprintIndex(version=0), batch, None)
    index = diffing.FingerprintIndex(version=0)
    index.update(found, batch, 1)
    assert index.fingerprints == {key: hash(record) for key, record in batch.rows.items()}
    batch_keys = {id(key) for key in batch.rows}
    assert not any(id(key) in batch_keys for key in index.fingerprints)
    assert index.version == 1


def test_a_worker_job_ends_with_the_memory_handed_back(tmp_path: Path, monkeypatch: object) -> None:
    """``_process`` gives the heap back after every job, also when the job fails."""
    store = SqliteStore(tmp_path / "catalog.db")
    store.migrate()
    calls: list[str] = []
    pipeline = Pipeline(store, now=lambda: T0)
    monkeypatch.setattr(workers, "release_memory", lambda: calls.append("release"))
    monkeypatch.setattr(workers, "_pipeline", pipeline)
    processed = workers._process(_job(start_run(store, "erp_stock").id), payload([]))
    assert processed.outcome.counts.fetched == 0
    assert calls == ["release"]
    with pytest.raises(RunFenced):  # no run 10000 is running
        workers._process(_job(10_000), payload([record("erp_stock", "P-1")]))
    assert calls == ["release", "release"]
    store.close()


def test_releasing_memory_is_safe_to_call_anywhere() -> None:
    """``release_memory`` runs in any process (glibc's ``malloc_trim`` where there is one)."""
    workers.release_memory()
    assert workers._trim is None or callable(workers._trim)


def test_a_store_opened_for_a_worker_does_not_map_its_file(tmp_path: Path) -> None:
    """``memory_map=False``: the connections read with ``mmap_size`` 0, so pages an apply
    touched do not stay counted in the worker's resident size; the default maps 1 GiB."""
    mapped = SqliteStore(tmp_path / "a.db")
    plain = SqliteStore(tmp_path / "b.db", memory_map=False)
    assert mapped._writer.execute("PRAGMA mmap_size").fetchone()[0] == 1 << 30
    assert plain._writer.execute("PRAGMA mmap_size").fetchone()[0] == 0
    mapped.close()
    plain.close()
