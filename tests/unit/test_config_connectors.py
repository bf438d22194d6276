"""config.load of a source's Fields and Csv: read, defaulted, refused naming the key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from catalog_refresher.config import describe, load
from catalog_refresher.errors import ConfigError
from catalog_refresher.settings import CsvFormat, FieldRule, Settings

FLEXI = {
    "Url": "https://flexi.example/c/firma/skladova-karta.json?add-row-count=true",
    "RecordsPath": "winstrom.skladova-karta",
    "Fields": {
        "product_code": {"From": "cenik", "RemovePrefix": "code:"},
        "stock": "stavMJ",
        "location": {"From": "regal", "RemovePrefix": "code:"},
    },
}
SHOPTET = {
    "Url": "https://api.myshoptet.com/api/stocks/1/supplies",
    "RecordsPath": "data.supplies",
    "Fields": {"product_code": "code", "stock": "amount"},
}
EXPORT = {
    "Url": "https://eshop.example/export/products.csv",
    "Csv": {"Delimiter": ";", "Encoding": "windows-1250", "DecimalComma": True},
    "Fields": {"Product_Code": "code"},
}


def load_sources(tmp_path: Path, sources: dict[str, Any], **environ: str) -> Settings:
    path = tmp_path / "appsettings.json"
    path.write_text(json.dumps({"Sources": sources}))
    return load(path, environment=None, environ=environ)


def error_of(tmp_path: Path, sources: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_sources(tmp_path, sources)
    return caught.value


def test_flexi_shoptet_and_csv_sources_are_read(tmp_path: Path) -> None:
    """The README's three examples land in the endpoint settings, keys matched in any case."""
    settings = load_sources(
        tmp_path, {"ErpStock": FLEXI, "EshopStock": SHOPTET, "Attributes": EXPORT}
    )
    erp = settings.sources["erp_stock"].primary
    assert erp.fields == (
        FieldRule(field="product_code", source="cenik", remove_prefix="code:"),
        FieldRule(field="stock", source="stavMJ"),
        FieldRule(field="location", source="regal", remove_prefix="code:"),
    )
    assert erp.csv is None
    attributes = settings.sources["attributes"].primary
    assert attributes.csv == CsvFormat(delimiter=";", encoding="windows-1250", decimal_comma=True)
    assert attributes.fields == (FieldRule(field="product_code", source="code"),)
    eshop = settings.sources["eshop_stock"].primary
    assert (eshop.fields[1], eshop.csv) == (FieldRule(field="stock", source="amount"), None)


def test_an_endpoint_without_the_new_options_is_unchanged(tmp_path: Path) -> None:
    """A plain source has no field rules and a JSON payload."""
    erp = load_sources(tmp_path, {"ErpStock": {"Url": "http://erp.example"}})
    endpoint = erp.sources["erp_stock"].primary
    assert (endpoint.fields, endpoint.csv) == ((), None)


def test_environment_variables_reach_into_fields(tmp_path: Path) -> None:
    """A Fields rule can be set from the environment."""
    settings = load_sources(
        tmp_path, {"ErpStock": FLEXI}, Sources__ErpStock__Fields__product_name="nazev"
    )
    erp = settings.sources["erp_stock"].primary
    assert FieldRule(field="product_name", source="nazev") in erp.fields


def test_a_backup_has_its_own_fields(tmp_path: Path) -> None:
    """The backup may be another system: it inherits none of the primary's reading options."""
    source = {**FLEXI, "Backup": {"Url": "http://replica.example/stock"}}
    erp = load_sources(tmp_path, {"ErpStock": source}).sources["erp_stock"]
    assert erp.backup is not None
    assert erp.backup.fields == ()


def test_describe_shows_the_options_and_loads_back(tmp_path: Path) -> None:
    """describe() writes Fields and Csv in the file's shape; loading it gives the same."""
    sources = {"ErpStock": FLEXI, "EshopStock": SHOPTET, "Attributes": EXPORT}
    settings = load_sources(tmp_path, sources)
    described = describe(settings)["Sources"]
    assert described["ErpStock"]["Fields"]["stock"] == "stavMJ"
    assert described["EshopStock"]["Fields"] == {"product_code": "code", "stock": "amount"}
    assert described["Attributes"]["Csv"]["Encoding"] == "windows-1250"
    again = load_sources(tmp_path, json.loads(json.dumps(described)))
    assert again.sources == settings.sources


def erp(**options: Any) -> dict[str, Any]:
    return {"ErpStock": {"Url": "http://erp.example", **options}}


