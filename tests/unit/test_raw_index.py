"""The raw index (``refresh/raw_index.py``): a warm full run decodes only the records whose
bytes are new, and publishes exactly what a run that decodes every record publishes.

Each scenario runs twice on real SQLite stores: by one pipeline kept across runs (it keeps
a raw index after its first run) and by a fresh pipeline per run (it decodes and diffs
every record against the store's rows, as after a start). Counts, reasons and stored rows
must be equal after every run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from catalog_refresher.config.settings import FilterCondition, FilterOperator
from catalog_refresher.refresh import pipeline as pipeline_module
from catalog_refresher.store.sqlite import SqliteStore
from tests.helpers import json_path, load
from tests.raw_twins import SOURCE, Twins, counts_of, erp, pages, random_runs


@pytest.fixture
def twins(tmp_path: Path) -> Iterator[Twins]:
    kept, fresh = SqliteStore(tmp_path / "kept.db"), SqliteStore(tmp_path / "fresh.db")
    for store in (kept, fresh):
        store.migrate()
    yield Twins(kept, fresh)
    kept.close()
    fresh.close()


@pytest.fixture
def whole_validations(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many records each run validated whole (all of its payload decoded)."""
    counted: list[int] = []
    validate = pipeline_module.validate

    def counting(*args: Any, **kwargs: Any) -> Any:
        batch = validate(*args, **kwargs)
        counted.append(batch.fetched)
        return batch

    monkeypatch.setattr(pipeline_module, "validate", counting)
    return counted


def test_a_warm_run_decodes_only_the_records_sent_as_new_bytes(
    twins: Twins, whole_validations: list[int]
) -> None:
    """After the first run, a run of 1,000 records with 3 changed, 2 gone and 2 new
    validates none of them whole; it counts all 1,000 as fetched and publishes the 7."""
    first = [erp(f"P{i:04d}", i) for i in range(1000)]
    twins.run(pages(first))
    assert twins.raw_index() is not None
    whole_validations.clear()
    second = [*first[2:], erp("N1"), erp("N2")]
    for i in (10, 20, 30):
        second[i] = erp(second[i]["product_code"], -5)
    kept, _ = twins.run(pages(second))
    assert whole_validations == [1000]  # the fresh pipeline's only, none of the kept one's
    counts = counts_of(kept)
    assert (counts.fetched, counts.inserted, counts.updated, counts.deleted) == (1000, 2, 3, 2)
    index = twins.raw_index()
    assert index is not None
    assert len(index.keys) == 1000


def test_bytes_that_differ_only_where_nothing_is_read_update_nothing(twins: Twins) -> None:
    """A record sent with a field the source does not read changed is decoded (its bytes
    are new) but equal to its stored row: no update, and its new bytes are known next."""
    twins.run(pages([erp("A"), erp("B")]))
    kept, _ = twins.run(pages([erp("A", note="x"), erp("B")]))
    assert (counts_of(kept).updated, counts_of(kept).inserted) == (0, 0)
    index = twins.raw_index()
    assert index is not None
    assert sorted(index.keys.values()) == ["A", "B"]
    assert hash(json.dumps(erp("A", note="x")).encode()) in index.keys


@pytest.mark.parametrize(
    "second",
    [
        [erp("A"), erp("B"), erp("A", 9)],  # known bytes first, new ones last: new win
        [erp("A", 9), erp("A"), erp("B")],  # new bytes first, known ones last: known win
        [erp("A"), erp("A"), erp("B")],  # the same bytes twice
        [erp("A", 9), erp("A", 8), erp("B")],  # two new records of one key
    ],
    ids=["known-then-new", "new-then-known", "same-bytes-twice", "two-new"],
)
def test_duplicate_keys_keep_the_contract_order(twins: Twins, second: list[Any]) -> None:
    """Of two records with one key the last wins and the earlier is invalid, whether
    either was sent as known bytes; the kept pipeline then still publishes as a fresh one."""
    twins.run(pages([erp("A"), erp("B")]))
    kept, _ = twins.run(pages(second))
    assert counts_of(kept).invalid == 1
    assert any("duplicate key A" in reason for reason in kept.outcome.invalid_reasons)
    twins.run(pages([erp("A"), erp("B")]))


def test_an_invalid_new_record_is_named_by_its_place_in_its_page(twins: Twins) -> None:
    """Between known records, a new invalid one is told at its place in the page (the
    decoded few are not renumbered), on the second page of two."""
    first = [[erp("A"), erp("B")], [erp("C"), erp("D")]]
    twins.run(pages(*first))
    kept, _ = twins.run(pages(first[0], [erp("C"), erp("X", "many"), erp("D")]))
    assert counts_of(kept).invalid == 1
    assert kept.outcome.invalid_reasons[0].startswith("page 2 record 1:")


def test_a_changed_filter_reads_the_same_bytes_anew(twins: Twins) -> None:
    """The same bytes under another Filter are other records: the raw index of the first
    reading is not used, and the records the filter now drops are deleted."""
    records = [erp("A", location="X"), erp("B", location="Y")]
    twins.run(pages(records))
    only_x = FilterCondition(
        path=json_path("location"), operator=FilterOperator("Equals"), values=("X",)
    )
    kept, _ = twins.run(pages(records, filters=(only_x,)))
    assert counts_of(kept).deleted == 1
    assert list(Twins.rows(twins.kept_store)) == ["A"]


def test_a_peer_write_makes_the_next_run_read_the_store_again(twins: Twins) -> None:
    """Another writer moved the data version: the raw index is dropped, and the run diffs
    against what the store holds now (the peer's extra row is deleted)."""
    twins.run(pages([erp("A"), erp("B")]))
    for store in (twins.kept_store, twins.fresh_store):
        load(store, SOURCE, [erp("A"), erp("B"), erp("PEER")])
    kept, _ = twins.run(pages([erp("A"), erp("B")]))
    assert counts_of(kept).deleted == 1
    assert twins.raw_index() is not None


def test_random_snapshots_publish_what_a_whole_decode_publishes(twins: Twins) -> None:
    """Forty runs of random changes: the kept and fresh pipelines agree after each."""
    random_runs(twins, runs=40, seed=11)


def test_a_dry_run_and_a_rejected_run_leave_the_raw_index_as_it_was(twins: Twins) -> None:
    """Neither publishes, so neither may move the index: the dry run previews what a whole
    decode previews, the guard refuses as it would, and the run after them publishes the
    change against the rows still stored."""
    first = [erp(f"P{i}") for i in range(10)]
    twins.run(pages(first))
    index = twins.raw_index()
    assert index is not None
    before = dict(index.keys)
    changed = [erp("P0", 5), *first[1:4], erp("NEW")]  # 6 of 10 rows gone
    kept, _ = twins.run(pages(changed), dry_run=True)
    assert kept.preview is not None
    assert (kept.preview.inserted, kept.preview.updated, kept.preview.deleted) == (1, 1, 6)
    kept, _ = twins.run(pages(changed), forced=False, max_delete_share=0.5)
    assert kept.outcome.status.value == "rejected"
    assert index.keys == before
    kept, _ = twins.run(pages(changed))
    assert (counts_of(kept).inserted, counts_of(kept).updated, counts_of(kept).deleted) == (1, 1, 6)
