"""Field paths into nested objects and arrays (`cenik[0].kod`), decoded inside msgspec."""

from __future__ import annotations

import json
import pickle
from typing import Any

import msgspec
import pytest

from catalog_refresher.config.settings import FieldRule
from catalog_refresher.domain.records import Attributes, ErpStock, Lot
from catalog_refresher.domain.specs import SPECS
from catalog_refresher.refresh.validate import Batch, validate
from catalog_refresher.sources.base import Payload
from catalog_refresher.sources.mapping import reader_for
from tests.helpers import json_path


def rule(field: str, source: str, **options: Any) -> FieldRule:
    """A rule as the configuration makes it: its path parsed."""
    return FieldRule(field=field, source=source, path=json_path(source), **options)


#: Flexi stock to date with the price-list relation expanded (``includes=``).
EXPANDED = (
    rule("product_code", "cenik[0].kod"),
    rule("product_name", "cenik[0].nazev"),
    rule("stock", "stavMJ"),
)


def erp(records: list[dict[str, Any]], fields: tuple[FieldRule, ...] = EXPANDED) -> Batch:
    body = json.dumps(records).encode()
    return validate(SPECS["erp_stock"], Payload(pages=[body], fields=fields), None)


def test_a_code_inside_an_expanded_relation_is_read() -> None:
    """`cenik[0].kod` and `cenik[0].nazev` both come out of one array of objects."""
    batch = erp(
        [
            {"cenik": [{"kod": "KRM001", "nazev": "Krém", "id": 7}], "stavMJ": 3},
            {"cenik": [{"kod": "KRM002", "nazev": "Mýdlo"}, {"kod": "X"}], "stavMJ": 1},
        ]
    )
    assert batch.rows == {
        "KRM001": ErpStock(product_code="KRM001", stock=3.0, product_name="Krém"),
        "KRM002": ErpStock(product_code="KRM002", stock=1.0, product_name="Mýdlo"),
    }


def test_a_relation_sent_as_one_object_reads_like_an_array_of_one() -> None:
    """`[0]` of an object is the object: `cenik[0].kod` reads `{"kod": ...}` too."""
    batch = erp([{"cenik": {"kod": "KRM001", "nazev": "Krém"}, "stavMJ": 3}])
    assert list(batch.rows) == ["KRM001"]
    assert batch.rows["KRM001"].product_name == "Krém"  # type: ignore[attr-defined]


def test_a_flat_relation_has_no_nested_code_and_says_so() -> None:
    """Against `"code:KRM001"` (no `includes=`) `cenik[0].kod` is absent: the record is invalid."""
    batch = erp([{"cenik": "code:KRM001", "stavMJ": 3}])
    assert (batch.fetched, batch.invalid) == (1, 1)
    assert batch.reasons == [
        "record 0: Object missing required field `cenik[0].kod`"
        " (cenik is 'code:KRM001', not an object)"
    ]


@pytest.mark.parametrize(
    ("cenik", "why"),
    [
        ([], "cenik has 0 elements"),
        ([{"nazev": "x"}], "cenik[0] has no kod"),
        (None, "cenik is null"),
        (5, "cenik is 5, not an object"),
    ],
    ids=["empty-array", "no-key", "null", "number"],
)
def test_a_path_that_stops_early_names_where(cenik: Any, why: str) -> None:
    """The reason names the step where the path stopped and what was there instead."""
    batch = erp([{"cenik": cenik, "stavMJ": 3}])
    assert batch.reasons == [f"record 0: Object missing required field `cenik[0].kod` ({why})"]


def test_a_missing_top_level_key_is_named() -> None:
    """A record without the relation at all: `no cenik`."""
    (reason,) = erp([{"stavMJ": 3}]).reasons
    assert reason == "record 0: Object missing required field `cenik[0].kod` (no cenik)"


