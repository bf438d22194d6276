"""Versions, diff, pin and unpin, product history: on every store (store/versions.py)."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import TYPE_CHECKING

import pytest

from catalog_refresher.domain.runs import RunStatus
from catalog_refresher.errors import SourcePinned, VersionNotKept
from catalog_refresher.store.base import Changeset, RowDelete, Store
from catalog_refresher.store.version_types import Change, VersionPolicy
from tests.helpers import T0, start_run
from tests.store_helpers import apply, codes, consumed, erp, gone, stored_rows, succeeded

if TYPE_CHECKING:
    from tests.contract.conftest import Opener

HOUR = timedelta(hours=1)


def _rows(store: Store, source: str = "erp_stock") -> dict[str, bytes]:
    return dict(store.iter_rows(source))


def _twelve_runs(store: Store) -> tuple[list[int], list[dict[str, bytes]]]:
    """Twelve runs of erp_stock, each inserting, updating and deleting a few rows; the
    run ids and what each published."""
    run_ids: list[int] = []
    published: list[dict[str, bytes]] = []
    live: dict[str, float] = {}
    for n in range(12):
        at = T0 + n * HOUR
        inserts = [erp(f"P-{n}-{i}", stock=float(n)) for i in range(3)]
        updates = [erp(code, stock=stock + 100) for code, stock in sorted(live.items())[:2]]
        deletes = [gone(erp(code)) for code in sorted(live)[2:3]]
        run_id, _ = apply(
            store, "erp_stock", [*updates, *inserts], deletes, at=at, updated=len(updates)
        )
        for w in inserts + updates:
            live[w.key] = json.loads(w.data)["stock"]
        for d in deletes:
            live.pop(d.key)
        run_ids.append(run_id)
        published.append(_rows(store))
    return run_ids, published


def test_twelve_runs_keep_versions_3_to_12_exactly_and_prune_1_and_2(store: Store) -> None:
    """After 12 runs with changes, versions 3-12 reconstruct exactly what each run
    published, the list says so newest first, and versions 1 and 2 are pruned (409-like)."""
    run_ids, published = _twelve_runs(store)
    listed = store.versions("erp_stock")
    assert [v.run_id for v in listed.items] == run_ids[:1:-1]
    assert listed.served_run_id == run_ids[-1]
    assert not listed.pinned
    assert [v.served for v in listed.items] == [True] + [False] * 9
    newest = listed.items[0]
    assert (newest.inserted, newest.updated, newest.deleted) == (3, 2, 1)
    assert newest.record_count == len(published[-1])
    assert newest.published_at == T0 + 11 * HOUR
    for run_id, rows in list(zip(run_ids, published, strict=True))[2:]:
        assert store.version_rows("erp_stock", run_id) == rows
    for run_id in run_ids[:2]:
        with pytest.raises(VersionNotKept, match="pruned") as caught:
            store.version_rows("erp_stock", run_id)
        assert caught.value.pruned
    with pytest.raises(VersionNotKept, match="unknown"):
        store.version_rows("erp_stock", run_ids[-1] + 99)


def test_deltas_of_pruned_versions_go_too(store: Store) -> None:
    """Only the deltas between kept versions stay: nine runs' changes for ten versions,
    none of the first load (nothing to go back to)."""
    run_ids, _ = _twelve_runs(store)
    with store._read() as conn:  # type: ignore[attr-defined]
        count, oldest = conn.execute("SELECT count(*), min(run_id) FROM version_changes").fetchone()
    # Runs 4..12 each changed 6 keys (3 inserts, 2 updates, 1 delete).
    assert (int(count), int(oldest)) == (9 * 6, run_ids[3])


def test_versions_beyond_the_retention_are_pruned(store: Store) -> None:
    """With VersionsRetention, a version older than it goes, the newest never does."""
    policy = VersionPolicy(kept=10, retention=timedelta(hours=2, minutes=30))
    run_ids = []
    for n in range(5):
        run = start_run(store, "erp_stock", at=T0 + n * HOUR)
        changes = Changeset(
            source="erp_stock",
            writes=[erp("P-1", stock=float(n))],
            expected_version=store.data_version("erp_stock"),
            versions=policy,
        )
        store.apply(run.id, changes, succeeded(T0 + n * HOUR, updated=1))
        run_ids.append(run.id)
    assert [v.run_id for v in store.versions("erp_stock").items] == run_ids[:1:-1]


def test_diff_lists_exactly_the_changed_keys_with_old_and_new_values(store: Store) -> None:
    """Between two kept versions: added, removed and changed keys, old and new values,
    ordered by key and paged; ``to`` defaults to the served version."""
    first, _ = apply(store, "erp_stock", [erp("A", 1), erp("B", 2), erp("C", 3)])
    older, _ = apply(store, "erp_stock", [erp("A", 10)], at=T0 + HOUR, updated=1)
    apply(store, "erp_stock", [erp("D", 4), erp("B", 2.5)], [gone(erp("C"))], at=T0 + 2 * HOUR)
    # A changed back: the same in both versions, so not in the diff.
    apply(store, "erp_stock", [erp("A", 10), erp("E", 5)], at=T0 + 3 * HOUR, updated=1)
    newest = store.versions("erp_stock").items[0].run_id
    diff = store.diff_versions("erp_stock", older, None, limit=10, offset=0)
    assert (diff.from_run, diff.to_run) == (older, newest)
    assert (diff.added, diff.removed, diff.changed, diff.total) == (2, 1, 1, 4)
    seen = [
        (c.key, c.change, c.old and json.loads(c.old), c.new and json.loads(c.new))
        for c in diff.items
    ]
    assert seen == [
        (
            "B",
            Change.CHANGED,
            {"product_code": "B", "stock": 2},
            {"product_code": "B", "stock": 2.5},
        ),
        ("C", Change.REMOVED, {"product_code": "C", "stock": 3}, None),
        ("D", Change.ADDED, None, {"product_code": "D", "stock": 4}),
        ("E", Change.ADDED, None, {"product_code": "E", "stock": 5}),
    ]
    page = store.diff_versions("erp_stock", older, None, limit=2, offset=1)
    assert [c.key for c in page.items] == ["C", "D"]
    assert page.total == 4
    backwards = store.diff_versions("erp_stock", newest, older, limit=10, offset=0)
    assert [(c.key, c.change) for c in backwards.items] == [
        ("B", Change.CHANGED),
        ("C", Change.ADDED),
        ("D", Change.REMOVED),
        ("E", Change.REMOVED),
    ]
    with pytest.raises(VersionNotKept):
        store.diff_versions("erp_stock", first + 1000, None, limit=10, offset=0)


async def test_pin_serves_the_old_version_everywhere_and_unpin_the_newest(store: Store) -> None:
    """A pin rewrites the served rows, product list, lineage and change feed to the
    pinned version; a run meanwhile is refused (``SourcePinned``); unpin restores the
    newest rows and lineage exactly."""
    old, _ = apply(store, "erp_stock", [erp("A", 1, name="Old A"), erp("B", 2)])
    new, _ = apply(
        store,
        "erp_stock",
        [erp("A", 9, name="New A"), erp("C", 3)],
        [gone(erp("B"))],
        at=T0 + HOUR,
        updated=1,
    )
    newest_rows = _rows(store)
    parts_before = await store.product_parts("A")
    cursor = store.latest_change()
    applied = store.pin("erp_stock", old, at=T0 + 2 * HOUR)
    assert applied.products == {"A", "B", "C"}
    assert _rows(store) == store.version_rows("erp_stock", old)
    assert await stored_rows(store, "A", "erp_stock") == [
        {"product_code": "A", "stock": 1, "product_name": "Old A"}
    ]
    assert codes(store) == ["A", "B"]
    assert codes(store, "old") == ["A"]
    parts = await store.product_parts("B")
    assert parts is not None
    assert parts["erp_stock"].run_id == old
    assert store.changes_since(cursor)[1] == {"A", "B", "C"}
    assert store.source_history("erp_stock").pinned_run_id == old
    assert store.source_history("erp_stock").record_count == 2
    listed = store.versions("erp_stock")
    assert listed.pinned
    assert listed.served_run_id == old
    assert [v.served for v in listed.items] == [False, True]
    assert store.diff_versions("erp_stock", new, None, limit=5, offset=0).to_run == old

    run = start_run(store, "erp_stock", at=T0 + 3 * HOUR)
    changes = Changeset(
        source="erp_stock", writes=[erp("Z")], expected_version=store.data_version("erp_stock")
    )
    with pytest.raises(SourcePinned, match="pinned"):
        store.apply(run.id, changes, succeeded(T0 + 3 * HOUR, inserted=1))
    assert "Z" not in _rows(store)

    unpinned = store.unpin("erp_stock", at=T0 + 4 * HOUR)
    assert unpinned.products == {"A", "B", "C"}
    assert _rows(store) == newest_rows
    assert await store.product_parts("A") == parts_before
    assert codes(store) == ["A", "C"]
    history = store.source_history("erp_stock")
    assert history.pinned_run_id is None
    assert history.record_count == 2
    assert not store.versions("erp_stock").pinned
    assert store.unpin("erp_stock", at=T0 + 5 * HOUR).products == frozenset()


async def test_a_pin_holds_after_a_restart_and_on_a_peer(store: Store, opener: Opener) -> None:
    """The pin is in the database: a reopened store and a second one on the same
    database (a peer replica) serve the pinned rows and refuse to publish."""
    old, _ = apply(store, "erp_stock", [erp("A", 1)])
    apply(store, "erp_stock", [erp("A", 2)], at=T0 + HOUR, updated=1)
    peer = opener.open()
    cursor = peer.latest_change()
    store.pin("erp_stock", old, at=T0 + 2 * HOUR)
    assert "A" in peer.changes_since(cursor)[1]  # the peer's cache drops it
    assert await stored_rows(peer, "A", "erp_stock") == [{"product_code": "A", "stock": 1}]
    restarted = await opener.reopen(store)
    assert await stored_rows(restarted, "A", "erp_stock") == [{"product_code": "A", "stock": 1}]
    assert restarted.source_history("erp_stock").pinned_run_id == old
    run = start_run(peer, "erp_stock", at=T0 + 3 * HOUR)
    changes = Changeset(
        source="erp_stock", writes=[erp("A", 3)], expected_version=peer.data_version("erp_stock")
    )
    with pytest.raises(SourcePinned):
        peer.apply(run.id, changes, succeeded(T0 + 3 * HOUR, updated=1))
    recorded = peer.get_run(run.id)
    assert recorded is not None
    assert recorded.status is RunStatus.RUNNING
    peer.unpin("erp_stock", at=T0 + 4 * HOUR)
    assert await stored_rows(restarted, "A", "erp_stock") == [{"product_code": "A", "stock": 2}]


async def test_repin_moves_between_versions_and_runs_resume_after_unpin(store: Store) -> None:
    """Pinning while pinned serves the new choice exactly; after unpin, runs publish
    again against the newest data."""
    ids = [apply(store, "erp_stock", [erp("A", float(n))], at=T0 + n * HOUR)[0] for n in range(4)]
    store.pin("erp_stock", ids[0], at=T0 + 5 * HOUR)
    store.pin("erp_stock", ids[2], at=T0 + 6 * HOUR)
    assert _rows(store) == store.version_rows("erp_stock", ids[2])
    assert json.loads(_rows(store)["A"])["stock"] == 2
    store.pin("erp_stock", ids[3], at=T0 + 7 * HOUR)  # the newest: served as is, still pinned
    assert json.loads(_rows(store)["A"])["stock"] == 3
    assert store.versions("erp_stock").pinned
    store.unpin("erp_stock", at=T0 + 8 * HOUR)
    run_id, _ = apply(store, "erp_stock", [erp("A", 7)], at=T0 + 9 * HOUR, updated=1)
    assert store.versions("erp_stock").items[0].run_id == run_id
    assert store.version_rows("erp_stock", ids[3]) == {
        "A": json.dumps({"product_code": "A", "stock": 3.0}).encode()
    }


def test_product_history_lists_each_kept_version_where_the_product_changed(store: Store) -> None:
    """Per source, the product's rows in the oldest kept version and each one that changed
    them, with run ids and times."""
    first, _ = apply(store, "erp_stock", [erp("A", 1), erp("B", 1)])
    apply(store, "erp_stock", [erp("B", 2)], at=T0 + HOUR, updated=1)  # A unchanged
    third, _ = apply(store, "erp_stock", [erp("A", 3)], at=T0 + 2 * HOUR, updated=1)
    fourth, _ = apply(store, "erp_stock", [], [gone(erp("A"))], at=T0 + 3 * HOUR)
    history = store.product_history("A")
    entries = [
        (e.run_id, e.published_at, [json.loads(r) for r in e.rows]) for e in history["erp_stock"]
    ]
    assert entries == [
        (first, T0, [{"product_code": "A", "stock": 1}]),
        (third, T0 + 2 * HOUR, [{"product_code": "A", "stock": 3}]),
        (fourth, T0 + 3 * HOUR, []),
    ]
    assert store.product_history("nothing") == {}


async def test_a_purge_removes_the_purged_days_from_every_version(store: Store) -> None:
    """A history source's retention purge takes its days out of the kept versions too."""
    day = date(2026, 1, 1)
    old, _ = apply(store, "consumed_materials", [consumed("A", day)])
    apply(
        store,
        "consumed_materials",
        [consumed("A", day + timedelta(days=5))],
        [RowDelete(consumed("A", day).key, "A")],
        at=T0 + HOUR,
    )
    store.purge_before("consumed_materials", day + timedelta(days=2), at=T0 + 2 * HOUR)
    rows = store.version_rows("consumed_materials", old)
    assert rows == {}


def test_versions_of_a_source_never_changed_are_empty(store: Store) -> None:
    """A source with no published change has no versions, and a pin of any run is refused."""
    assert store.versions("lots").items == []
    assert store.versions("lots").served_run_id is None
    with pytest.raises(VersionNotKept):
        store.pin("lots", 1, at=T0)
