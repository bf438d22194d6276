"""refresh.validate.validate: contract sections 1 and 4, one record at a time."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest

from catalog_refresher.domain import records
from catalog_refresher.domain.aggregate import attributes_view
from catalog_refresher.domain.rules import KEY_SEPARATOR, row_day
from catalog_refresher.domain.specs import SOURCE_IDS, SPECS
from catalog_refresher.domain.window import Window
from catalog_refresher.errors import InvalidPayloadError
from catalog_refresher.refresh.diff import product_of_key
from catalog_refresher.refresh.validate import validate
from catalog_refresher.sources.base import Payload
from tests.helpers import json_path, payload, record, validated

WINDOW = Window(date_from=date(2025, 11, 29), date_to=date(2026, 11, 29))


def only(source: str, raw: dict[str, Any], window: Window | None = None) -> records.Record:
    """The one record ``raw`` becomes, failing the test if it is refused."""
    batch = validated(source, [raw], window)
    assert batch.invalid == 0, batch.reasons
    [clean] = batch.rows.values()
    return clean


# --- what is accepted -------------------------------------------------------------------


@pytest.mark.parametrize("source", SOURCE_IDS)
def test_every_source_accepts_a_valid_record(source: str) -> None:
    """A record in the shape of contract section 4 is accepted by its source as one row."""
    batch = validated(source, [record(source)])
    assert (batch.fetched, batch.invalid, batch.reasons) == (1, 0, [])
    [clean] = batch.rows.values()
    assert isinstance(clean, SPECS[source].record_type)
    assert clean.product_code == "P-1"


def test_unknown_fields_of_other_sources_are_dropped() -> None:
    """Fields a source does not define are not rejected; outside ``attributes`` they are dropped."""
    clean = only("erp_stock", record("erp_stock", color="red", warehouse={"id": 1}))
    assert clean == only("erp_stock", record("erp_stock"))


def test_numbers_given_as_strings_are_accepted() -> None:
    """A quantity sent as a numeric string is read as that number."""
    clean = only("erp_stock", record("erp_stock", stock="71238.961591"))
    assert isinstance(clean, records.ErpStock)
    assert clean.stock == pytest.approx(71238.961591)


def test_integer_and_float_forms_give_equal_records() -> None:
    """``100``, ``100.0`` and ``"100"`` normalise to equal records with equal hashes."""
    forms = [only("erp_stock", record("erp_stock", stock=s)) for s in (100, 100.0, "100")]
    assert forms[0] == forms[1] == forms[2]
    assert len({hash(f) for f in forms}) == 1


@pytest.mark.parametrize(
    ("source", "padded", "expected_key"),
    [
        ("erp_stock", {"product_code": " P-1\t"}, "P-1"),
        ("lots", {"lot": "  L1 "}, f"P-1{KEY_SEPARATOR}L1"),
        ("transport_data", {"box_code": " BOX-1 "}, f"BOX-1{KEY_SEPARATOR}P-1"),
        ("suppliers", {"supplier_code": "S1 "}, f"P-1{KEY_SEPARATOR}S1"),
        ("consumed_materials", {"product_code": " P-1 "}, f"P-1{KEY_SEPARATOR}2026-11-01"),
    ],
)
def test_stray_whitespace_in_codes_is_stripped(
    source: str, padded: dict[str, str], expected_key: str
) -> None:
    """Codes lose leading and trailing whitespace, in the stored record and in its row key."""
    batch = validated(source, [record(source, **padded)])
    [(key, clean)] = batch.rows.items()
    [(field, value)] = padded.items()
    assert getattr(clean, field) == value.strip()
    assert key.startswith(expected_key)


@pytest.mark.parametrize("source", ["stock_taking", "purchase_history", "consumed_materials"])
def test_dates_with_an_offset_are_accepted_and_normalised(source: str) -> None:
    """A date such as ``2017-05-26+02:00`` is accepted and stored as ``2017-05-26``."""
    around = Window(date_from=date(2017, 1, 1), date_to=date(2017, 12, 31))
    clean = only(source, record(source, date="2017-05-26+02:00"), around)
    assert getattr(clean, "date", None) == "2017-05-26"


# --- what is refused, record by record -------------------------------------------------


@pytest.mark.parametrize(
    ("source", "changes", "drop", "field"),
    [
        ("erp_stock", {}, "stock", "stock"),
        ("erp_stock", {"stock": "a lot"}, None, "stock"),
        ("erp_stock", {"product_code": 123}, None, "product_code"),
        ("erp_stock", {"product_code": "   "}, None, "product_code"),
        ("eshop_stock", {"product_code": None}, None, "product_code"),
        ("transport_data", {}, "box_code", "box_code"),
        ("lots", {}, "lot", "lot"),
        ("suppliers", {}, "name", "name"),
        ("stock_taking", {"date": "2026-13-01"}, None, "date"),
        ("stock_taking", {"date": "yesterday"}, None, "date"),
        ("purchase_history", {"date": "2026-02-30"}, None, "date"),
        ("consumed_materials", {}, "quantity", "quantity"),
        ("sales_data", {"period": "2026-13"}, None, "period"),
        ("sales_data", {"period": "2026/10"}, None, "period"),
        ("sales_data", {}, "period", "period"),
        ("attributes", {"season_months": [0, 6]}, None, "season_months"),
        ("attributes", {"season_months": [13]}, None, "season_months"),
        ("attributes", {"stock_min": "few"}, None, "stock_min"),
    ],
)
def test_an_invalid_record_is_counted_with_a_reason_naming_the_field(
    source: str, changes: dict[str, Any], drop: str | None, field: str
) -> None:
    """A bad record is left out and counted with a reason naming the field; the rest is kept."""
    bad = record(source, "P-2", **changes)
    if drop:
        del bad[drop]
    batch = validated(source, [record(source, "P-1"), bad, record(source, "P-3")])
    assert (batch.fetched, batch.invalid, len(batch.rows)) == (3, 1, 2)
    assert {r.product_code for r in batch.rows.values()} == {"P-1", "P-3"}
    [reason] = batch.reasons
    assert reason.startswith("record 1")
    assert field in reason


@pytest.mark.parametrize(
    "value", ['"NaN"', '"nan"', '"Infinity"', '"-inf"', "1e400", "1e16", "-1e16", "10" * 10]
)
def test_non_finite_and_huge_numbers_are_refused(value: str) -> None:
    """NaN, infinities and numbers beyond 1e15 (given as JSON text) are refused, typed or not."""
    for source, field in (("erp_stock", "stock"), ("attributes", "stock_min")):
        bad = record(source, "P-1", **{field: "@"})
        page = json.dumps([bad, record(source, "P-2")]).replace('"@"', value).encode()
        batch = validate(SPECS[source], Payload(pages=[page]), None)
        assert (batch.invalid, list(batch.rows)) == (1, ["P-2"]), (source, batch.reasons)


def test_duplicate_key_in_a_snapshot_last_wins() -> None:
    """A key repeated in one snapshot keeps its last occurrence; the earlier counts invalid."""
    batch = validated(
        "erp_stock",
        [
            record("erp_stock", "P-1", stock=1),
            record("erp_stock", "P-2", stock=2),
            record("erp_stock", " P-1 ", stock=3),
        ],
    )
    assert (batch.fetched, batch.invalid) == (3, 1)
    assert {k: getattr(r, "stock", None) for k, r in batch.rows.items()} == {"P-1": 3, "P-2": 2}
    assert "duplicate" in batch.reasons[0]


def test_duplicate_composite_key_last_wins() -> None:
    """Two rows with the same product and lot in one lots snapshot keep the later one."""
    batch = validated("lots", [record("lots", amount=1), record("lots", amount=2)])
    assert batch.invalid == 1
    [clean] = batch.rows.values()
    assert getattr(clean, "amount", None) == 2


# --- history windows -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "when", "inside"),
    [
        ("consumed_materials", {"date": "2025-11-28"}, False),
        ("consumed_materials", {"date": "2025-11-29"}, True),
        ("consumed_materials", {"date": "2026-11-29"}, True),
        ("consumed_materials", {"date": "2026-11-30"}, False),
        ("purchase_history", {"date": "2024-01-01"}, False),
        ("purchase_history", {"date": "2027-01-01"}, False),
        ("sales_data", {"period": "2025-10"}, False),
        ("sales_data", {"period": "2025-11"}, True),
        ("sales_data", {"period": "2026-11"}, True),
        ("sales_data", {"period": "2026-12"}, False),
        ("sales_data", {"period": None, "date": "2025-11-28"}, False),
        ("sales_data", {"period": None, "date": "2026-11-30"}, False),
    ],
)
def test_history_rows_outside_the_window_are_invalid(
    source: str, when: dict[str, Any], inside: bool
) -> None:
    """Rows before ``date_from`` or after ``date_to`` are invalid; a period counts by last day."""
    batch = validated(source, [record(source, **when)], WINDOW)
    assert (len(batch.rows), batch.invalid) == ((1, 0) if inside else (0, 1))
    if not inside:
        assert "outside the window" in batch.reasons[0]


def test_sales_given_by_date_are_booked_to_that_month() -> None:
    """A sale given by ``date`` is booked to that date's period, counted on its last day."""
    by_date: dict[str, Any] = {"period": None}
    batch = validated(
        "sales_data",
        [
            record("sales_data", date="2026-10-03", **by_date),
            record("sales_data", date="2026-10-20", **by_date),
        ],
        WINDOW,
    )
    assert batch.invalid == 0
    sales = list(batch.rows.values())
    assert [getattr(s, "period", None) for s in sales] == ["2026-10", "2026-10"]
    assert len(batch.rows) == 2  # two sales of one month are two rows, summed when read
    assert row_day(sales[0]) == date(2026, 10, 31)


