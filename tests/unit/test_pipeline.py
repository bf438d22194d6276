"""The pipeline (validate, diff, guard, apply) on a real SQLite store."""

from __future__ import annotations

import itertools
from datetime import timedelta
from pathlib import Path

from catalog_refresher.domain.runs import RunStatus
from catalog_refresher.refresh.pipeline import Job, Pipeline
from catalog_refresher.store.sqlite import SqliteStore
from tests.helpers import T0, payload, record, start_run


def test_a_run_finishes_when_its_data_is_written_not_when_it_was_ready(tmp_path: Path) -> None:
    """The pipeline reads its clock again after the writes: the run's end and the source's
    last success are the later reading, so no audit entry predates its data."""
    store = SqliteStore(tmp_path / "catalog.db")
    store.migrate()
    run = start_run(store, "erp_stock")
    readings = (T0 + timedelta(seconds=n) for n in itertools.count(1))
    pipeline = Pipeline(store, now=lambda: next(readings))
    job = Job(
        run_id=run.id,
        source="erp_stock",
        forced=False,
        window=None,
        max_delete_share=0.5,
        attempts=1,
        used_backup=False,
    )
    processed = pipeline.process(job, payload([record("erp_stock", "P-1")]))
    recorded = store.get_run(run.id)
    assert recorded is not None
    assert recorded.status is RunStatus.SUCCEEDED
    assert recorded.finished_at is not None
    assert recorded.finished_at > processed.outcome.finished_at
    assert store.source_history("erp_stock").last_success_at == recorded.finished_at
    store.close()
