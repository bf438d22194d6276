"""A first load written as it is read again (``refresh/first_load.py``) against every
Store implementation: it publishes what a pipeline holding the whole batch publishes
(``Pipeline.streams_first_loads = False``), row for row: records, product list and
names, lineage, change feed, versions and their deltas, and the run's counts."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from catalog_refresher.config.settings import FilterCondition, FilterOperator
from catalog_refresher.refresh import first_load
from catalog_refresher.refresh.pipeline import Job, Pipeline, Processed
from catalog_refresher.refresh.raw_index import RawIndex
from catalog_refresher.sources.base import Payload
from catalog_refresher.store.base import Store
from tests.contract.conftest import Opener
from tests.helpers import T0, json_path, start_run
from tests.raw_twins import erp, pages


class Holding(Pipeline):
    """The reference: holds a first load's records whole, as every run did before."""

    streams_first_loads = False


def published(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Everything a run publishes, read back in SQL (same tables in both dialects)."""
    queries = {
        "records": "SELECT source, key, product_code, day, data, run_id FROM records",
        "products": "SELECT code, name FROM products",
        "lineage": "SELECT product_code, source, run_id FROM lineage",
        "changes": "SELECT product_code FROM changes",
        "versions": "SELECT source, run_id, record_count, inserted, updated, deleted FROM versions",
        "deltas": "SELECT source, run_id, key, product_code, before FROM version_changes",
        "state": "SELECT source, data_version, row_count FROM source_state",
    }
    with store._read() as conn:  # type: ignore[attr-defined]
        found = {
            name: sorted(map(tuple, conn.execute(sql).fetchall())) for name, sql in queries.items()
        }
        runs = conn.execute("SELECT id, fetched, inserted, invalid FROM runs").fetchall()
    found["runs"] = sorted(map(tuple, runs))
    return found


class Pair:
    """The same runs through a streaming pipeline and the holding one, each on its store."""

    def __init__(self, opener: Opener) -> None:
        self.streaming_store = opener.open()
        self.holding_store = opener.beside("holding").open()
        self.streaming = Pipeline(self.streaming_store, now=lambda: T0)
        self.holding = Holding(self.holding_store, now=lambda: T0)

    def restart(self) -> None:
        """New pipelines on the same stores: every index is gone."""
        self.streaming = Pipeline(self.streaming_store, now=lambda: T0)
        self.holding = Holding(self.holding_store, now=lambda: T0)

    def run(self, source: str, payload: Payload) -> Processed:
        """``payload`` through both; their answers and what they published agree."""
        streamed = self.streaming.process(self._job(self.streaming_store, source), payload)
        held = self.holding.process(self._job(self.holding_store, source), payload)
        assert streamed.outcome.status == held.outcome.status
        assert streamed.outcome.counts == held.outcome.counts
        assert streamed.outcome.invalid_reasons == held.outcome.invalid_reasons
        assert streamed.valid == held.valid
        assert streamed.applied == held.applied
        assert published(self.streaming_store) == published(self.holding_store)
        return streamed

    @staticmethod
    def _job(store: Store, source: str) -> Job:
        run = start_run(store, source)
        return Job(
            run_id=run.id,
            source=source,
            window=None,
            attempts=1,
            used_backup=False,
            forced=True,
            max_delete_share=1.0,
        )


@pytest.fixture
def pair(opener: Opener) -> Pair:
    return Pair(opener)


def messy_erp(rng: random.Random, count: int) -> list[dict[str, Any]]:
    """ERP records with invalid ones, a key sent twice as other bytes, and as the same."""
    sent: list[Any] = [erp(f"P{i:04d}", rng.randrange(100)) for i in range(count)]
    again = dict(sent[rng.randrange(count)])
    sent.insert(rng.randrange(count), erp("BAD", "lots"))
    sent.insert(rng.randrange(count), [1, 2])
    sent.insert(rng.randrange(count), again)
    sent.insert(rng.randrange(count - 5, count), erp("P0003", 777))  # after P0003
    return sent


def test_a_messy_first_load_publishes_what_a_held_one_does(pair: Pair) -> None:
    """Two pages of ERP records, chunks smaller than a page: invalid records named by
    their place, the last of a duplicate key wins, the same bytes twice count once."""
    sent = messy_erp(random.Random(3), 300)
    processed = pair.run("erp_stock", pages(sent[:170], sent[170:]))
    assert processed.outcome.counts.inserted == 300
    assert processed.outcome.counts.invalid == 4
    assert any("page 2 record" in reason for reason in processed.outcome.invalid_reasons)
    assert json.loads(dict(pair.streaming_store.iter_rows("erp_stock"))["P0003"])["stock"] == 777


def test_chunks_smaller_than_a_page(pair: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
    """Decoding 7 records and storing 5 rows at a time changes nothing published."""
    monkeypatch.setattr(first_load, "CHUNK", 7)
    monkeypatch.setattr("catalog_refresher.store.sql_store.STREAM_CHUNK", 5)
    sent = messy_erp(random.Random(4), 60)
    assert pair.run("erp_stock", pages(sent)).outcome.counts.inserted == 60


def test_a_source_of_many_rows_per_product(pair: Pair) -> None:
    """Lots (two-field keys, several per product, no names): products and lineage are
    found from the rows written, a product with an ERP row keeps the ERP's name."""
    pair.run("erp_stock", pages([erp("P1"), erp("P2")]))
    lots = [{"product_code": f"P{i % 4}", "lot": f"L{i}", "amount": i} for i in range(12)]
    processed = pair.run("lots", pages(lots))
    assert processed.outcome.counts.inserted == 12
    assert processed.applied is not None
    assert processed.applied.products == {"P0", "P1", "P2", "P3"}


def test_a_reload_of_an_emptied_source_keeps_its_delta(pair: Pair) -> None:
    """A source emptied by a run and loaded again after a restart (no raw index): the
    load is a first load (no row stored), but a version exists to go back to, so each
    key's absence is kept."""
    pair.run("erp_stock", pages([erp("P1"), erp("P2")]))
    pair.run("erp_stock", pages([]))
    pair.restart()
    pair.run("erp_stock", pages([erp("P2", 5), erp("P3")]))
    assert published(pair.streaming_store)["deltas"]  # the emptied version's delta


def test_an_answer_of_more_products_than_listed_says_all(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past ``MANY_PRODUCTS`` touched products the apply says "all of them" (``None``)."""
    monkeypatch.setattr("catalog_refresher.store.sql_store.MANY_PRODUCTS", 3)
    monkeypatch.setattr("catalog_refresher.refresh.pipeline.MANY_PRODUCTS", 3)
    processed = pair.run("erp_stock", pages([erp(f"P{i}") for i in range(5)]))
    assert processed.applied is not None
    assert processed.applied.products is None


def test_the_next_run_skips_by_the_raw_index_a_first_load_kept(pair: Pair) -> None:
    """After a streamed first load the next run of the same bytes decodes nothing new."""
    sent = [erp(f"P{i}", i) for i in range(50)]
    pair.run("erp_stock", pages(sent))
    assert isinstance(pair.streaming._indexes["erp_stock"], RawIndex)
    sent[7] = erp("P7", 1000)
    again = pair.run("erp_stock", pages(sent))
    assert again.outcome.counts.updated == 1
    assert again.outcome.counts.inserted == 0


def test_a_filtered_first_load_names_records_by_their_place(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A filter drops records inside chunks: the kept ones are written, the invalid one
    is named by its place in the page, filtered records included (as a whole decode)."""
    monkeypatch.setattr(first_load, "CHUNK", 4)
    only_x = FilterCondition(
        path=json_path("location"), operator=FilterOperator("Equals"), values=("X",)
    )
    sent = [erp(f"P{i}", "bad" if i == 9 else i, location="XY"[i % 2]) for i in range(12)]
    sent[9]["location"] = "X"
    processed = pair.run("erp_stock", pages(sent, filters=(only_x,)))
    assert processed.outcome.counts.inserted == 6
    assert processed.outcome.counts.fetched == 7
    assert processed.outcome.invalid_reasons[0].startswith("record 9:")