def test_period_in_non_ascii_digits_is_refused() -> None:
    """A period written in non-ASCII digits is not ``YYYY-MM`` and is refused."""
    batch = validated("sales_data", [record("sales_data", period="٢٠٢٦-١٠")], WINDOW)
    assert (len(batch.rows), batch.invalid) == (0, 1)


def test_history_source_without_a_window_is_a_programming_error() -> None:
    """Validating a history source without its window raises instead of guessing one."""
    with pytest.raises(ValueError, match="window"):
        validate(SPECS["sales_data"], payload([record("sales_data")]), None)


# --- payload shape ---------------------------------------------------------------------


def test_records_path_envelope_is_unwrapped() -> None:
    """With ``RecordsPath`` ``data.items`` the records are read from inside the envelope."""
    wrapped = payload(
        [record("erp_stock", "P-1"), record("erp_stock", "P-2")], records_path="data.items"
    )
    batch = validate(SPECS["erp_stock"], wrapped, None)
    assert list(batch.rows) == ["P-1", "P-2"]


def test_records_path_missing_from_the_page_fails_the_payload() -> None:
    """A page lacking the configured ``RecordsPath`` is not the expected shape."""
    wrong = Payload(pages=[b'{"data": {"rows": []}}'], records_path=json_path("data.items"))
    with pytest.raises(InvalidPayloadError, match="items"):
        validate(SPECS["erp_stock"], wrong, None)


