"""Field mapping: payload names to record fields, with the samples' real quirks."""

from __future__ import annotations

import json
import pickle
from datetime import date
from typing import Any

import msgspec
import pytest

from catalog_refresher.config.settings import CsvFormat, FieldRule
from catalog_refresher.domain.records import Attributes, Consumption, ErpStock
from catalog_refresher.domain.specs import SPECS
from catalog_refresher.domain.window import Window
from catalog_refresher.refresh.validate import validate
from catalog_refresher.sources.base import Payload
from catalog_refresher.sources.mapping import reader_for
from tests.helpers import json_path
from tests.paged_server import flexi_cards, sample

FLEXI_FIELDS = (
    FieldRule(field="product_code", source="cenik", remove_prefix="code:"),
    FieldRule(field="stock", source="stavMJ"),
    FieldRule(field="location", source="regal", remove_prefix="code:"),
)
FLEXI_PATH = json_path("winstrom.skladova-karta")


def flexi(cards: list[dict[str, Any]], fields: tuple[FieldRule, ...] = FLEXI_FIELDS) -> Payload:
    body = json.dumps({"winstrom": {"@rowCount": str(len(cards)), "skladova-karta": cards}})
    return Payload(pages=[body.encode()], records_path=FLEXI_PATH, fields=fields)


def test_flexi_sample_page_is_read_with_its_relations_unwrapped() -> None:
    """The Flexi sample: `code:` relations unwrapped, an empty one null, extra fields ignored."""
    page = Payload(
        pages=[sample("abraflexi_skladova-karta_page1.json")],
        records_path=FLEXI_PATH,
        fields=FLEXI_FIELDS,
    )
    batch = validate(SPECS["erp_stock"], page, None)
    assert (batch.fetched, batch.invalid) == (3, 0)
    assert batch.rows == {
        "KRM001": ErpStock(product_code="KRM001", stock=128.0, location="A1-R02"),
        "KRM002": ErpStock(product_code="KRM002", stock=0.0, location=None),  # "regal": ""
        "SER010-30": ErpStock(product_code="SER010-30", stock=36.5, location="B2-R01"),
    }


def test_numbers_sent_as_strings_and_stray_white_space_are_accepted() -> None:
    """`"71238.961591"` is a number; `"code:SER010-50 "` and `" code:C3 "` lose their spaces."""
    page = Payload(
        pages=[sample("abraflexi_skladova-karta_page2.json")],
        records_path=FLEXI_PATH,
        fields=FLEXI_FIELDS,
    )
    batch = validate(SPECS["erp_stock"], page, None)
    assert batch.rows == {
        "SER010-50": ErpStock(product_code="SER010-50", stock=71238.961591, location="B2-R01"),
        "MYD003": ErpStock(product_code="MYD003", stock=7.0, location="C3"),
    }


def test_a_value_without_the_prefix_is_kept() -> None:
    """RemovePrefix removes only a prefix that is there: a plain code passes unchanged."""
    card = {"cenik": "KRM001", "stavMJ": 1, "regal": "code:A1"}
    assert list(validate(SPECS["erp_stock"], flexi([card]), None).rows) == ["KRM001"]


def test_unmapped_fields_keep_their_contract_names() -> None:
    """Only the mapped field is renamed: `stock` and `product_name` are read by their own names."""
    fields = (FieldRule(field="product_code", source="code"),)
    body = b'[{"code": "A", "stock": "5.000", "product_name": "Krem", "amount": 99}]'
    batch = validate(SPECS["erp_stock"], Payload(pages=[body], fields=fields), None)
    assert batch.rows == {"A": ErpStock(product_code="A", stock=5.0, product_name="Krem")}


def test_a_bad_mapped_record_is_refused_naming_the_payload_field() -> None:
    """A record missing `stavMJ`, or with a stock that is no number, is invalid; the rest stays."""
    cards = flexi_cards()
    del cards[1]["stavMJ"]
    cards[2]["stavMJ"] = "lots"
    batch = validate(SPECS["erp_stock"], flexi(cards), None)
    assert (batch.fetched, batch.invalid) == (5, 2)
    assert list(batch.rows) == ["KRM001", "SER010-50", "MYD003"]
    assert batch.rows["KRM001"] == ErpStock(product_code="KRM001", stock=128.0, location="A1-R02")
    assert batch.reasons[0].startswith("record 1: ")
    assert "`stavMJ`" in batch.reasons[0]
    assert "$.stavMJ" in batch.reasons[1]


