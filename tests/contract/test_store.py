"""The Store protocol's contract, run against every implementation (see conftest.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest

from catalog_refresher.domain.runs import RunCounts, RunOutcome, RunStatus, Trigger
from catalog_refresher.errors import IndexOutOfDate, RunFenced, StoreError
from catalog_refresher.store.base import (
    Applied,
    Changeset,
    RowWrite,
    RunQuery,
    Store,
    StoredPart,
)
from tests.helpers import T0, start_run
from tests.store_helpers import (
    Lazy,
    apply,
    codes,
    consumed,
    ended,
    erp,
    eshop,
    finished_run,
    gone,
    stored_rows,
    succeeded,
)

if TYPE_CHECKING:
    from tests.contract.conftest import Action, Opener

# --- schema and runs --------------------------------------------------------------------


def test_migrate_twice_is_a_no_op(store: Store) -> None:
    """Migrating an up-to-date store changes nothing and loses no data."""
    apply(store, "erp_stock", [erp("P-1")])
    store.migrate()
    assert codes(store) == ["P-1"]
    assert store.data_version("erp_stock") == 1


def test_create_run_records_a_queued_run(store: Store) -> None:
    """A new run is ``queued`` and reads back exactly as created."""
    run = store.create_run(source="erp_stock", trigger=Trigger.STARTUP, forced=True, at=T0)
    assert run.status is RunStatus.QUEUED
    assert store.get_run(run.id) == run
    assert store.get_run(run.id + 1000) is None


def test_mark_running_only_from_queued(store: Store) -> None:
    """``queued`` -> ``running`` succeeds once; a finished run cannot be started."""
    run = store.create_run(source="erp_stock", trigger=Trigger.SCHEDULE, forced=False, at=T0)
    assert store.mark_running(run.id, at=T0 + timedelta(seconds=1))
    assert not store.mark_running(run.id, at=T0 + timedelta(seconds=2))
    recorded = store.get_run(run.id)
    assert recorded is not None
    assert (recorded.status, recorded.started_at) == (RunStatus.RUNNING, T0 + timedelta(seconds=1))
    other = store.create_run(source="erp_stock", trigger=Trigger.SCHEDULE, forced=False, at=T0)
    assert store.finish_run(other.id, ended(RunStatus.SKIPPED))
    assert not store.mark_running(other.id, at=T0)


@pytest.mark.parametrize("started", [False, True], ids=["from queued", "from running"])
def test_finish_run_only_once(store: Store, started: bool) -> None:
    """A queued or running run finishes once; a second finish is refused and changes nothing."""
    run = store.create_run(source="lots", trigger=Trigger.MANUAL, forced=False, at=T0)
    if started:
        store.mark_running(run.id, at=T0)
    outcome = RunOutcome(
        status=RunStatus.FAILED,
        finished_at=T0 + timedelta(minutes=1),
        attempts=3,
        counts=RunCounts(fetched=5, invalid=5),
        error="boom",
        error_type="connection",
        invalid_reasons=("record 0: bad",),
    )
    assert store.finish_run(run.id, outcome)
    assert not store.finish_run(run.id, ended(RunStatus.SUCCEEDED))
    recorded = store.get_run(run.id)
    assert recorded is not None
    assert (recorded.status, recorded.error, recorded.error_type) == (
        RunStatus.FAILED, "boom", "connection",
    )  # fmt: skip
    assert (recorded.attempts, recorded.counts, recorded.invalid_reasons) == (
        3, RunCounts(fetched=5, invalid=5), ("record 0: bad",),
    )  # fmt: skip
    assert recorded.finished_at == T0 + timedelta(minutes=1)


async def test_cancel_abandoned_runs_cancels_queued_and_running_only(
    opener: Opener, store: Store
) -> None:
    """After a restart, the stopped process's unfinished runs become ``cancelled``;
    finished runs are left as they were."""
    queued = store.create_run(source="lots", trigger=Trigger.SCHEDULE, forced=False, at=T0)
    running = start_run(store, "erp_stock")
    done = start_run(store, "suppliers")
    store.finish_run(done.id, ended(RunStatus.FAILED))
    store = await opener.reopen(store)
    assert store.cancel_abandoned_runs(at=T0 + timedelta(hours=1)) == 2
    statuses = [store.get_run(r.id).status for r in (queued, running, done)]  # type: ignore[union-attr]
    assert statuses == [RunStatus.CANCELLED, RunStatus.CANCELLED, RunStatus.FAILED]


def test_list_runs_filters_newest_first_with_total(store: Store) -> None:
    """Runs come newest first, filtered by source, status and since, with the total matching."""
    ids = []
    for minute, (source, status) in enumerate(
        [("erp_stock", RunStatus.FAILED), ("lots", RunStatus.FAILED),
         ("erp_stock", RunStatus.SKIPPED), ("erp_stock", RunStatus.FAILED)]
    ):  # fmt: skip
        at = T0 + timedelta(minutes=minute)
        run = store.create_run(source=source, trigger=Trigger.SCHEDULE, forced=False, at=at)
        store.finish_run(run.id, ended(status, at))
        ids.append(run.id)

    def listed(**query: object) -> tuple[list[int], int]:
        runs, total = store.list_runs(RunQuery(**query))  # type: ignore[arg-type]
        return [r.id for r in runs], total

    assert listed() == (ids[::-1], 4)
    assert listed(source="erp_stock") == ([ids[3], ids[2], ids[0]], 3)
    assert listed(source="erp_stock", status=RunStatus.FAILED) == ([ids[3], ids[0]], 2)
    assert listed(since=T0 + timedelta(minutes=2)) == ([ids[3], ids[2]], 2)
    assert listed(limit=2, offset=1) == ([ids[2], ids[1]], 4)


def test_list_runs_since_compares_instants_not_text(store: Store) -> None:
    """``since`` given with a +02:00 offset selects runs by instant, as in UTC."""
    store.create_run(source="lots", trigger=Trigger.SCHEDULE, forced=False, at=T0)
    later = store.create_run(
        source="lots", trigger=Trigger.SCHEDULE, forced=False, at=T0 + timedelta(hours=1)
    )
    since = (T0 + timedelta(minutes=30)).astimezone(timezone(timedelta(hours=2)))
    runs, total = store.list_runs(RunQuery(since=since))
    assert ([r.id for r in runs], total) == ([later.id], 1)  # not ``first``, half an hour earlier


# --- apply ----------------------------------------------------------------------------------


async def test_apply_writes_rows_and_finishes_the_run_in_one_step(store: Store) -> None:
    """``apply`` stores the rows and records the run as succeeded with its counts."""
    run_id, applied = apply(store, "erp_stock", [erp("P-1", 5), erp("P-2", 7)])
    assert applied == Applied(products=frozenset({"P-1", "P-2"}), version=1)
    assert await stored_rows(store, "P-1", "erp_stock") == [{"product_code": "P-1", "stock": 5}]
    run = store.get_run(run_id)
    assert run is not None
    assert (run.status, run.finished_at) == (RunStatus.SUCCEEDED, T0)
    assert run.counts == RunCounts(fetched=2, inserted=2)


async def test_a_products_parts_are_its_rows_and_lineage_by_source(store: Store) -> None:
    """``product_parts`` (the API's read, on the event loop) gives each source's rows of
    the product with the run and time that last changed them, ``None`` for an unknown
    code, and ``aclose`` closes what it opened."""
    erp_run, _ = apply(store, "erp_stock", [erp("P-1", 5), erp("P-2", 7)])
    later = T0 + timedelta(minutes=1)
    eshop_run, _ = apply(store, "eshop_stock", [eshop("P-1", 3)], at=later)
    expected = {
        "P-1": {
            "erp_stock": StoredPart(rows=[erp("P-1", 5).data], run_id=erp_run, changed_at=T0),
            "eshop_stock": StoredPart(
                rows=[eshop("P-1", 3).data], run_id=eshop_run, changed_at=later
            ),
        },
        "P-2": {"erp_stock": StoredPart(rows=[erp("P-2", 7).data], run_id=erp_run, changed_at=T0)},
        "P-404": None,
    }
    try:
        for code in ("P-1", "P-2", "P-404"):
            assert await store.product_parts(code) == expected[code]
        assert (await store.product_parts("P-1")).keys() == {"erp_stock", "eshop_stock"}  # type: ignore[union-attr]
    finally:
        await store.aclose()


async def test_apply_replaces_and_deletes_rows(store: Store) -> None:
    """A later apply updates a row in place and removes a deleted one."""
    apply(store, "erp_stock", [erp("P-1", 5), erp("P-2", 7)])
    apply(store, "erp_stock", [erp("P-1", 6)], [gone(erp("P-2"))], updated=1)
    assert await stored_rows(store, "P-1", "erp_stock") == [{"product_code": "P-1", "stock": 6}]
    assert await store.product_parts("P-2") is None
    assert sorted(k for k, _ in store.iter_rows("erp_stock")) == ["P-1"]


def test_data_version_moves_only_when_something_changed(store: Store) -> None:
    """An apply with no rows to write or delete finishes the run but keeps ``data_version``."""
    assert store.data_version("erp_stock") == 0
    apply(store, "erp_stock", [erp("P-1")])
    run_id, applied = apply(store, "erp_stock")
    assert (applied.version, applied.products) == (1, frozenset())
    assert store.data_version("erp_stock") == 1
    assert store.data_version("lots") == 0  # versions are per source
    assert store.get_run(run_id).status is RunStatus.SUCCEEDED  # type: ignore[union-attr]


async def test_apply_records_lineage_of_touched_products(store: Store) -> None:
    """Each touched product's part names the run and time of its last change; others keep theirs."""
    first, _ = apply(store, "erp_stock", [erp("P-1"), erp("P-2")])
    later = T0 + timedelta(minutes=5)
    second, _ = apply(store, "erp_stock", [erp("P-1", 9)], at=later, updated=1)
    parts = {code: (await store.product_parts(code))["erp_stock"] for code in ("P-1", "P-2")}  # type: ignore[index]
    assert (parts["P-1"].run_id, parts["P-1"].changed_at) == (second, later)
    assert (parts["P-2"].run_id, parts["P-2"].changed_at) == (first, T0)


async def test_products_list_follows_rows_of_every_source(store: Store) -> None:
    """A product is listed while any source holds a row; its name comes from the ERP."""
    apply(store, "erp_stock", [erp("P-1", name="Šroub M8")])
    apply(store, "eshop_stock", [eshop("P-1"), eshop("P-2")])
    assert codes(store) == ["P-1", "P-2"]
    assert codes(store, search="Šroub") == ["P-1"]
    apply(store, "erp_stock", deletes=[gone(erp("P-1"))])
    assert codes(store) == ["P-1", "P-2"]  # the e-shop still knows it
    assert codes(store, search="Šroub") == []  # its ERP name went with the ERP row
    apply(store, "eshop_stock", deletes=[gone(eshop("P-1"))])
    assert codes(store) == ["P-2"]
    assert await store.product_parts("P-1") is None


@pytest.mark.parametrize("given", [False, True], ids=["read-back", "given"])
def test_product_names_follow_the_erp_whichever_source_changes(store: Store, given: bool) -> None:
    """A rename in the ERP is listed; a change elsewhere keeps the ERP's name; a product
    that loses one of several rows stays; each source's first row of a product lists it;
    an ERP row deleted takes its name along. The same whether the store reads the names
    back from the rows or they come with the change (``given``, as the pipeline's do)."""

    def erp_apply(writes: list[RowWrite], **kwargs: Any) -> None:
        apply(store, "erp_stock", Lazy(writes) if given else writes, **kwargs)

    erp_apply([erp("P-1", name="Bolt")])
    apply(store, "eshop_stock", [eshop("P-1"), eshop("P-2")])
    erp_apply([erp("P-1", name="Hex bolt")], updated=1)
    apply(store, "eshop_stock", [eshop("P-1", 7)], updated=1)
    assert codes(store, search="hex") == ["P-1"]
    assert codes(store, search="bolt") == ["P-1"]
    lots = [RowWrite(f"P-3\x1f{lot}", "P-3", None, b'{"lot":1}') for lot in ("L1", "L2")]
    apply(store, "lots", lots)
    apply(store, "lots", deletes=[gone(lots[0])])
    assert codes(store) == ["P-1", "P-2", "P-3"]
    erp_apply([erp("P-2", name="Šroub M8")])
    assert codes(store, search="šROUB") == ["P-2"]  # named when the ERP adds its row
    erp_apply([], deletes=[gone(erp("P-2"))])
    assert (codes(store), codes(store, search="šroub")) == (["P-1", "P-2", "P-3"], [])


def test_list_products_searches_code_and_name_and_pages(store: Store) -> None:
    """Search matches a code or name substring; the total counts all matches, not the page."""
    apply(store, "erp_stock", [erp("A-10", name="Bolt"), erp("B-20", name="Nut"),
                               erp("C-30", name="Bolt large"), erp("D-40")])  # fmt: skip
    assert store.list_products(search="-20", limit=10, offset=0) == (["B-20"], 1)
    assert store.list_products(search="bolt", limit=10, offset=0) == (["A-10", "C-30"], 2)
    assert store.list_products(search=None, limit=2, offset=1) == (["B-20", "C-30"], 4)
    assert store.list_products(search="%", limit=10, offset=0) == ([], 0)


def test_search_folds_case_beyond_ascii(store: Store) -> None:
    """Czech names match whatever their case: "žluť", "ŽLUŤ" and "Žluť" find "Žluťoučký"."""
    apply(store, "erp_stock", [erp("P-1", name="Žluťoučký kůň"), erp("ŘEZ-2", name="Řezák")])
    for search in ("žluť", "ŽLUŤ", "Žluťoučký KŮŇ"):
        assert store.list_products(search=search, limit=10, offset=0) == (["P-1"], 1), search
    assert store.list_products(search="řez-", limit=10, offset=0) == (["ŘEZ-2"], 1)
    assert store.list_products(search="ŘEZÁK", limit=10, offset=0) == (["ŘEZ-2"], 1)


def test_changes_since_feeds_each_change_once(store: Store) -> None:
    """The change feed names changed products after a cursor and returns the next cursor."""
    assert store.changes_since(0) == (0, set())
    apply(store, "erp_stock", [erp("P-1"), erp("P-2")])
    cursor, changed = store.changes_since(0)
    assert changed == {"P-1", "P-2"}
    assert store.changes_since(cursor) == (cursor, set())
    apply(store, "lots", deletes=[], writes=[RowWrite("P-2\x1fL1", "P-2", None, b'{"x":1}')])
    later, changed = store.changes_since(cursor)
    assert (later > cursor, changed) == (True, {"P-2"})


async def test_a_stamped_apply_finishes_when_its_writes_are_done(store: Store) -> None:
    """With ``stamp`` the run's end and the source's last success are read after the rows are
    written, not when the run's data was ready; rows and lineage keep the data's time."""
    run = start_run(store, "erp_stock")
    order: list[str] = []
    write_rows = store._write_rows  # type: ignore[attr-defined]

    def writing(*args: object) -> None:
        order.append("rows")
        write_rows(*args)

    def stamp() -> datetime:
        order.append("stamp")
        return T0 + timedelta(seconds=40)

    store._write_rows = writing  # type: ignore[attr-defined]
    changes = Changeset(source="erp_stock", writes=[erp("P-1")], expected_version=0)
    store.apply(run.id, changes, succeeded(T0 + timedelta(seconds=9), inserted=1), stamp=stamp)
    assert order == ["rows", "stamp"]
    assert store.get_run(run.id).finished_at == T0 + timedelta(seconds=40)  # type: ignore[union-attr]
    assert store.source_history("erp_stock").last_success_at == T0 + timedelta(seconds=40)
    part = (await store.product_parts("P-1") or {})["erp_stock"]
    assert part.changed_at == T0 + timedelta(seconds=9)


# --- apply refuses or fails without a trace -------------------------------------------------


async def test_apply_on_a_finished_run_is_fenced(store: Store) -> None:
    """A run that was cancelled or timed out meanwhile writes nothing and stays as it ended."""
    run = start_run(store, "erp_stock")
    store.finish_run(run.id, ended(RunStatus.TIMED_OUT))
    changes = Changeset(source="erp_stock", writes=[erp("P-1")], expected_version=0)
    with pytest.raises(RunFenced):
        store.apply(run.id, changes, succeeded(inserted=1))
    queued = store.create_run(source="erp_stock", trigger=Trigger.MANUAL, forced=False, at=T0)
    with pytest.raises(RunFenced):
        store.apply(queued.id, changes, succeeded(inserted=1))
    assert store.get_run(run.id).status is RunStatus.TIMED_OUT  # type: ignore[union-attr]
    assert (await store.product_parts("P-1"), store.data_version("erp_stock")) == (None, 0)
    assert store.source_history("erp_stock").record_count == 0


async def test_apply_against_a_stale_version_writes_nothing(store: Store) -> None:
    """A changeset diffed against an old ``data_version`` raises IndexOutOfDate, run untouched."""
    apply(store, "erp_stock", [erp("P-1", 1)])
    run = start_run(store, "erp_stock")
    stale = Changeset(source="erp_stock", writes=[erp("P-1", 2)], expected_version=0)
    with pytest.raises(IndexOutOfDate):
        store.apply(run.id, stale, succeeded(updated=1))
    assert await stored_rows(store, "P-1", "erp_stock") == [{"product_code": "P-1", "stock": 1}]
    assert store.get_run(run.id).status is RunStatus.RUNNING  # type: ignore[union-attr]
    fresh = Changeset(source="erp_stock", writes=[erp("P-1", 2)], expected_version=1)
    assert store.apply(run.id, fresh, succeeded(updated=1)).version == 2


async def test_apply_with_undecodable_data_rolls_back(store: Store) -> None:
    """A write whose data is not UTF-8 fails the apply; the earlier rows and the run stay."""
    apply(store, "erp_stock", [erp("P-1", 1), erp("P-2", 2)])
    run = start_run(store, "erp_stock")
    changes = Changeset(
        source="erp_stock",
        writes=[erp("P-3"), RowWrite("P-4", "P-4", None, b"\xff\xfe not utf-8")],
        deletes=[gone(erp("P-1"))],
        expected_version=1,
    )
    with pytest.raises((StoreError, UnicodeDecodeError)):
        store.apply(run.id, changes, succeeded(inserted=2, deleted=1))
    assert codes(store) == ["P-1", "P-2"]
    assert await stored_rows(store, "P-1", "erp_stock") == [{"product_code": "P-1", "stock": 1}]
    assert (store.data_version("erp_stock"), store.changes_since(0)[1]) == (1, {"P-1", "P-2"})
    assert store.get_run(run.id).status is RunStatus.RUNNING  # type: ignore[union-attr]


async def test_failure_inside_the_apply_transaction_rolls_everything_back(
    store: Store, break_next_apply: Callable[[], None]
) -> None:
    """An error after the rows were written leaves the previous data and run status intact."""
    first, _ = apply(store, "erp_stock", [erp("P-1", 1)])
    run = start_run(store, "erp_stock")
    break_next_apply()
    changes = Changeset(source="erp_stock", writes=[erp("P-1", 2), erp("P-2")], expected_version=1)
    with pytest.raises(RuntimeError, match="fire"):
        store.apply(run.id, changes, succeeded(inserted=1, updated=1))
    assert await stored_rows(store, "P-1", "erp_stock") == [{"product_code": "P-1", "stock": 1}]
    assert (await store.product_parts("P-1"))["erp_stock"].run_id == first  # type: ignore[index]
    assert (codes(store), store.data_version("erp_stock")) == (["P-1"], 1)
    assert store.get_run(run.id).status is RunStatus.RUNNING  # type: ignore[union-attr]
    assert store.source_history("erp_stock").last_success_run_id == first


async def test_data_and_runs_survive_reopening(opener: Opener, store: Store) -> None:
    """Rows, lineage, products, versions and runs are all there after a restart."""
    run_id, _ = apply(store, "erp_stock", [erp("P-1", 3, name="Bolt")])
    queued = store.create_run(source="lots", trigger=Trigger.SCHEDULE, forced=False, at=T0)
    reopened = await opener.reopen(store)
    assert await stored_rows(reopened, "P-1", "erp_stock") == [
        {"product_code": "P-1", "stock": 3, "product_name": "Bolt"}
    ]
    assert (await reopened.product_parts("P-1"))["erp_stock"].run_id == run_id  # type: ignore[index]
    assert reopened.list_products(search="bolt", limit=10, offset=0) == (["P-1"], 1)
    assert reopened.data_version("erp_stock") == 1
    assert reopened.get_run(run_id).status is RunStatus.SUCCEEDED  # type: ignore[union-attr]
    assert reopened.get_run(queued.id) == queued
    assert reopened.source_history("erp_stock").record_count == 1


# --- source history, retention, rows -------------------------------------------------------


def test_source_history_of_a_source_never_run(store: Store) -> None:
    """A source with no runs has no times, no status, no failures and no rows."""
    history = store.source_history("suppliers")
    assert (history.last_started_at, history.last_status, history.last_success_at) == (
        None, None, None,
    )  # fmt: skip
    assert (history.consecutive_failures, history.record_count, history.data_version) == (0, 0, 0)
    assert history.last_error is None


def test_source_history_counts_trailing_failures(store: Store) -> None:
    """Trailing failed/timed_out runs count; rejected, skipped and cancelled ones are ignored."""
    minute = timedelta(minutes=1)
    success, _ = apply(store, "erp_stock", [erp("P-1")], at=T0)
    sequence = [RunStatus.FAILED, RunStatus.REJECTED, RunStatus.TIMED_OUT, RunStatus.CANCELLED,
                RunStatus.FAILED]  # fmt: skip
    for n, status in enumerate(sequence, start=1):
        finished_run(store, status, T0 + n * minute)
    skipped = store.create_run(source="erp_stock", trigger=Trigger.SCHEDULE, forced=False, at=T0)
    store.finish_run(skipped.id, ended(RunStatus.SKIPPED, T0 + 6 * minute))
    finished_run(store, RunStatus.FAILED, T0, source="lots")  # another source's failure

    history = store.source_history("erp_stock")
    assert history.consecutive_failures == 3
    assert history.last_status is RunStatus.SKIPPED
    assert history.last_error == "skipped"  # the latest finished run's error
    assert history.last_started_at == T0 + 5 * minute
    assert (history.last_success_at, history.last_success_run_id) == (T0, success)
    assert history.last_failure_at == T0 + 5 * minute + timedelta(seconds=5)

    apply(store, "erp_stock", at=T0 + 7 * minute)
    history = store.source_history("erp_stock")
    assert (history.consecutive_failures, history.last_status) == (0, RunStatus.SUCCEEDED)
    assert history.last_success_at == T0 + 7 * minute
    assert history.last_error is None


def test_record_count_follows_inserts_and_deletes(store: Store) -> None:
    """``record_count`` is the number of stored rows after each apply."""
    apply(store, "erp_stock", [erp("P-1"), erp("P-2"), erp("P-3")])
    assert store.source_history("erp_stock").record_count == 3
    apply(store, "erp_stock", [erp("P-1", 5)], [gone(erp("P-2"))], updated=1)
    assert store.source_history("erp_stock").record_count == 2
    assert store.source_history("erp_stock").data_version == 2


async def test_purge_before_deletes_only_older_days(store: Store) -> None:
    """Rows of days before the cutoff go, the cutoff day stays, and the version moves."""
    apply(store, "consumed_materials", [consumed("P-OLD", date(2024, 1, 1)),
          consumed("P-1", date(2025, 5, 31)), consumed("P-1", date(2025, 6, 1))])  # fmt: skip
    cursor, _ = store.changes_since(0)
    purged_at = T0 + timedelta(hours=1)
    assert store.purge_before("consumed_materials", date(2025, 6, 1), at=purged_at) == 2
    assert [k for k, _ in store.iter_rows("consumed_materials")] == ["P-1\x1f2025-06-01\x1f0"]
    assert store.data_version("consumed_materials") == 2
    assert store.source_history("consumed_materials").record_count == 1
    assert codes(store) == ["P-1"]
    assert store.changes_since(cursor)[1] == {"P-OLD", "P-1"}
    part = (await store.product_parts("P-1"))["consumed_materials"]  # type: ignore[index]
    assert (part.run_id, part.changed_at) == (None, purged_at)  # a purge, not a run


def test_purge_with_nothing_to_delete_changes_nothing(store: Store) -> None:
    """A purge that finds no older rows keeps the version and the change feed."""
    apply(store, "consumed_materials", [consumed("P-1", date(2026, 1, 1))])
    before = store.changes_since(0)
    assert store.purge_before("consumed_materials", date(2025, 1, 1), at=T0) == 0
    assert store.data_version("consumed_materials") == 1
    assert store.changes_since(0) == before


def test_rows_by_key_reads_the_stored_ones_of_many_keys(store: Store) -> None:
    """The asked keys that are stored (over several chunks of keys), with the source's
    version and row count; other sources' rows and unknown keys are not in it."""
    rows = [erp(f"P-{n:04d}", n) for n in range(1_200)]
    apply(store, "erp_stock", rows)
    apply(store, "eshop_stock", [eshop("P-0001")])
    wanted = [f"P-{n:04d}" for n in range(0, 1_200, 2)] + ["NOPE"]
    keyed = store.rows_by_key("erp_stock", wanted)
    assert (keyed.version, keyed.row_count) == (store.data_version("erp_stock"), 1_200)
    assert keyed.rows == {r.key: r.data for r in rows[::2]}
    assert store.rows_by_key("lots", ["P-0001"]).rows == {}


def test_iter_rows_returns_every_row_of_one_source(store: Store) -> None:
    """``iter_rows`` yields each stored key with its JSON bytes, for that source only."""
    apply(store, "eshop_stock", [eshop(f"P-{n:05}", n) for n in range(1, 12_001)])
    apply(store, "erp_stock", [erp("P-1")])
    listed = dict(store.iter_rows("eshop_stock"))
    assert len(listed) == 12_000
    assert json.loads(listed["P-00007"]) == {"product_code": "P-00007", "stock": 7}
    assert dict(store.iter_rows("erp_stock")) == {"P-1": erp("P-1").data}


def test_apply_work_grows_linearly_with_the_rows_written(
    store: Store, work_of: Callable[[Action], int]
) -> None:
    """Writing four times as many ERP rows costs about four times the work, not sixteen."""
    first = work_of(lambda: apply(store, "erp_stock", [erp(f"A{n}") for n in range(500)]))
    later = work_of(lambda: apply(store, "erp_stock", [erp(f"B{n}") for n in range(2000)]))
    assert later < 8 * first