def test_every_page_is_read() -> None:
    """Records of all pages end up in one batch, reasons naming the page."""
    pages = [payload([record("erp_stock", "P-1")]).pages[0], b'[{"product_code": "P-2"}]']
    batch = validate(SPECS["erp_stock"], Payload(pages=pages), None)
    assert (list(batch.rows), batch.fetched, batch.invalid) == (["P-1"], 2, 1)
    assert batch.reasons[0].startswith("page 2 record 0")


@pytest.mark.parametrize(
    "body",
    [b"not json", b"", b'{"product_code": "P-1", "stock": 1}', b"42", b'[{"product_code": "P-1"'],
    ids=["garbage", "empty", "object", "scalar", "truncated"],
)
def test_a_payload_that_is_not_a_json_array_fails_the_run(body: bytes) -> None:
    """Not JSON, or JSON that is not an array of records, raises InvalidPayloadError."""
    with pytest.raises(InvalidPayloadError):
        validate(SPECS["erp_stock"], Payload(pages=[body]), None)


def test_malformed_json_after_a_bad_record_is_an_invalid_payload() -> None:
    """A truncated array whose first record is also invalid still raises InvalidPayloadError."""
    body = b'[{"product_code": 5, "stock": 1}, {"product_code": "P-2"'
    with pytest.raises(InvalidPayloadError):
        validate(SPECS["erp_stock"], Payload(pages=[body]), None)


# --- attributes ------------------------------------------------------------------------


def test_attributes_keep_unknown_fields_as_free_form() -> None:
    """Unknown attribute fields are kept and shown next to the typed ones."""
    raw = record("attributes", color="red", dims={"w": 2, "h": [1, 2]}, stock_min="5")
    clean = only("attributes", raw)
    view = attributes_view(clean)  # type: ignore[arg-type]
    assert view["color"] == "red"
    assert view["dims"] == {"w": 2, "h": [1, 2]}
    assert view["stock_min"] == 5.0
    assert view["season_months"] == [11, 12]


def test_attributes_free_form_order_does_not_change_the_record() -> None:
    """The same free-form attributes in another key order give an equal record."""
    one = only("attributes", {"product_code": "P-1", "a": 1, "b": 2})
    two = only("attributes", {"b": 2, "product_code": "P-1", "a": 1})
    assert one == two


def test_attributes_view_holds_only_attributes() -> None:
    """The attributes object holds the typed and free-form attributes, not the product code."""
    clean = only("attributes", {"product_code": "P-1", "color": "red", "stock_min": 5})
    assert attributes_view(clean) == {"color": "red", "stock_min": 5.0}  # type: ignore[arg-type]


def test_free_form_numbers_100_and_100_0_are_equal() -> None:
    """A free-form attribute sent as ``100`` or ``100.0`` normalises to the same record."""
    one = only("attributes", {"product_code": "P-1", "weight": 100})
    two = only("attributes", {"product_code": "P-1", "weight": 100.0})
    assert one == two


# --- the row key layout ----------------------------------------------------------------


@pytest.mark.parametrize("source", ["erp_stock", "lots", "consumed_materials"])
def test_a_code_holding_the_key_separator_cannot_corrupt_row_keys(source: str) -> None:
    """A code containing the key separator is refused, or its key still names its product."""
    batch = validated(source, [record(source, f"A{KEY_SEPARATOR}B")])
    assert batch.invalid + len(batch.rows) == 1
    for key, clean in batch.rows.items():
        assert product_of_key(SPECS[source], key) == clean.product_code
