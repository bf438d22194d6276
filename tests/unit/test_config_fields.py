"""config.load of Fields paths, value rules and Filter: read, written back, refused by key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from catalog_refresher.config import describe, load
from catalog_refresher.config.settings import (
    FieldRule,
    FilterCondition,
    FilterOperator,
    Settings,
)
from catalog_refresher.errors import ConfigError
from tests.helpers import json_path

#: Flexi stock-movement lines as consumed material: every kind of rule and condition.
CONSUMED = {
    "Url": "https://flexi.example/c/firma/skladovy-pohyb-polozka.json",
    "RecordsPath": "winstrom.skladovy-pohyb-polozka",
    "Fields": {
        "product_code": "cenik[0].kod",
        "date": {"From": "doklSklad[0].datVyst"},
        "quantity": {"From": "mnozMj", "Default": 0},
    },
    "Filter": [
        {"Path": "doklSklad[0].typPohybuK", "Equals": "typPohybu.vydej"},
        {"Path": "doklSklad[0].typDokl", "NotIn": ["code:PRODEJ", "code:PRODEJKA"]},
        {"Path": "sklad", "Matches": "^code:(ZBOZI|MAT)"},
    ],
}
ERP = {
    "Url": "https://flexi.example/c/firma/stav-skladu-k-datu.json",
    "Fields": {
        "product_code": {"From": "cenik", "RemovePrefix": "code:", "Trim": False},
        "product_name": {
            "From": "cenik@showAs",
            "After": ": ",
            "Before": " (",
            "EmptyAsNull": False,
        },
        "stock": {"From": "stavMJ", "Default": 0, "Map": {"-": "0"}},
        "location": {
            "From": "regal",
            "Pattern": "^code:(\\S+)",
            "Map": {"A1": "Hall A"},
            "MapDefault": "elsewhere",
        },
    },
}


def load_sources(tmp_path: Path, sources: dict[str, Any], **environ: str) -> Settings:
    path = tmp_path / "appsettings.json"
    path.write_text(json.dumps({"Sources": sources}))
    return load(path, environment=None, environ=environ)


def error_of(tmp_path: Path, sources: dict[str, Any], **environ: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_sources(tmp_path, sources, **environ)
    return caught.value


def test_paths_rules_and_filters_are_read(tmp_path: Path) -> None:
    """Every option lands in the endpoint's settings, paths parsed into steps."""
    settings = load_sources(tmp_path, {"ConsumedMaterials": CONSUMED, "ErpStock": ERP})
    consumed = settings.sources["consumed_materials"].primary
    assert consumed.fields == (
        FieldRule(field="product_code", source="cenik[0].kod", path=json_path("cenik[0].kod")),
        FieldRule(
            field="date", source="doklSklad[0].datVyst", path=json_path("doklSklad[0].datVyst")
        ),
        FieldRule(field="quantity", source="mnozMj", default=0.0),
    )
    assert consumed.fields[0].path.steps == ("cenik", 0, "kod")
    assert consumed.filters == (
        FilterCondition(
            path=json_path("doklSklad[0].typPohybuK"),
            operator=FilterOperator.EQUALS,
            values=("typPohybu.vydej",),
        ),
        FilterCondition(
            path=json_path("doklSklad[0].typDokl"),
            operator=FilterOperator.NOT_IN,
            values=("code:PRODEJ", "code:PRODEJKA"),
        ),
        FilterCondition(
            path=json_path("sklad"), operator=FilterOperator.MATCHES, values=("^code:(ZBOZI|MAT)",)
        ),
    )
    erp = {rule.field: rule for rule in settings.sources["erp_stock"].primary.fields}
    assert (erp["product_code"].remove_prefix, erp["product_code"].trim) == ("code:", False)
    assert (erp["product_name"].after, erp["product_name"].before) == (": ", " (")
    assert erp["product_name"].empty_as_null is False
    assert (erp["stock"].default, erp["stock"].value_map) == (0.0, (("-", "0"),))
    assert erp["location"].pattern == "^code:(\\S+)"
    assert erp["location"].map_default == "elsewhere"


def test_describe_writes_rules_and_filters_back_as_written(tmp_path: Path) -> None:
    """describe() prints paths as written and only the options set; loading it gives the same."""
    settings = load_sources(tmp_path, {"ConsumedMaterials": CONSUMED, "ErpStock": ERP})
    described = describe(settings)["Sources"]
    assert described["ConsumedMaterials"]["Fields"] == {
        "product_code": "cenik[0].kod",
        "date": "doklSklad[0].datVyst",
        "quantity": {"From": "mnozMj", "Default": 0.0},
    }
    assert described["ConsumedMaterials"]["Filter"] == CONSUMED["Filter"]
    assert described["ErpStock"]["Fields"]["location"] == {
        "From": "regal",
        "Pattern": "^code:(\\S+)",
        "Map": {"A1": "Hall A"},
        "MapDefault": "elsewhere",
    }
    again = load_sources(tmp_path, json.loads(json.dumps(described)))
    assert again.sources == settings.sources


