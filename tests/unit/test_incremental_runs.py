"""Incremental runs in the pipeline and their configuration: modes, cursors, tombstones,
the guard on a tombstone flood, a 304 run, and what the configuration refuses."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from catalog_refresher.config.incremental import incremental_settings
from catalog_refresher.config.tree import Tree
from catalog_refresher.domain.runs import RunMode, RunStatus
from catalog_refresher.errors import ConfigError
from catalog_refresher.refresh.incremental import cursor_order, later, next_sync, plan
from catalog_refresher.refresh.pipeline import Pipeline
from catalog_refresher.sources.base import Payload
from catalog_refresher.store.base import SyncState
from catalog_refresher.store.sqlite import SqliteStore
from tests.helpers import T0
from tests.incremental_world import INCREMENTAL, ErpWorld, refresh


def _tree(value: dict[str, object]) -> Tree:
    return {k.lower(): (k, v) for k, v in value.items()}  # type: ignore[misc]


def test_cursors_compare_as_their_type() -> None:
    """Numbers numerically, ISO times as instants (zones included), anything else as text."""
    assert later("999", "1000") == "1000"
    assert later("2026-01-01T12:00:00+02:00", "2026-01-01T11:00:00Z") == "2026-01-01T11:00:00Z"
    assert cursor_order("b") > cursor_order("a")
    assert later(None, "5") == "5"


def test_a_run_is_full_when_first_forced_or_due_and_incremental_otherwise() -> None:
    """No cursor, a forced run, FullEvery passed or FullEveryRuns reached make a full run."""
    settings = incremental_settings(
        _tree({"CursorField": "changed_at", "CursorParameter": "since", "FullEveryRuns": 3}),
        "Sources:ErpStock:Incremental",
        is_history=False,
        csv=False,
    )
    assert settings is not None
    fresh = SyncState(cursor="5", full_at=T0, runs_since_full=1)
    assert plan(settings, SyncState(), forced=False, now=T0).mode is RunMode.FULL
    assert plan(settings, fresh, forced=True, now=T0).mode is RunMode.FULL
    assert plan(settings, fresh, forced=False, now=T0).state.cursor == "5"
    worn = SyncState(cursor="5", full_at=T0, runs_since_full=3)
    assert plan(settings, worn, forced=False, now=T0).mode is RunMode.FULL
    daily = incremental_settings(
        _tree({"CursorField": "c", "CursorParameter": "s", "FullEvery": "1.00:00:00"}),
        "k",
        is_history=False,
        csv=False,
    )
    late = T0 + timedelta(days=1)
    assert plan(daily, fresh, forced=False, now=late).mode is RunMode.FULL


def test_the_unconditional_net_drops_the_validators_when_due() -> None:
    """Without Incremental a run is conditional until UnconditionalEvery has passed since
    the last unconditional one: then it sends no validator but keeps the body hash, and
    the counters restart; an incremental source meets the net with a full run."""
    sync = SyncState(etag='"e"', last_modified="x", body_hash="h", full_at=T0)
    day = timedelta(days=1)
    soon = plan(None, sync, forced=False, now=T0 + timedelta(hours=1), unconditional_every=day)
    assert (soon.unconditional, soon.state.etag) == (False, '"e"')
    due = plan(None, sync, forced=False, now=T0 + day, unconditional_every=day)
    assert due.unconditional
    assert (due.state.etag, due.state.last_modified, due.state.body_hash) == (None, None, "h")
    assert plan(None, sync, forced=False, now=T0 + day * 9).state.etag == '"e"'  # no net
    after = next_sync(due, Payload(etag='"f"'), None, incremental=False, now=lambda: T0 + day)
    assert (after.full_at, after.runs_since_full) == (T0 + day, 0)
    kept = next_sync(soon, Payload(), None, incremental=False, now=lambda: T0 + day)
    assert (kept.full_at, kept.runs_since_full) == (T0, 1)
    cursor = SyncState(cursor="5", etag='"e"', full_at=T0)
    assert plan(INCREMENTAL, cursor, forced=False, now=T0, unconditional_every=day).mode is (
        RunMode.INCREMENTAL
    )
    net = plan(INCREMENTAL, cursor, forced=False, now=T0 + day, unconditional_every=day)
    assert (net.mode, net.state.etag, net.unconditional) == (RunMode.FULL, None, True)


@pytest.mark.parametrize(
    ("value", "key"),
    [
        ({"CursorParameter": "s"}, "Sources:ErpStock:Incremental:CursorField"),
        (
            {"CursorField": "c", "CursorParameter": " "},
            "Sources:ErpStock:Incremental:CursorParameter",
        ),
        ({"CursorField": "c", "CursorParameter": "s", "Nope": 1}, "Sources:ErpStock:Incremental"),
    ],
)
def test_incremental_configuration_names_the_key_it_refuses(
    value: dict[str, object], key: str
) -> None:
    """A missing cursor field, an empty parameter or an unknown key is a ConfigError naming
    it (a missing parameter is the endpoint's business: ``test_cursor_templates.py``)."""
    with pytest.raises(ConfigError) as caught:
        incremental_settings(
            _tree(value), "Sources:ErpStock:Incremental", is_history=False, csv=False
        )
    assert caught.value.key.startswith(key)


def test_a_history_source_cannot_be_incremental() -> None:
    """History sources are read by their window: Incremental is refused on them."""
    with pytest.raises(ConfigError, match="snapshot"):
        incremental_settings(_tree({}), "Sources:SalesData:Incremental", is_history=True, csv=False)


def test_a_tombstone_flood_is_rejected_and_leaves_the_cursor(tmp_path: Path) -> None:
    """Tombstones for more than MaxDeleteShare of the rows reject the run: nothing is
    deleted and the stored cursor stays where it was."""
    store = SqliteStore(tmp_path / "c.db")
    store.migrate()
    world = ErpWorld()
    for n in range(10):
        world.put(f"P-{n}", n)
    pipeline = Pipeline(store, now=lambda: T0)
    refresh(store, pipeline, world)
    before = store.sync_state("erp_stock")
    for n in range(6):
        world.remove(f"P-{n}")
    mode, processed = refresh(store, pipeline, world)
    assert mode is RunMode.INCREMENTAL
    assert processed.outcome.status is RunStatus.REJECTED
    assert "tombstones would remove 6 of 10" in (processed.outcome.error or "")
    assert store.sync_state("erp_stock") == before
    assert len(dict(store.iter_rows("erp_stock"))) == 10
    store.close()


def test_a_not_modified_payload_succeeds_without_changes(tmp_path: Path) -> None:
    """A 304 (``not_modified``) ends the run succeeded, nothing changed, flagged in the
    audit log, the validators kept."""
    store = SqliteStore(tmp_path / "c.db")
    store.migrate()
    world = ErpWorld()
    world.put("P-1", 1)
    pipeline = Pipeline(store, now=lambda: T0)
    refresh(store, pipeline, world, incremental=None)

    class _Unchanged(ErpWorld):
        def payload(self, state: object) -> Payload:
            return Payload(not_modified=True, etag='"x"')

    _, processed = refresh(store, pipeline, _Unchanged(), incremental=None)
    assert processed.outcome.status is RunStatus.SUCCEEDED
    assert processed.outcome.not_modified
    assert processed.outcome.counts.deleted == 0
    assert store.sync_state("erp_stock").etag == '"x"'
    assert len(dict(store.iter_rows("erp_stock"))) == 1
    store.close()


class _RowsCounted(SqliteStore):
    """The real SQLite store, counting reads of a source's every row (index builds)."""

    full_reads = 0

    def iter_rows(self, source: str) -> Iterator[tuple[str, bytes]]:
        self.full_reads += 1
        return super().iter_rows(source)


def test_a_not_modified_run_after_a_start_reads_no_stored_rows(tmp_path: Path) -> None:
    """A 304 as the first run of a new pipeline (as after a restart) succeeds without
    building the fingerprint index from every stored row; the next changed run builds it
    and diffs against the rows as they are."""
    store = _RowsCounted(tmp_path / "c.db")
    store.migrate()
    world = ErpWorld()
    world.put("P-1", 1)
    world.put("P-2", 2)
    refresh(store, Pipeline(store, now=lambda: T0), world, incremental=None)
    restarted = Pipeline(store, now=lambda: T0)
    reads = store.full_reads

    class _Unchanged(ErpWorld):
        def payload(self, state: object) -> Payload:
            return Payload(not_modified=True, etag='"x"')

    _, processed = refresh(store, restarted, _Unchanged(), incremental=None)
    assert processed.outcome.status is RunStatus.SUCCEEDED
    assert processed.outcome.not_modified
    assert store.full_reads == reads
    world.put("P-1", 5)
    _, changed = refresh(store, restarted, world, incremental=None)
    assert store.full_reads == reads + 1
    assert (changed.outcome.counts.updated, changed.outcome.counts.inserted) == (1, 0)
    store.close()


def test_a_key_sent_and_tombstoned_in_one_answer_is_deleted(tmp_path: Path) -> None:
    """The tombstone wins over a record of the same key in one incremental answer."""
    store = SqliteStore(tmp_path / "c.db")
    store.migrate()
    world = ErpWorld()
    world.put("P-1", 1)
    world.put("P-2", 2)
    pipeline = Pipeline(store, now=lambda: T0)
    refresh(store, pipeline, world, incremental=INCREMENTAL)
    world.put("P-1", 5)
    world.gone["P-1"] = world.clock + 1
    world.clock += 1
    _, processed = refresh(store, pipeline, world, max_delete_share=1.0)
    assert processed.outcome.counts.deleted == 1
    assert dict(store.iter_rows("erp_stock")).keys() == {"P-2"}
    store.close()


def test_an_incremental_run_after_a_start_reads_only_its_keys(tmp_path: Path) -> None:
    """The first incremental run of a new pipeline (as after a restart) diffs against the
    stored rows of the keys it carries, not an index of every row: its counts are right,
    a record sent again unchanged is no update, and its tombstones are weighed against
    every stored row, not only those read (4 of the 4 read would be refused)."""
    store = _RowsCounted(tmp_path / "c.db")
    store.migrate()
    world = ErpWorld()
    for n in range(10):
        world.put(f"P-{n}", n)
    refresh(store, Pipeline(store, now=lambda: T0), world)
    reads = store.full_reads
    world.put("P-1", 100)
    world.put("P-10", 10)
    world.put("P-3", 3)  # sent again as it is stored
    world.remove("P-5")
    mode, processed = refresh(store, Pipeline(store, now=lambda: T0), world)
    counts = processed.outcome.counts
    assert (mode, processed.outcome.status) == (RunMode.INCREMENTAL, RunStatus.SUCCEEDED)
    assert (counts.inserted, counts.updated, counts.deleted) == (1, 1, 1)
    assert store.full_reads == reads
    for n in range(6, 10):
        world.remove(f"P-{n}")
    _, share = refresh(store, Pipeline(store, now=lambda: T0), world)  # 4 of 10: 40% < 50%
    assert (share.outcome.status, share.outcome.counts.deleted) == (RunStatus.SUCCEEDED, 4)
    assert store.full_reads == reads
    store.close()
