"""Value rules per field: Trim, RemovePrefix, After, Before, Pattern, EmptyAsNull, Default, Map."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest

from catalog_refresher.config.settings import FieldRule
from catalog_refresher.domain.records import Purchase, StockTaking, Supplier
from catalog_refresher.domain.specs import SPECS
from catalog_refresher.domain.window import Window
from catalog_refresher.refresh.validate import Batch, validate
from catalog_refresher.sources.base import Payload
from tests.helpers import json_path

WINDOW = Window(date_from=date(2025, 11, 29), date_to=date(2026, 11, 29))


def rule(field: str, source: str, **options: Any) -> FieldRule:
    return FieldRule(field=field, source=source, path=json_path(source), **options)


def erp(records: list[dict[str, Any]], *fields: FieldRule) -> Batch:
    """ERP stock records read with ``fields`` (product code from `kod`, stock from `stav`)."""
    rules = (rule("product_code", "kod"), rule("stock", "stav"), *fields)
    body = json.dumps(records).encode()
    return validate(SPECS["erp_stock"], Payload(pages=[body], fields=rules), None)


def name_of(value: Any, **options: Any) -> Any:
    """The product name the rules make of ``value`` (sent as `nazev`)."""
    batch = erp([{"kod": "A", "stav": 1, "nazev": value}], rule("product_name", "nazev", **options))
    assert batch.invalid == 0, batch.reasons
    return batch.rows["A"].product_name  # type: ignore[attr-defined]


def test_text_is_trimmed_by_default() -> None:
    """A mapped name loses stray white space, a bare path and an object alike."""
    assert name_of("  Pleťový krém \t") == "Pleťový krém"
    assert name_of(" Krém ", trim=True) == "Krém"


def test_trim_false_keeps_the_text_as_sent() -> None:
    """`Trim: false` keeps the spaces (a lot code that is significant as written)."""
    assert name_of(" Krém ", trim=False) == " Krém "


def test_remove_prefix_after_and_before_cut_the_text() -> None:
    """The prefix goes, the text after `: ` stays; before `:` the code; each part trimmed."""
    assert name_of("code:Krém", remove_prefix="code:") == "Krém"
    assert name_of("KRM001:  Pleťový krém ", after=":") == "Pleťový krém"
    assert name_of("ABC s.r.o. : Praha", before=":") == "ABC s.r.o."


def test_after_then_before_take_the_middle() -> None:
    """With both, After cuts first: `A: name (50 ml)` gives `name`."""
    assert name_of("A: name (50 ml)", after=": ", before=" (") == "name"


def test_a_separator_that_is_not_there_keeps_the_whole_text() -> None:
    """A `cenik@showAs` without `: ` is the name as it is."""
    assert name_of("Krém bez kódu", after=": ") == "Krém bez kódu"
    assert name_of("Krém", before=":") == "Krém"


def test_pattern_takes_its_first_group_or_the_whole_match() -> None:
    """`^(\\S+)` takes the first word; a pattern without groups takes what matched."""
    assert name_of("FV-2026/0042 ze dne 1. 2.", pattern=r"^(\S+)") == "FV-2026/0042"
    assert name_of("obj. 2026/17, dodávka", pattern=r"[0-9]{4}/[0-9]+") == "2026/17"
    assert name_of("x: 12 ks", pattern=r"(?P<n>[0-9]+) ks") == "12"


def test_a_pattern_that_does_not_match_leaves_nothing() -> None:
    """No match: an optional field is null, a required one refused saying why."""
    assert name_of("no digits", pattern=r"[0-9]+") is None
    batch = erp([{"kod": "none here", "stav": 1}], rule("product_code", "kod", pattern=r"[0-9]+"))
    (reason,) = batch.reasons
    assert reason == (
        "record 0: Expected `str`, got `null` - at `$.kod`"
        " ('none here' does not match Pattern '[0-9]+')"
    )


def test_empty_text_of_an_optional_field_is_null_unless_told_otherwise() -> None:
    """`""` becomes null by default; `EmptyAsNull: false` keeps it."""
    assert name_of("") is None
    assert name_of("   ") is None
    assert name_of("", empty_as_null=False) == ""


def test_an_empty_required_code_is_refused_not_nulled() -> None:
    """A required field keeps `""`, which validation refuses as an empty code."""
    batch = erp([{"kod": " ", "stav": 1}])
    assert batch.reasons == ["record 0: product_code is empty"]


def test_default_fills_an_absent_or_null_value_only() -> None:
    """`Default: 0` for a stock that is missing or null; a sent zero or number stays."""
    batch = erp(
        [{"kod": "A", "stav": None}, {"kod": "B"}, {"kod": "C", "stav": "12.500"}],
        rule("stock", "stav", default=0),
    )
    assert {code: r.stock for code, r in batch.rows.items()} == {  # type: ignore[attr-defined]
        "A": 0.0,
        "B": 0.0,
        "C": 12.5,
    }


def test_without_default_a_missing_required_number_is_refused() -> None:
    """Shoptet's `null` quantity without a Default: the record is invalid, naming the path."""
    batch = erp([{"kod": "A", "stav": None}, {"kod": "B"}])
    assert batch.reasons == [
        "record 0: Expected `float`, got `null` - at `$.stav`",
        "record 1: Object missing required field `stav`",
    ]


def test_a_text_default_goes_through_the_text_rules() -> None:
    """A Default is the value the path did not give: Map still applies to it."""
    fields = rule("product_name", "nazev", default="x", value_map=(("x", "unknown"),))
    assert erp([{"kod": "A", "stav": 1}], fields).rows["A"].product_name == "unknown"  # type: ignore[attr-defined]