def test_a_csv_column_is_a_name_not_a_path(tmp_path: Path) -> None:
    """With Csv, `stock.amount` and `Cena [Kč]` are column names, not paths."""
    source = {
        "Url": "https://eshop.example/export.csv",
        "Csv": {"Delimiter": ";"},
        "Fields": {"product_code": "Kód [zboží]", "stock": "stock.amount"},
        "Filter": [{"Path": "visibility.now", "Equals": "visible"}],
    }
    endpoint = load_sources(tmp_path, {"EshopStock": source}).sources["eshop_stock"].primary
    assert [rule.path.steps for rule in endpoint.fields] == [("Kód [zboží]",), ("stock.amount",)]
    assert endpoint.filters[0].path.steps == ("visibility.now",)


def test_rules_and_filters_from_the_environment(tmp_path: Path) -> None:
    """`Fields__stock__Default=0` and `Filter__0__Equals` from variables, typed as the field."""
    settings = load_sources(
        tmp_path,
        {"ErpStock": {"Url": "http://erp.example"}},
        Sources__ErpStock__Fields__stock__From="stavMJ",
        Sources__ErpStock__Fields__stock__Default="0",
        Sources__ErpStock__Fields__location__From="regal",
        Sources__ErpStock__Fields__location__Trim="false",
        Sources__ErpStock__Filter__0__Path="sklad",
        Sources__ErpStock__Filter__0__Equals="code:ZBOZI",
        Sources__ErpStock__Filter__1__Path="typ",
        Sources__ErpStock__Filter__1__In__0="a",
        Sources__ErpStock__Filter__1__In__1="b",
    )
    erp = settings.sources["erp_stock"].primary
    assert erp.fields == (
        FieldRule(field="location", source="regal", trim=False),
        FieldRule(field="stock", source="stavMJ", default=0.0),
    )
    assert [(c.path.text, c.values) for c in erp.filters] == [
        ("sklad", ("code:ZBOZI",)),
        ("typ", ("a", "b")),
    ]


def erp(**options: Any) -> dict[str, Any]:
    return {"ErpStock": {"Url": "http://erp.example", **options}}


def supplier(**rule: Any) -> dict[str, Any]:
    return {"Suppliers": {"Url": "http://s.example", "Fields": {"is_primary": rule}}}