def test_deeper_paths_and_negative_indexes() -> None:
    """`a.b.c`, `a[-1]` and `a[1].b` reach three levels down, the last element, the second."""
    fields = (
        rule("product_code", "doc.item.code"),
        rule("stock", "moves[-1]"),
        rule("location", "places[1].name"),
    )
    record = {
        "doc": {"item": {"code": "A1", "other": [1, 2]}},
        "moves": [5, 7, 9],
        "places": [{"name": "first"}, {"name": "second"}],
    }
    assert erp([record], fields).rows == {
        "A1": ErpStock(product_code="A1", stock=9.0, location="second")
    }


def test_an_index_past_the_end_of_an_optional_field_leaves_it_null() -> None:
    """An optional field whose path finds nothing takes its default (null): no refusal."""
    fields = (*EXPANDED, rule("location", "places[3].name"))
    batch = erp([{"cenik": [{"kod": "A"}], "stavMJ": 1, "places": [{"name": "x"}]}], fields)
    assert (batch.invalid, batch.rows["A"].location) == (0, None)  # type: ignore[attr-defined]


def test_a_value_of_the_wrong_type_is_named_at_its_path() -> None:
    """A number where text is expected names the payload's path, not the record field."""
    (reason,) = erp([{"cenik": [{"kod": 12}], "stavMJ": 1}]).reasons
    assert reason == "record 0: Expected `str`, got `int` - at `$.cenik[0].kod`"


def test_unmapped_fields_keep_their_names_beside_nested_ones() -> None:
    """Only mapped fields move: `location` is still read by its own name."""
    fields = (rule("product_code", "cenik[0].kod"), rule("stock", "stavMJ"))
    batch = erp([{"cenik": [{"kod": "A"}], "stavMJ": 1, "location": "B2"}], fields)
    assert batch.rows == {"A": ErpStock(product_code="A", stock=1.0, location="B2")}


def test_keys_that_are_not_identifiers_are_read() -> None:
    """Flexi's `cenik@showAs` and keys with dashes or spaces are plain keys of a path."""
    fields = (
        rule("product_code", "stav-skladu.kód zboží"),
        rule("stock", "stavMJ"),
        rule("product_name", "cenik@showAs", after=": "),
    )
    record = {"stav-skladu": {"kód zboží": "A"}, "stavMJ": 1, "cenik@showAs": "A: Krém"}
    assert erp([record], fields).rows["A"] == ErpStock(
        product_code="A", stock=1.0, product_name="Krém"
    )


def test_one_path_may_feed_two_fields_with_different_rules() -> None:
    """Code and name from one `cenik@showAs`: before and after its `: `."""
    fields = (
        rule("product_code", "cenik@showAs", before=":"),
        rule("product_name", "cenik@showAs", after=": "),
        rule("stock", "stavMJ"),
    )
    batch = erp([{"cenik@showAs": "KRM001: Pleťový krém: levandule", "stavMJ": 2}], fields)
    assert batch.rows == {
        "KRM001": ErpStock(product_code="KRM001", stock=2.0, product_name="Pleťový krém: levandule")
    }


def test_the_wire_struct_holds_only_what_is_read() -> None:
    """The relation's struct has the two keys asked for; `id`, `@ref` and the rest are skipped."""
    reader = reader_for(ErpStock, EXPANDED)
    top = {field.encode_name for field in msgspec.structs.fields(reader.wire_type)}
    assert {"cenik", "stavMJ", "location"} <= top
    assert "cenik@ref" not in top
    decoded = msgspec.json.decode(
        b'{"cenik": [{"kod": "A", "nazev": "n", "id": 1, "x": {"deep": []}}], "stavMJ": 1}',
        type=reader.wire_type,
    )
    (relation,) = getattr(decoded, reader.read["product_code"].attribute)
    assert {f.encode_name for f in msgspec.structs.fields(relation)} == {"kod", "nazev"}


def test_nested_records_equal_flat_ones_and_hash_alike() -> None:
    """A record read through paths is a plain record struct, equal to one sent flat."""
    nested = erp([{"cenik": [{"kod": "A", "nazev": "n"}], "stavMJ": 1}]).rows
    flat = validate(
        SPECS["erp_stock"],
        Payload(pages=[b'[{"product_code": "A", "product_name": "n", "stock": 1}]']),
        None,
    ).rows
    assert nested == flat
    assert [hash(r) for r in nested.values()] == [hash(r) for r in flat.values()]


