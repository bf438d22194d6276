"""refresh.diff and refresh.guard: what a run changes, and when it may not publish it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import msgspec
import pytest

from catalog_refresher.domain.rules import KEY_SEPARATOR
from catalog_refresher.domain.specs import SOURCE_IDS, SPECS
from catalog_refresher.domain.window import Window
from catalog_refresher.errors import PublishRejected
from catalog_refresher.refresh import guard as publish_guard
from catalog_refresher.refresh.diff import Diff, FingerprintIndex, changeset, diff
from catalog_refresher.refresh.guard import REASON_LENGTH, check_publish
from catalog_refresher.refresh.validate import Batch
from catalog_refresher.store.base import RowDelete
from tests.helpers import TODAY, record, validated

ERP = SPECS["erp_stock"]
CONSUMED = SPECS["consumed_materials"]
SALES = SPECS["sales_data"]
WINDOW = Window(date_from=date(2025, 11, 29), date_to=date(2026, 11, 29))


def stored(source: str, batch: Batch, version: int = 1) -> FingerprintIndex:
    """The index of a store holding exactly ``batch`` (rows round-trip through JSON)."""
    encode = msgspec.json.encode
    return FingerprintIndex.build(
        SPECS[source], version, [(k, encode(r)) for k, r in batch.rows.items()]
    )


def erp(**stocks: float) -> Batch:
    """An ERP snapshot: product code -> stock."""
    return validated("erp_stock", [record("erp_stock", c, stock=s) for c, s in stocks.items()])


def consumed(*days: str) -> Batch:
    """A consumed-materials history of product P-1, one row per day given."""
    return validated("consumed_materials", [record("consumed_materials", date=d) for d in days])


# --- diff -------------------------------------------------------------------------------


def test_diff_finds_inserts_updates_and_deletes() -> None:
    """New keys are inserts, changed rows updates, vanished keys deletes; equal rows nothing."""
    found = diff(ERP, stored("erp_stock", erp(A=1, B=2, C=3)), erp(A=1, B=5, D=4), None)
    assert (found.inserts, found.updates, sorted(found.deletes)) == (["D"], ["B"], ["C"])
    assert found.scope == 3
    assert not found.empty


@pytest.mark.parametrize("source", SOURCE_IDS)
def test_unchanged_rows_are_no_change_after_a_round_trip(source: str) -> None:
    """Every source's rows, stored as JSON and read back, diff as unchanged against themselves."""
    batch = validated(source, [record(source, "P-1"), record(source, "P-2")])
    found = diff(
        SPECS[source], stored(source, batch), batch, WINDOW if SPECS[source].is_history else None
    )
    assert found.empty
    assert found.scope == 2


def test_100_and_100_0_are_no_update() -> None:
    """A stock sent as ``100`` after ``100.0`` was stored is not an update."""
    found = diff(
        ERP,
        stored("erp_stock", erp(A=100.0)),
        validated("erp_stock", [record("erp_stock", "A", stock=100)]),
        None,
    )
    assert found.empty


def test_history_diff_considers_only_stored_rows_inside_the_window() -> None:
    """Stored rows older than the window are neither in scope nor deleted."""
    index = stored("consumed_materials", consumed("2026-01-01", "2026-02-01"))
    index.fingerprints[f"P-1{KEY_SEPARATOR}2025-11-28{KEY_SEPARATOR}0"] = 1  # aged out
    found = diff(CONSUMED, index, consumed("2026-01-01"), WINDOW)
    assert found.deletes == [f"P-1{KEY_SEPARATOR}2026-02-01{KEY_SEPARATOR}0"]
    assert found.scope == 2


def test_history_period_is_in_scope_while_its_last_day_is_in_the_window() -> None:
    """A stored sales period ending on or after ``date_from`` is in scope; an older one is not."""
    periods = [record("sales_data", period=p) for p in ("2025-11", "2025-10")]
    batch = validated("sales_data", periods, Window(date_from=date(2025, 10, 1), date_to=TODAY))
    found = diff(SALES, stored("sales_data", batch), Batch(), WINDOW)
    assert found.deletes == [f"P-1{KEY_SEPARATOR}2025-11{KEY_SEPARATOR}0"]


def test_changeset_encodes_writes_and_names_products_of_deletes() -> None:
    """Writes carry the normalised JSON and day; deletes name the product inside a composite key."""
    boxes = validated("transport_data", [record("transport_data", "P-1", box_code="B1")])
    gone = diff(SPECS["transport_data"], stored("transport_data", boxes), Batch(), None)
    deletes = changeset(SPECS["transport_data"], gone, Batch(), 7)
    assert deletes.deletes == [RowDelete(f"B1{KEY_SEPARATOR}P-1", "P-1")]
    assert deletes.expected_version == 7

    rows = consumed("2026-03-04")
    [write] = changeset(
        CONSUMED, diff(CONSUMED, FingerprintIndex(version=0), rows, WINDOW), rows, 0
    ).writes
    assert (write.product_code, write.day) == ("P-1", date(2026, 3, 4))
    assert msgspec.json.decode(write.data) == {
        "product_code": "P-1",
        "date": "2026-03-04",
        "quantity": 3.0,
    }


def test_index_update_follows_the_applied_diff() -> None:
    """After ``update`` the index equals the batch: the same batch then diffs as empty."""
    index = stored("erp_stock", erp(A=1, B=2))
    batch = erp(A=1, B=3, C=4)
    index.update(diff(ERP, index, batch, None), batch, version=2)
    assert index.version == 2
    assert diff(ERP, index, batch, None).empty


