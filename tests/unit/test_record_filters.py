"""Record filters: one endpoint's records split between sources, before any other rule."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest

from catalog_refresher.config.settings import CsvFormat, FieldRule, FilterCondition, FilterOperator
from catalog_refresher.domain.records import Attributes, Consumption, EshopStock
from catalog_refresher.domain.specs import SPECS
from catalog_refresher.domain.window import Window
from catalog_refresher.refresh.validate import Batch, validate
from catalog_refresher.sources.base import Payload
from catalog_refresher.sources.mapping import reader_for
from tests.helpers import json_path

WINDOW = Window(date_from=date(2025, 11, 29), date_to=date(2026, 11, 29))


def when(path: str, operator: str, *values: str) -> FilterCondition:
    return FilterCondition(
        path=json_path(path), operator=FilterOperator(operator), values=tuple(values)
    )


def rule(field: str, source: str, **options: Any) -> FieldRule:
    return FieldRule(field=field, source=source, path=json_path(source), **options)


#: Flexi stock-movement lines: the line's document says receipt or issue, and its type.
LINE_FIELDS = (
    rule("product_code", "cenik", remove_prefix="code:"),
    rule("date", "datVytvor"),
    rule("quantity", "mnozMj"),
)


def line(code: str, direction: str, kind: str, **more: Any) -> dict[str, Any]:
    document = {"typPohybuK": f"typPohybu.{direction}", "typDokl": f"code:{kind}"}
    return {
        "cenik": f"code:{code}",
        "datVytvor": "2026-05-02+02:00",
        "mnozMj": "1.000",
        "doklSklad": [document],
        **more,
    }


LINES = [
    line("A", "prijem", "PRIJEMKA"),
    line("B", "vydej", "VYDEJKA"),
    line("C", "vydej", "PRODEJ"),
    line("D", "vydej", "SPOTREBA"),
    line("E", "prijem", "PRIJEMKA"),
]
#: Issues that are not sales: the material consumed.
CONSUMED = (
    when("doklSklad[0].typPohybuK", "Equals", "typPohybu.vydej"),
    when("doklSklad[0].typDokl", "NotIn", "code:PRODEJ", "code:PRODEJKA"),
)


def consumed(
    lines: list[Any], filters: tuple[FilterCondition, ...] = CONSUMED, **options: Any
) -> Batch:
    body = json.dumps(lines).encode()
    payload = Payload(pages=[body], fields=LINE_FIELDS, filters=filters, **options)
    return validate(SPECS["consumed_materials"], payload, WINDOW)


def test_only_the_records_every_condition_keeps_are_read() -> None:
    """Issues that are not sales: B and D of the five lines; the rest are not this source's."""
    batch = consumed(LINES)
    assert [r.product_code for r in batch.rows.values()] == ["B", "D"]  # type: ignore[attr-defined]
    assert (batch.fetched, batch.invalid) == (2, 0)


def test_filtered_out_records_that_would_be_invalid_are_not_counted() -> None:
    """A receipt line with no quantity is another source's problem, not this run's."""
    broken = line("F", "prijem", "PRIJEMKA")
    del broken["mnozMj"]
    batch = consumed([broken, *LINES, {"not": "a line at all"}])
    assert (batch.fetched, batch.invalid, len(batch.rows)) == (2, 0, 2)


def test_an_invalid_kept_record_is_named_by_its_place_in_the_page() -> None:
    """Messages count every record of the page, the dropped ones too."""
    bad = line("X", "vydej", "SPOTREBA", mnozMj="lots")
    batch = consumed([*LINES, bad])
    assert batch.reasons == ["record 5: Expected `float`, got `str` - at `$.mnozMj`"]
    empty = line(" ", "vydej", "SPOTREBA")
    assert consumed([*LINES, empty]).reasons == ["record 5: product_code is empty"]


@pytest.mark.parametrize(
    ("condition", "kept"),
    [
        (when("kind", "Equals", "a"), ["1", "5"]),
        (when("kind", "NotEquals", "a"), ["2", "3", "4", "6"]),
        (when("kind", "In", "a", "b"), ["1", "2", "5"]),
        (when("kind", "NotIn", "a", "b"), ["3", "4", "6"]),
        (when("kind", "Matches", "^[ab]$"), ["1", "2", "5"]),
        (when("kind", "Matches", "x"), ["3"]),
        (when("count", "Equals", "1"), ["1", "2"]),
        (when("flag", "Equals", "true"), ["1", "3"]),
    ],
    ids=["equals", "not-equals", "in", "not-in", "matches", "matches-searched", "number", "bool"],
)
def test_each_operator(condition: FilterCondition, kept: list[str]) -> None:
    """Values compare as trimmed text; an absent or null value equals nothing."""
    records = [
        {"product_code": "1", "stock": 1, "kind": " a ", "count": 1, "flag": True},
        {"product_code": "2", "stock": 1, "kind": "b", "count": "1", "flag": False},
        {"product_code": "3", "stock": 1, "kind": "xa", "count": 1.5, "flag": "true"},
        {"product_code": "4", "stock": 1, "kind": None},
        {"product_code": "5", "stock": 1, "kind": "a", "count": 2},
        {"product_code": "6", "stock": 1, "kind": {"object": "a"}},
    ]
    payload = Payload(pages=[json.dumps(records).encode()], filters=(condition,))
    assert list(validate(SPECS["eshop_stock"], payload, None).rows) == kept


