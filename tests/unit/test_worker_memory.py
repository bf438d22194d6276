"""What a refresh worker does to give back the memory of a run (issue 11)."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalog_refresher.errors import RunFenced
from catalog_refresher.refresh import workers
from catalog_refresher.refresh.pipeline import Job, Pipeline
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


def test_compacting_an_index_keeps_its_fingerprints_in_keys_of_its_own(tmp_path: Path) -> None:
    """After ``compact`` the index holds equal keys and the same fingerprints, but no key is
    the run's own string object any more (which would keep the run's memory resident)."""
    store = SqliteStore(tmp_path / "catalog.db")
    store.migrate()
    pipeline = Pipeline(store, now=lambda: T0)
    batch = payload([record("erp_stock", f"P-{n}") for n in range(50)])
    pipeline.process(_job(start_run(store, "erp_stock").id), batch)
    index = pipeline._indexes["erp_stock"]
    before = dict(index.fingerprints)
    pipeline.compact("erp_stock")
    assert index.fingerprints == before
    assert all(new is not old for new, old in zip(index.fingerprints, before, strict=True))
    pipeline.compact("lots")  # a source without an index: nothing to do, no error
    assert "lots" not in pipeline._indexes
    store.close()


def test_a_worker_job_ends_with_the_memory_handed_back(tmp_path: Path, monkeypatch: object) -> None:
    """``_process`` compacts the source's index and trims the heap after every job, also
    when the job fails."""
    store = SqliteStore(tmp_path / "catalog.db")
    store.migrate()
    calls: list[str] = []
    pipeline = Pipeline(store, now=lambda: T0)
    monkeypatch.setattr(pipeline, "compact", lambda source: calls.append(f"compact {source}"))
    monkeypatch.setattr(workers, "release_memory", lambda: calls.append("release"))
    monkeypatch.setattr(workers, "_pipeline", pipeline)
    processed = workers._process(_job(start_run(store, "erp_stock").id), payload([]))
    assert processed.outcome.counts.fetched == 0
    assert calls == ["compact erp_stock", "release"]
    with pytest.raises(RunFenced):  # no run 10000 is running
        workers._process(_job(10_000), payload([record("erp_stock", "P-1")]))
    assert calls[-2:] == ["compact erp_stock", "release"]
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