@pytest.mark.parametrize("count", [0, 1, 3])
def test_slow_and_fast_paths_agree_on_nested_paths(count: int) -> None:
    """A page with one bad record reads its good ones exactly as a clean page does."""
    good = [{"cenik": [{"kod": f"P{i}", "nazev": " n "}], "stavMJ": i} for i in range(count)]
    clean = erp(good)
    mixed = erp([*good, {"cenik": "code:X", "stavMJ": 1}])
    assert (mixed.rows, mixed.invalid, clean.invalid) == (clean.rows, 1, 0)


def test_a_record_that_is_not_an_object_is_invalid_alone() -> None:
    """`5` among the records is refused as itself; the others are read."""
    body = b'[5, {"cenik": [{"kod": "A"}], "stavMJ": 1}]'
    batch = validate(SPECS["erp_stock"], Payload(pages=[body], fields=EXPANDED), None)
    assert (list(batch.rows), batch.invalid) == (["A"], 1)
    assert batch.reasons[0].startswith("record 0: Expected `object`, got `int`")


def test_a_lot_code_and_expiration_from_nested_objects() -> None:
    """Lots: the lot code inside `sarze`, the expiration beside it, keyed by product and lot."""
    fields = (
        rule("product_code", "cenik[0].kod"),
        rule("lot", "sarze.kod"),
        rule("amount", "mnozstvi"),
        rule("expiration", "sarze.expirace"),
    )
    body = json.dumps(
        [
            {
                "cenik": [{"kod": "A"}],
                "sarze": {"kod": "L1", "expirace": "2027-01-31+01:00"},
                "mnozstvi": "2",
            }
        ]
    ).encode()
    batch = validate(SPECS["lots"], Payload(pages=[body], fields=fields), None)
    assert list(batch.rows.values()) == [
        Lot(product_code="A", lot="L1", amount=2.0, expiration="2027-01-31")
    ]


def test_attributes_read_nested_paths_and_drop_what_they_took() -> None:
    """Attributes: a nested code is read, its top-level key leaves the free-form rest."""
    fields = (rule("product_code", "cenik[0].kod"), rule("Barva", "vlastnosti.barva"))
    body = b'[{"cenik": [{"kod": "A"}], "vlastnosti": {"barva": " red "}, "vaha": 0.5}]'
    (clean,) = validate(
        SPECS["attributes"], Payload(pages=[body], fields=fields), None
    ).rows.values()
    assert isinstance(clean, Attributes)
    assert clean.product_code == "A"
    assert json.loads(clean.extra or "{}") == {"Barva": "red", "vaha": 0.5}


def test_rules_with_paths_pickle_for_worker_processes() -> None:
    """Worker processes get the payload pickled: parsed paths and rules survive."""
    payload = Payload(
        pages=[b"[]"], fields=(*EXPANDED, rule("location", "a", value_map=(("x", "y"),)))
    )
    assert pickle.loads(pickle.dumps(payload)).fields == payload.fields


def test_a_rule_without_a_parsed_path_reads_one_key() -> None:
    """Made in code without `path`, a rule's source is one key, dots and all (a CSV column)."""
    made = FieldRule(field="stock", source="stav.mj")
    assert (made.path.text, made.path.steps) == ("stav.mj", ("stav.mj",))


def test_only_the_first_and_last_index_of_a_single_value_are_the_value() -> None:
    """`[0]` and `[-1]` of one object read it; `[1]` of it is absent."""
    fields = (rule("product_code", "cenik[-1].kod"), rule("stock", "stavMJ"))
    assert list(erp([{"cenik": {"kod": "A"}, "stavMJ": 1}], fields).rows) == ["A"]
    fields = (rule("product_code", "cenik[1].kod"), rule("stock", "stavMJ"))
    (reason,) = erp([{"cenik": {"kod": "A"}, "stavMJ": 1}], fields).reasons
    assert reason.endswith("(cenik is not an array)")