def test_a_number_compares_by_its_json_text() -> None:
    """`1`, `1.0` and `"1"` are equal; `1.5` is `"1.5"`."""
    records = [
        {"product_code": c, "stock": 1, "n": n} for c, n in [("A", 1), ("B", 1.0), ("C", "1.5")]
    ]
    for wanted, kept in (("1", ["A", "B"]), ("1.5", ["C"])):
        payload = Payload(
            pages=[json.dumps(records).encode()], filters=(when("n", "Equals", wanted),)
        )
        assert list(validate(SPECS["eshop_stock"], payload, None).rows) == kept


def test_a_filter_works_without_fields() -> None:
    """A payload in the contract's names is filtered too; the filtered field is not mapped."""
    records = [
        {"product_code": "A", "stock": 1, "sklad": "code:ZBOZI"},
        {"product_code": "B", "stock": 2, "sklad": "code:MAT"},
    ]
    body = json.dumps(records).encode()
    payload = Payload(pages=[body], filters=(when("sklad", "Matches", "^code:ZBOZI$"),))
    assert validate(SPECS["eshop_stock"], payload, None).rows == {
        "A": EshopStock(product_code="A", stock=1.0)
    }
    assert reader_for(EshopStock, (), payload.filters).mapped


def test_a_filter_may_read_the_field_it_maps() -> None:
    """The filter sees the value as sent, before the field's rules change it."""
    fields = (rule("product_code", "kod", remove_prefix="code:"), rule("stock", "stav"))
    body = b'[{"kod": "code:A", "stav": 1}, {"kod": "B", "stav": 2}]'
    payload = Payload(pages=[body], fields=fields, filters=(when("kod", "Matches", "^code:"),))
    assert list(validate(SPECS["eshop_stock"], payload, None).rows) == ["A"]


def test_csv_columns_are_filtered_by_name() -> None:
    """In a CSV export a path is a column's name, dots and all."""
    text = "code;stock;visibility.now\r\nA;1;visible\r\nB;2;hidden\r\nC;3;visible\r\n"
    payload = Payload(
        pages=[text.encode()],
        csv=CsvFormat(delimiter=";"),
        fields=(FieldRule(field="product_code", source="code"),),
        filters=(
            FilterCondition(
                path=FieldRule(field="x", source="visibility.now").path,
                operator=FilterOperator.EQUALS,
                values=("visible",),
            ),
        ),
    )
    batch = validate(SPECS["eshop_stock"], payload, None)
    assert (list(batch.rows), batch.fetched) == (["A", "C"], 2)


def test_attributes_are_filtered_and_keep_the_filtered_field() -> None:
    """Attributes (raw dicts) filter alike; an unmapped filtered field stays free-form."""
    body = b'[{"product_code": "A", "shop": "cz"}, {"product_code": "B", "shop": "sk"}]'
    payload = Payload(pages=[body], filters=(when("shop", "Equals", "cz"),))
    (kept,) = validate(SPECS["attributes"], payload, None).rows.values()
    assert isinstance(kept, Attributes)
    assert (kept.product_code, kept.extra) == ("A", '{"shop":"cz"}')


def test_one_endpoint_feeds_two_sources() -> None:
    """Receipts are purchases, issues that are not sales consumption: no line in both."""
    receipts = (when("doklSklad[0].typPohybuK", "Equals", "typPohybu.prijem"),)
    body = json.dumps(LINES).encode()
    purchases = validate(
        SPECS["purchase_history"],
        Payload(pages=[body], fields=LINE_FIELDS, filters=receipts),
        WINDOW,
    )
    consumption = consumed(LINES)
    assert [r.product_code for r in purchases.rows.values()] == ["A", "E"]  # type: ignore[attr-defined]
    assert list(consumption.rows.values()) == [
        Consumption(product_code=code, date="2026-05-02", quantity=1.0) for code in ("B", "D")
    ]


def test_a_page_with_nothing_kept_is_an_empty_page() -> None:
    """Every record filtered out: nothing fetched, nothing invalid."""
    batch = consumed([line("A", "prijem", "PRIJEMKA")])
    assert (batch.fetched, batch.invalid, batch.rows) == (0, 0, {})