@pytest.mark.parametrize(
    ("sources", "key", "problem"),
    [
        (erp(Fields={"product_code": "[0].kod"}), "Fields:product_code", "starts with an index"),
        (erp(Fields={"product_code": "cenik[x].kod"}), "Fields:product_code", "not an array index"),
        (erp(Fields={"product_code": "cenik..kod"}), "Fields:product_code", "empty step"),
        (erp(Fields={"product_code": "cenik[0"}), "Fields:product_code", "is not closed"),
        (
            erp(Fields={"product_code": {"From": "cenik."}}),
            "Fields:product_code:From",
            "empty step",
        ),
        (
            erp(Fields={"stock": {"From": "s", "Before": ":"}}),
            "Fields:stock:Before",
            "only for text",
        ),
        (
            erp(Fields={"stock": {"From": "s", "Trim": True}}),
            "Fields:stock:Trim",
            "stock is a number",
        ),
        (
            erp(Fields={"stock": {"From": "s", "Pattern": "x"}}),
            "Fields:stock:Pattern",
            "text fields",
        ),
        (
            erp(Fields={"stock": {"From": "s", "EmptyAsNull": True}}),
            "Fields:stock:EmptyAsNull",
            "text",
        ),
        (
            erp(Fields={"product_name": {"From": "n", "Pattern": "^(\\S+"}}),
            "Fields:product_name:Pattern",
            "not a valid regular expression: missing ), unterminated subpattern",
        ),
        (
            erp(Fields={"product_name": {"From": "n", "After": ""}}),
            "Fields:product_name:After",
            "not be empty",
        ),
        (
            erp(Fields={"product_name": {"From": "n", "Trim": "no"}}),
            "Fields:product_name:Trim",
            "true or false",
        ),
        (
            erp(Fields={"product_name": {"From": "n", "Map": ["a"]}}),
            "Fields:product_name:Map",
            "expected an object",
        ),
        (
            erp(Fields={"product_name": {"From": "n", "Map": {}}}),
            "Fields:product_name:Map",
            "not be empty",
        ),
        (
            erp(Fields={"product_name": {"From": "n", "Map": {"a": 1}}}),
            "Fields:product_name:Map:a",
            "expected a string",
        ),
        (
            erp(Fields={"stock": {"From": "s", "Map": {"-": "none"}}}),
            "Fields:stock:Map:-",
            "stock is a number, got 'none'",
        ),
        (
            erp(Fields={"product_name": {"From": "n", "MapDefault": "x"}}),
            "Fields:product_name:MapDefault",
            "needs Map",
        ),
        (
            erp(Fields={"stock": {"From": "s", "Default": "zero"}}),
            "Fields:stock:Default",
            "stock is a number, got a string",
        ),
        (
            erp(Fields={"stock": {"From": "s", "Default": 1e16}}),
            "Fields:stock:Default",
            "stock is a number",
        ),
        (
            erp(Fields={"product_name": {"From": "n", "Default": 5}}),
            "Fields:product_name:Default",
            "is text, got a number",
        ),
        (
            erp(Fields={"stock": {"From": "s", "Default": {"a": 1}}}),
            "Fields:stock:Default",
            "a text, number or boolean",
        ),
        (supplier(From="h", Default="yes"), "Fields:is_primary:Default", "true or false"),
        (
            supplier(From="h", Map={"A": "yes"}),
            "Fields:is_primary:Map:A",
            "true or false, got 'yes'",
        ),
        (
            erp(Fields={"stock": {"From": "s", "Trimm": True}}),
            "Fields:stock:Trimm",
            "did you mean Trim?",
        ),
        (
            erp(Fields={"stock": {"From": "s", "Map": {}, "Default": 0}}),
            "Fields:stock:Map",
            "not be empty",
        ),
        (erp(Filter={"Path": "a", "Equals": "b"}), "Filter", "expected an array, got an object"),
        (erp(Filter="a"), "Filter", "expected an array"),
        (erp(Filter=[5]), "Filter:0", "expected an object"),
        (erp(Filter=[{"Equals": "b"}]), "Filter:0:Path", "required"),
        (
            erp(Filter=[{"Path": "a"}]),
            "Filter:0",
            "needs exactly one of Equals, NotEquals, In, NotIn, Matches",
        ),
        (
            erp(Filter=[{"Path": "a", "Equals": "b"}, {"Path": "a", "Equals": "b", "In": ["c"]}]),
            "Filter:1",
            "; it has Equals, In",
        ),
        (erp(Filter=[{"Path": "a", "In": "b"}]), "Filter:0:In", "expected an array"),
        (erp(Filter=[{"Path": "a", "NotIn": []}]), "Filter:0:NotIn", "not be empty"),
        (
            erp(Filter=[{"Path": "a", "In": ["b", {"c": 1}]}]),
            "Filter:0:In:1",
            "a text, number or boolean",
        ),
        (
            erp(Filter=[{"Path": "a", "Equals": ["b"]}]),
            "Filter:0:Equals",
            "a text, number or boolean",
        ),
        (
            erp(Filter=[{"Path": "a", "Matches": "(("}]),
            "Filter:0:Matches",
            "not a valid regular expression",
        ),
        (erp(Filter=[{"Path": "a", "Matches": 5}]), "Filter:0:Matches", "expected a string"),
        (erp(Filter=[{"Path": "a", "Equal": "b"}]), "Filter:0:Equal", "did you mean Equals?"),
        (erp(Filter=[{"Path": "a[", "Equals": "b"}]), "Filter:0:Path", "is not closed"),
        (erp(Filter=[{"Path": "", "Equals": "b"}]), "Filter:0:Path", "must not be empty"),
    ],
)
def test_bad_rules_and_filters_are_refused_naming_the_key(
    tmp_path: Path, sources: dict[str, Any], key: str, problem: str
) -> None:
    """Every rule or condition that could never work fails at load, with its key and why."""
    error = error_of(tmp_path, sources)
    source = next(iter(sources))
    assert error.key == f"Sources:{source}:{key}"
    assert problem in error.problem


def test_a_filter_on_a_demo_endpoint_or_a_backup(tmp_path: Path) -> None:
    """A demo endpoint has no records to filter; a backup's bad filter names the backup."""
    error = error_of(tmp_path, {"Lots": {"Type": "demo", "Filter": []}})
    assert (error.key, error.problem) == ("Sources:Lots:Filter", "only for Type http, not demo")
    backup = {"Url": "http://b.example", "Filter": [{"Path": "a"}]}
    error = error_of(tmp_path, erp(Backup=backup))
    assert error.key == "Sources:ErpStock:Backup:Filter:0"


def test_two_fields_may_read_one_path_with_different_rules(tmp_path: Path) -> None:
    """Code and name both from `cenik@showAs` load; the same path twice without rules does not."""
    fields = {
        "product_code": {"From": "cenik@showAs", "Before": ":"},
        "product_name": {"From": "cenik@showAs", "After": ":"},
    }
    erp_stock = load_sources(tmp_path, erp(Fields=fields)).sources["erp_stock"]
    assert len(erp_stock.primary.fields) == 2
    same = {"product_code": "cenik@showAs", "product_name": {"From": "cenik@showAs"}}
    error = error_of(tmp_path, erp(Fields=same))
    assert (error.key, error.problem) == (
        "Sources:ErpStock:Fields:product_name",
        "product_code is read from 'cenik@showAs' already",
    )


def test_a_nested_path_through_an_unmapped_fields_name_is_refused(tmp_path: Path) -> None:
    """`location` keeps its own name, so `location.name` for another field needs it mapped too."""
    error = error_of(tmp_path, erp(Fields={"product_name": "location.name"}))
    assert error.key == "Sources:ErpStock:Fields:product_name"
    assert "map it too" in error.problem
