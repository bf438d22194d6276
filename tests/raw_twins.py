"""Twin pipelines for the raw index's tests (``refresh/raw_index.py``): the same runs
through a pipeline kept across runs (it keeps a raw index after its first full run) and
through a fresh pipeline per run (it decodes and diffs every record against the store's
rows, as after a start). Counts, reasons and stored rows must agree after every run."""

from __future__ import annotations

import json
import random
from typing import Any

from catalog_refresher.config.settings import FilterCondition
from catalog_refresher.domain.runs import RunCounts
from catalog_refresher.refresh.pipeline import Job, Pipeline, Processed
from catalog_refresher.refresh.raw_index import RawIndex
from catalog_refresher.sources.base import Payload
from catalog_refresher.store.base import Store
from tests.helpers import T0, start_run

SOURCE = "erp_stock"


def erp(code: str, stock: Any = 1, **more: Any) -> dict[str, Any]:
    """An ERP record of ``code`` (``stock`` may be made invalid; ``more`` adds fields)."""
    return {"product_code": code, "product_name": f"Name {code}", "stock": stock, **more}


def pages(*records: list[dict[str, Any]], filters: tuple[FilterCondition, ...] = ()) -> Payload:
    """One page per list, each a bare JSON array written as a source writes it."""
    return Payload(pages=[json.dumps(page).encode() for page in records], filters=filters)


class Twins:
    """The same runs through a kept pipeline on ``kept`` and a fresh one per run on ``fresh``."""

    def __init__(self, kept: Store, fresh: Store) -> None:
        self.kept_store, self.fresh_store = kept, fresh
        self.kept = Pipeline(self.kept_store, now=lambda: T0)

    def run(self, payload: Payload, **job: Any) -> tuple[Processed, Processed]:
        """``payload`` through both; ``job``: ``Job`` fields other than the defaults."""
        kept = self.kept.process(self._job(self.kept_store, **job), payload)
        fresh = Pipeline(self.fresh_store, now=lambda: T0).process(
            self._job(self.fresh_store, **job), payload
        )
        assert kept.outcome.status == fresh.outcome.status
        assert kept.outcome.error == fresh.outcome.error
        assert kept.preview == fresh.preview
        assert counts_of(kept) == counts_of(fresh)
        assert kept.outcome.invalid_reasons == fresh.outcome.invalid_reasons
        assert kept.valid == fresh.valid
        assert self.rows(self.kept_store) == self.rows(self.fresh_store)
        return kept, fresh

    @staticmethod
    def rows(store: Store) -> dict[str, bytes]:
        return dict(store.iter_rows(SOURCE))

    def raw_index(self) -> RawIndex | None:
        index = self.kept._indexes.get(SOURCE)
        return index if isinstance(index, RawIndex) else None

    @staticmethod
    def _job(store: Store, **options: Any) -> Job:
        run = start_run(store, SOURCE)
        # Forced by default: the guard is not what most runs compare.
        fields: dict[str, Any] = {"forced": True, "max_delete_share": 1.0, **options}
        return Job(
            run_id=run.id,
            source=SOURCE,
            window=None,
            attempts=1,
            used_backup=False,
            **fields,
        )


def counts_of(processed: Processed) -> RunCounts:
    """The run's counts (fetched, invalid, inserted, updated, deleted)."""
    return processed.outcome.counts


def random_runs(twins: Twins, runs: int, seed: int) -> None:
    """``runs`` runs of random changes (updates, unread-field changes, inserts, deletes,
    invalid records, duplicates, two pages), each checked by ``Twins.run``."""
    rng = random.Random(seed)
    current = {f"P{i:03d}": erp(f"P{i:03d}", i) for i in range(200)}
    for _ in range(runs):
        for code in rng.sample(sorted(current), 10):
            roll = rng.random()
            if roll < 0.4:
                current[code] = erp(code, rng.randrange(100))
            elif roll < 0.6:
                current[code] = {**current[code], "note": rng.randrange(5)}
            else:
                del current[code]
        for _ in range(5):
            code = f"N{rng.randrange(1000):03d}"
            current[code] = erp(code, rng.randrange(100))
        sent = list(current.values())
        if rng.random() < 0.3:
            sent.insert(rng.randrange(len(sent)), erp("BAD", "lots"))
        if rng.random() < 0.3:
            sent.insert(rng.randrange(len(sent)), rng.choice(sent))
        if rng.random() < 0.2:
            sent.insert(rng.randrange(len(sent)), erp(rng.choice(sorted(current)), 777))
        cut = rng.randrange(len(sent))
        twins.run(pages(sent[:cut], sent[cut:]))