# --- guard ------------------------------------------------------------------------------


Case = tuple[str, Batch, Diff]


def guard(
    spec_id: str, batch: Batch, found: Diff, *, share: float = 0.5, force: bool = False
) -> None:
    """``check_publish`` for ``spec_id``, with the default MaxDeleteShare."""
    check_publish(spec=SPECS[spec_id], batch=batch, diff=found, max_delete_share=share, force=force)


def empty_snapshot() -> Case:
    """An ERP snapshot that comes back empty while one row is stored."""
    return "erp_stock", Batch(), diff(ERP, stored("erp_stock", erp(A=1)), Batch(), None)


def too_many_deletes() -> Case:
    """An ERP snapshot that would remove three of five stored rows."""
    before, batch = stored("erp_stock", erp(A=1, B=2, C=3, D=4, E=5)), erp(A=1, B=2)
    return "erp_stock", batch, diff(ERP, before, batch, None)


def all_invalid() -> Case:
    """A first ERP load whose every record is invalid."""
    batch = validated("erp_stock", [{"product_code": "A"}, {"stock": 1}])
    return "erp_stock", batch, diff(ERP, FingerprintIndex(version=0), batch, None)


def empty_history_window() -> Case:
    """A history window that comes back empty while the stored window has a row."""
    before = stored("consumed_materials", consumed("2026-01-01"))
    return "consumed_materials", Batch(), diff(CONSUMED, before, Batch(), WINDOW)


REFUSALS: dict[str, Callable[[], Case]] = {
    "empty snapshot": empty_snapshot,
    "more than the share deleted": too_many_deletes,
    "every record invalid": all_invalid,
    "empty history window": empty_history_window,
}


@pytest.mark.parametrize("case", REFUSALS.values(), ids=REFUSALS.keys())
def test_guard_rejects_and_force_overrides(case: Callable[[], Case]) -> None:
    """Each guarded situation raises PublishRejected, and a forced run publishes anyway."""
    spec_id, batch, found = case()
    with pytest.raises(PublishRejected):
        guard(spec_id, batch, found)
    guard(spec_id, batch, found, force=True)


def test_deleting_exactly_the_share_is_allowed() -> None:
    """Removing exactly ``MaxDeleteShare`` of the rows passes; one row more is rejected."""
    before = stored("erp_stock", erp(A=1, B=2, C=3, D=4))
    guard("erp_stock", erp(A=1, B=2), diff(ERP, before, erp(A=1, B=2), None))
    with pytest.raises(PublishRejected, match="MaxDeleteShare"):
        guard("erp_stock", erp(A=1), diff(ERP, before, erp(A=1), None))


def test_deleting_exactly_a_non_binary_share_is_allowed() -> None:
    """With MaxDeleteShare 0.29, removing exactly 29 of 100 rows passes."""
    rows: dict[str, Any] = {f"P{i:03}": i for i in range(100)}
    kept = erp(**dict(list(rows.items())[29:]))
    guard("erp_stock", kept, diff(ERP, stored("erp_stock", erp(**rows)), kept, None), share=0.29)


def test_first_load_of_an_empty_snapshot_is_fine() -> None:
    """With nothing stored, an empty snapshot is published (nothing to protect)."""
    guard("erp_stock", Batch(), diff(ERP, FingerprintIndex(version=0), Batch(), None))


def test_history_rows_ageing_out_are_not_removals() -> None:
    """An empty history window passes when the only stored rows are older than the window."""
    index = FingerprintIndex(
        version=1, fingerprints={f"P-1{KEY_SEPARATOR}2024-01-01{KEY_SEPARATOR}0": 1}
    )
    guard("consumed_materials", Batch(), diff(CONSUMED, index, Batch(), WINDOW))


def test_partly_invalid_batch_is_not_rejected_for_its_invalid_records() -> None:
    """A batch with some valid records publishes; only an all-invalid batch is refused."""
    batch = validated("erp_stock", [record("erp_stock", "A"), {"product_code": "B"}])
    guard("erp_stock", batch, diff(ERP, FingerprintIndex(version=0), batch, None))


def test_an_all_invalid_rejection_shows_the_first_reasons() -> None:
    """`every record (3) was invalid: record 0: ...; record 1: ...`: the operator sees why."""
    batch = validated("erp_stock", [{"product_code": "A"}, {"stock": 1}, {"product_code": ""}])
    with pytest.raises(PublishRejected) as caught:
        guard("erp_stock", batch, diff(ERP, FingerprintIndex(version=0), batch, None))
    assert str(caught.value) == (
        "every record (3) was invalid: record 0: Object missing required field `stock`;"
        " record 1: Object missing required field `product_code`;"
        " record 2: Object missing required field `stock`"
    )


def test_an_all_invalid_rejection_shows_at_most_three_clipped_reasons() -> None:
    """Of many reasons three are shown, each at most REASON_LENGTH long, and how many more."""
    batch = Batch(fetched=5, invalid=5, reasons=[f"record {i}: " + "x" * 500 for i in range(5)])
    message = publish_guard.all_invalid(batch)
    shown = message.removeprefix("every record (5) was invalid: ").split("; ")
    assert [reason[:9] for reason in shown[:3]] == ["record 0:", "record 1:", "record 2:"]
    assert all(len(reason) == REASON_LENGTH and reason.endswith("…") for reason in shown[:3])
    assert shown[3] == "and 2 more"
    assert publish_guard.all_invalid(Batch(fetched=1, invalid=1, reasons=["record 0: short"])) == (
        "every record (1) was invalid: record 0: short"
    )