@pytest.mark.parametrize(
    ("sources", "key", "problem"),
    [
        (erp(Fields={"price": "cena"}), "Fields:price", "not a field of this source"),
        (
            erp(Fields={"product_code": "code", "product_name": "code"}),
            "Fields:product_name",
            "product_code is read from 'code' already",
        ),
        (erp(Fields={"stock": "location"}), "Fields:stock", "map it too"),
        (
            erp(Fields={"stock": {"From": "stavMJ", "RemovePrefix": "code:"}}),
            "Fields:stock:RemovePrefix",
            "only for text fields",
        ),
        (
            erp(Fields={"location": {"From": "regal", "RemovePrefix": ""}}),
            "Fields:location:RemovePrefix",
            "must not be empty",
        ),
        (erp(Fields={"stock": {"RemovePrefix": "x"}}), "Fields:stock:From", "required"),
        (
            erp(Fields={"location": {"From": "regal", "Prefix": "code:"}}),
            "Fields:location:Prefix",
            "did you mean RemovePrefix?",
        ),
        (erp(Fields={"stock": 5}), "Fields:stock", "expected a string"),
        (erp(Fields={"stock": ""}), "Fields:stock", "must not be empty"),
        (erp(Fields=["cenik"]), "Fields", "expected an object"),
        (erp(Csv={"Encoding": "klingon"}), "Csv:Encoding", "unknown text encoding"),
        (erp(Csv={"Encoding": "hex"}), "Csv:Encoding", "unknown text encoding"),
        (erp(Csv={"Delimiter": ";;"}), "Csv:Delimiter", "one character"),
        (erp(Csv={"Delimiter": '"'}), "Csv:Delimiter", "not a quote"),
        (erp(Csv={"HasHeader": False}), "Csv:Columns", "required when HasHeader is false"),
        (erp(Csv={"Columns": []}), "Csv:Columns", "expected an array of names"),
        (erp(Csv={"Columns": ["a", ""]}), "Csv:Columns:1", "not be empty"),
        (erp(Csv={"DecimalComa": True}), "Csv:DecimalComa", "did you mean DecimalComma?"),
        (erp(Csv={}, RecordsPath="data"), "RecordsPath", "not for a Csv payload"),
    ],
)
def test_bad_options_are_refused_naming_the_key(
    tmp_path: Path, sources: dict[str, Any], key: str, problem: str
) -> None:
    """Every wrong Fields or Csv option fails at load with its key and the reason."""
    error = error_of(tmp_path, sources)
    assert error.key == f"Sources:ErpStock:{key}"
    assert problem in error.problem


@pytest.mark.parametrize("option", ["Fields", "Csv"])
def test_reading_options_on_a_demo_endpoint_are_refused(tmp_path: Path, option: str) -> None:
    """A demo endpoint makes its own records: mapping or CSV would be ignored, so no."""
    error = error_of(tmp_path, {"Lots": {"Type": "demo", option: {}}})
    assert (error.key, error.problem) == (f"Sources:Lots:{option}", "only for Type http, not demo")


def test_a_backups_bad_option_names_the_backup(tmp_path: Path) -> None:
    """An error in the backup's Fields names the backup's key."""
    backup = {"Url": "http://b.example", "Fields": {"price": "cena"}}
    source = {"Url": "http://erp.example", "Backup": backup}
    assert error_of(tmp_path, {"ErpStock": source}).key == "Sources:ErpStock:Backup:Fields:price"


def test_attributes_may_map_free_form_names(tmp_path: Path) -> None:
    """Attributes keep unknown fields, so a rule may name one; its spelling is kept."""
    fields = {"product_code": "kod", "Barva": "color", "STOCK_MIN": "minimum"}
    settings = load_sources(tmp_path, {"Attributes": {"Url": "http://a.example", "Fields": fields}})
    assert settings.sources["attributes"].primary.fields == (
        FieldRule(field="product_code", source="kod"),
        FieldRule(field="Barva", source="color"),
        FieldRule(field="stock_min", source="minimum"),
    )
    error = error_of(
        tmp_path, {"Attributes": {"Url": "http://a.example", "Fields": {"extra": "x"}}}
    )
    assert error.key == "Sources:Attributes:Fields:extra"


def test_unknown_keys_are_still_refused_next_to_the_new_ones(tmp_path: Path) -> None:
    """Adding Fields and Csv did not loosen the check on the other source keys."""
    error = error_of(tmp_path, erp(Field={"stock": "stavMJ"}))
    assert error.key == "Sources:ErpStock:Field"
    assert "did you mean Fields?" in error.problem