def test_an_empty_code_after_the_prefix_is_refused() -> None:
    """`code:` alone leaves no product code: the record is refused, not stored under ''."""
    batch = validate(SPECS["erp_stock"], flexi([{"cenik": "code: ", "stavMJ": 1}]), None)
    assert (batch.invalid, batch.rows) == (1, {})
    assert "product_code is empty" in batch.reasons[0]


def test_mapped_records_equal_records_sent_under_contract_names() -> None:
    """Mapped records are plain record structs, equal (and hashing equal) to unmapped ones."""
    mapped = validate(SPECS["erp_stock"], flexi(flexi_cards()), None).rows
    plain = [
        {"product_code": r.product_code, "stock": r.stock, "location": r.location}
        for r in mapped.values()
    ]
    unmapped = validate(SPECS["erp_stock"], Payload(pages=[msgspec.json.encode(plain)]), None)
    assert mapped == unmapped.rows
    assert {type(r) for r in mapped.values()} == {ErpStock}
    assert [hash(r) for r in mapped.values()] == [hash(r) for r in unmapped.rows.values()]
    assert msgspec.json.encode(mapped["KRM001"]) == (
        b'{"product_code":"KRM001","stock":128.0,"location":"A1-R02"}'
    )


def test_a_history_source_maps_dates_with_an_offset_suffix() -> None:
    """A Flexi-style consumption record: relation unwrapped, `2026-05-26+02:00` read as the day."""
    fields = (
        FieldRule(field="product_code", source="cenik", remove_prefix="code:"),
        FieldRule(field="date", source="datVyd"),
        FieldRule(field="quantity", source="mnozMj"),
    )
    body = b'[{"cenik": "code:KRM001", "datVyd": "2026-05-26+02:00", "mnozMj": "3.000"}]'
    window = Window(date_from=date(2025, 11, 29), date_to=date(2026, 11, 29))
    batch = validate(SPECS["consumed_materials"], Payload(pages=[body], fields=fields), window)
    assert list(batch.rows.values()) == [
        Consumption(product_code="KRM001", date="2026-05-26", quantity=3.0)
    ]


def test_attributes_are_mapped_and_keep_their_free_form_fields() -> None:
    """Attributes rename the mapped keys and keep every other field as free-form."""
    fields = (
        FieldRule(field="product_code", source="kod", remove_prefix="code:"),
        FieldRule(field="stock_min", source="minimum"),
        FieldRule(field="Barva", source="color"),
    )
    body = b'[{"kod": "code:KRM001", "minimum": "5", "color": "red", "vaha": 0.5}]'
    batch = validate(SPECS["attributes"], Payload(pages=[body], fields=fields), None)
    (clean,) = batch.rows.values()
    assert isinstance(clean, Attributes)
    assert (clean.product_code, clean.stock_min) == ("KRM001", 5.0)
    assert json.loads(clean.extra or "{}") == {"Barva": "red", "vaha": 0.5}


def test_a_source_without_fields_decodes_its_record_type_directly() -> None:
    """No rules, no mapping step: the record type itself is what msgspec decodes."""
    reader = reader_for(ErpStock, ())
    assert (reader.wire_type, reader.mapped) == (ErpStock, False)
    assert reader_for(ErpStock, FLEXI_FIELDS).mapped
    assert reader_for(ErpStock, FLEXI_FIELDS) is reader_for(ErpStock, FLEXI_FIELDS)  # cached


def test_numeric_names_are_the_payload_names_of_number_fields() -> None:
    """CSV decimal commas are looked for under the payload's names of the numeric fields."""
    assert reader_for(ErpStock, FLEXI_FIELDS).numeric_names == {"stavMJ"}
    assert reader_for(Consumption, ()).numeric_names == {"quantity"}


def test_a_payload_with_fields_and_csv_pickles_for_worker_processes() -> None:
    """Worker processes receive the payload pickled: its reading instructions must survive."""
    payload = Payload(pages=[b"[]"], fields=FLEXI_FIELDS, csv=CsvFormat(delimiter=";"))
    again = pickle.loads(pickle.dumps(payload))
    assert (again.fields, again.csv) == (FLEXI_FIELDS, CsvFormat(delimiter=";"))


@pytest.mark.parametrize("cards", [[], flexi_cards()[:1]])
def test_slow_and_fast_paths_agree(cards: list[dict[str, Any]]) -> None:
    """A page with an invalid record decodes its valid ones exactly like a clean page does."""
    clean = validate(SPECS["erp_stock"], flexi(cards), None).rows
    mixed = validate(SPECS["erp_stock"], flexi([*cards, {"cenik": "code:X"}]), None)
    assert (mixed.rows, mixed.invalid) == (clean, 1)
