"""The demo ERP's change journal: ``changed_at`` on every record, and ``changed_since`` reads."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import msgspec
import pytest

from catalog_refresher.sources.demo import DemoWorld

TODAY = date(2026, 11, 29)
START = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
Rows = list[dict[str, Any]]


class Ticking:
    """A clock that moves a second on every reading, as time passes between requests."""

    def __init__(self) -> None:
        self.moment = START

    def __call__(self) -> datetime:
        self.moment += timedelta(seconds=1)
        return self.moment


def make_world(seed: int = 11, clock: Ticking | None = None) -> DemoWorld:
    return DemoWorld(
        products=200,
        seed=seed,
        failure_rate=0.0,
        clock_today=lambda: TODAY,
        clock_now=clock or Ticking(),
    )


def read(world: DemoWorld, source_id: str = "erp_stock", since: datetime | None = None) -> Rows:
    rows: Rows = msgspec.json.decode(world.fetch(source_id, None, changed_since=since))
    return rows


def parse(text: str) -> datetime:
    assert text.endswith("Z"), text
    assert len(text) == len("2026-11-29T10:00:00.000000Z"), text
    return datetime.fromisoformat(text)


def cursor(rows: Rows) -> datetime:
    return max(parse(row["changed_at"]) for row in rows)


def moves(world: DemoWorld, reads: int = 60) -> None:
    """Reads that change the ERP: its own (sales, deliveries, new and discontinued products),
    transport (boxes delivered into stock) and stock taking (counts correct it)."""
    for n in range(reads):
        read(world, ("erp_stock", "transport_data", "stock_taking")[n % 3])


def test_every_erp_record_carries_a_distinct_changed_at() -> None:
    """Each ERP row has changed_at, ISO-8601 UTC with microseconds, no two alike."""
    rows = read(make_world())

    stamps = [parse(row["changed_at"]) for row in rows]
    assert len(set(stamps)) == len(rows) == 200
    assert all(stamp.tzinfo is not None for stamp in stamps)


def test_a_change_gets_a_later_changed_at_than_any_before() -> None:
    """Rows whose stock changed carry a changed_at after every stamp of the earlier read."""
    world = make_world()
    before = {row["product_code"]: row for row in read(world)}
    moves(world)
    after = {row["product_code"]: row for row in read(world)}

    latest_before = cursor(list(before.values()))
    changed = [c for c in after if c not in before or after[c]["stock"] != before[c]["stock"]]
    assert changed
    for code in changed:
        assert parse(after[code]["changed_at"]) > latest_before
    # A row keeps its stamp exactly while it is untouched (a stock may also go and come back).
    kept = [
        c for c in before.keys() & after.keys() if after[c]["changed_at"] == before[c]["changed_at"]
    ]
    assert kept
    assert all(after[c] == before[c] for c in kept)


def test_changes_stay_ordered_even_when_the_clock_stands_still() -> None:
    """With a clock that never moves, every change still gets a later time (a microsecond on)."""
    world = DemoWorld(products=50, failure_rate=0.0, clock_today=lambda: TODAY)
    first = read(world)
    moves(world, 9)

    changes = read(world, since=cursor(first))
    assert changes
    assert [parse(r["changed_at"]) for r in changes] == sorted(
        parse(r["changed_at"]) for r in changes
    )
    assert min(parse(r["changed_at"]) for r in changes) > cursor(first)


def test_changed_since_and_the_first_snapshot_add_up_to_the_current_snapshot() -> None:
    """Applying the changes since a snapshot's cursor to it gives what a full read gives now."""
    incremental, full = make_world(), make_world()  # twins: same seed, same clock readings
    snapshot = read(incremental)
    assert read(full) == snapshot
    moves(incremental)
    moves(full)

    changes = read(incremental, since=cursor(snapshot))
    expected = {row["product_code"]: row for row in read(full)}

    rows = {row["product_code"]: row for row in snapshot}
    for change in changes:
        if change.get("deleted"):
            del rows[change["product_code"]]
        else:
            rows[change["product_code"]] = change
    assert rows == expected
    tombstones = [change for change in changes if change.get("deleted")]
    assert tombstones, "the seed discontinues a product within these reads"
    assert all(set(t) == {"product_code", "deleted", "changed_at"} for t in tombstones)
    assert len(changes) < len(expected)  # only what changed, not the snapshot again


def test_changed_since_answers_only_later_changes_oldest_first() -> None:
    """Every row of a changes read changed after the cursor, in changed_at order."""
    world = make_world()
    since = cursor(read(world))
    moves(world)

    changes = read(world, since=since)
    stamps = [parse(row["changed_at"]) for row in changes]
    assert stamps == sorted(stamps)
    assert all(stamp > since for stamp in stamps)
    assert read(world, since=cursor(changes) + timedelta(days=1)) == []


def test_the_full_snapshot_never_holds_tombstones() -> None:
    """Without changed_since the ERP answers its current products only, none marked deleted."""
    world = make_world()
    codes = {row["product_code"] for row in read(world)}
    moves(world)
    rows = read(world)

    assert not any("deleted" in row for row in rows)
    assert codes - {row["product_code"] for row in rows}  # some were discontinued meanwhile


@pytest.mark.parametrize(
    ("source_id", "since"),
    [("eshop_stock", START), ("erp_stock", datetime(2026, 11, 29, 10, 0))],
)
def test_changed_since_is_refused_elsewhere_and_without_a_zone(
    source_id: str, since: datetime
) -> None:
    """Only erp_stock keeps a journal, and a cursor time must say its zone."""
    with pytest.raises(ValueError, match="changed_since"):
        make_world().fetch(source_id, None, changed_since=since)