def test_map_replaces_exact_texts_and_keeps_the_rest() -> None:
    """`typPohybu.vydej` -> `issue`; a text not in the map stays as it is."""
    mapping = (("typPohybu.prijem", "receipt"), ("typPohybu.vydej", "issue"))
    assert name_of(" typPohybu.vydej ", value_map=mapping) == "issue"  # matched after Trim
    assert name_of("typPohybu.inventura", value_map=mapping) == "typPohybu.inventura"
    assert name_of("TYPPOHYBU.VYDEJ", value_map=mapping) == "TYPPOHYBU.VYDEJ"  # exact


def test_map_default_replaces_every_other_text() -> None:
    """With MapDefault, a text not in the map takes it; null stays null."""
    mapping = (("A", "in"),)
    assert name_of("B", value_map=mapping, map_default="other") == "other"
    assert name_of(None, value_map=mapping, map_default="other") is None


def test_map_on_numbers_and_booleans_compares_their_text() -> None:
    """A number sent as `1` matches the map's `"1"`; the mapped text becomes the field's type."""
    fields = (
        rule("product_code", "kod"),
        rule("supplier_code", "dodavatel"),
        rule("name", "nazev"),
        rule("is_primary", "hlavni", value_map=(("1", "true"), ("0", "false"))),
    )
    records = [
        {"kod": "A", "dodavatel": "S1", "nazev": "n", "hlavni": 1},
        {"kod": "A", "dodavatel": "S2", "nazev": "n", "hlavni": 0},
    ]
    body = json.dumps(records).encode()
    batch = validate(SPECS["suppliers"], Payload(pages=[body], fields=fields), None)
    assert [r.is_primary for r in batch.rows.values()] == [True, False]  # type: ignore[attr-defined]


@pytest.mark.parametrize(("sent", "read"), [("true", True), ("false", False), ("True", True)])
def test_booleans_sent_as_text_are_read_without_a_rule(sent: str, read: bool) -> None:
    """Flexi sends every value as text on some lists: `"true"` is a boolean."""
    body = json.dumps(
        [{"product_code": "A", "supplier_code": "S", "name": "n", "is_primary": sent}]
    ).encode()
    (supplier,) = validate(SPECS["suppliers"], Payload(pages=[body]), None).rows.values()
    assert supplier == Supplier(product_code="A", supplier_code="S", name="n", is_primary=read)


def test_rules_apply_in_their_documented_order() -> None:
    """Default, Trim, RemovePrefix, After, Before, Pattern, EmptyAsNull, Map: in that order."""
    options: dict[str, Any] = {
        "remove_prefix": "code:",
        "after": "/",
        "before": "#",
        "pattern": r"^([A-Z]+)",
        "value_map": (("RCV", "receipt"),),
    }
    assert name_of("  code: x / RCV-1 # note ", **options) == "receipt"
    assert name_of(None, default=" code:a/ RCV #", **options) == "receipt"
    assert name_of("code:a/ 12 #", **options) is None  # no match: null, Map never sees it


def test_a_purchase_line_maps_every_quirk_at_once() -> None:
    """A Flexi purchase line: relations unwrapped, names cut from showAs, a datetime's day."""
    fields = (
        rule("product_code", "cenik", remove_prefix="code:"),
        rule("date", "datVyst"),
        rule("quantity", "mnozMj"),
        rule("purchase_price", "cenaMj"),
        rule("currency", "mena", remove_prefix="code:"),
        rule("supplier_code", "firma", remove_prefix="code:"),
        rule("supplier_name", "firma@showAs", after=": "),
        rule("document_number", "doklFak@showAs", pattern=r"^(\S+)"),
    )
    line = {
        "cenik": "code:KRM001 ",
        "datVyst": "2026-01-22T11:22:10.832+01:00",
        "mnozMj": "10.000",
        "cenaMj": "87.50",
        "mena": "code:CZK",
        "firma": "code:DOD1",
        "firma@showAs": "DOD1: Dodavatel s.r.o. ",
        "doklFak@showAs": "PF-2026/7 Dodavatel s.r.o.",
    }
    body = json.dumps([line]).encode()
    batch = validate(SPECS["purchase_history"], Payload(pages=[body], fields=fields), WINDOW)
    assert list(batch.rows.values()) == [
        Purchase(
            product_code="KRM001",
            date="2026-01-22",
            quantity=10.0,
            purchase_price=87.5,
            currency="CZK",
            supplier_code="DOD1",
            supplier_name="Dodavatel s.r.o.",
            document_number="PF-2026/7",
        )
    ]


def test_a_snapshot_date_from_a_shoptet_datetime() -> None:
    """Stock taking dated `2026-11-15T09:14:03+0200` is stored on 2026-11-15."""
    body = b'[{"product_code": "A", "date": "2026-11-15T09:14:03+0200", "amount_new": "5"}]'
    (taking,) = validate(SPECS["stock_taking"], Payload(pages=[body]), None).rows.values()
    assert taking == StockTaking(product_code="A", date="2026-11-15", amount_new=5.0)


def test_configured_texts_are_values_never_code() -> None:
    """Quotes, backslashes and line breaks in a rule are matched as text (the loops are
    written out per endpoint, but configured values only ever travel as values)."""
    tricky = "'\"\\\n__import__('os').exit(1)#"
    assert name_of(f"{tricky}Krém", remove_prefix=tricky) == "Krém"
    assert name_of(f"a{tricky}b", after=tricky) == "b"
    assert name_of("x", value_map=(("x", tricky),)) == tricky
