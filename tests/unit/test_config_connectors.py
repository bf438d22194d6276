"""config.load of a source's Paging, Fields and Csv: read, defaulted, refused naming the key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from catalog_refresher.config import describe, load
from catalog_refresher.config.settings import (
    DEFAULT_MAX_PAGES,
    CsvFormat,
    FieldRule,
    PagingKind,
    PagingSettings,
    Settings,
)
from catalog_refresher.errors import ConfigError
from tests.helpers import json_path

FLEXI = {
    "Url": "https://flexi.example/c/firma/skladova-karta.json?add-row-count=true",
    "RecordsPath": "winstrom.skladova-karta",
    "Paging": {
        "Kind": "offset",
        "OffsetParameter": "start",
        "SizeParameter": "limit",
        "PageSize": 1000,
        "TotalPath": "winstrom.@rowCount",
    },
    "Fields": {
        "product_code": {"From": "cenik", "RemovePrefix": "code:"},
        "stock": "stavMJ",
        "location": {"From": "regal", "RemovePrefix": "code:"},
    },
}
SHOPTET = {
    "Url": "https://api.myshoptet.com/api/stocks/1/supplies",
    "RecordsPath": "data.supplies",
    "Paging": {
        "Kind": "page",
        "PageParameter": "page",
        "SizeParameter": "itemsPerPage",
        "PageSize": 100,
        "PageCountPath": "data.paginator.pageCount",
        "MaxPages": 500,
    },
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
    assert erp.paging == PagingSettings(
        kind=PagingKind.OFFSET,
        page_size=1000,
        position_parameter="start",
        size_parameter="limit",
        count_path=json_path("winstrom.@rowCount"),
    )
    assert erp.fields == (
        FieldRule(field="product_code", source="cenik", remove_prefix="code:"),
        FieldRule(field="stock", source="stavMJ"),
        FieldRule(field="location", source="regal", remove_prefix="code:"),
    )
    assert erp.csv is None
    eshop = settings.sources["eshop_stock"].primary
    assert eshop.paging == PagingSettings(
        kind=PagingKind.PAGE,
        page_size=100,
        position_parameter="page",
        size_parameter="itemsPerPage",
        count_path=json_path("data.paginator.pageCount"),
        max_pages=500,
    )
    attributes = settings.sources["attributes"].primary
    assert attributes.csv == CsvFormat(delimiter=";", encoding="windows-1250", decimal_comma=True)
    assert attributes.fields == (FieldRule(field="product_code", source="code"),)
    assert attributes.paging is None


@pytest.mark.parametrize(
    ("kind", "position", "size"), [("offset", "offset", "limit"), ("page", "page", "pageSize")]
)
def test_paging_defaults(tmp_path: Path, kind: str, position: str, size: str) -> None:
    """Only Kind and PageSize are needed: parameter names, first page and cap have defaults."""
    source = {"Url": "http://erp.example", "Paging": {"Kind": kind, "PageSize": 50}}
    paging = load_sources(tmp_path, {"ErpStock": source}).sources["erp_stock"].primary.paging
    assert paging is not None
    assert (paging.position_parameter, paging.size_parameter) == (position, size)
    assert (paging.count_path, paging.first_page, paging.max_pages) == (None, 1, DEFAULT_MAX_PAGES)


def test_an_endpoint_without_the_new_options_is_unchanged(tmp_path: Path) -> None:
    """A plain source has no paging, no field rules and a JSON payload."""
    erp = load_sources(tmp_path, {"ErpStock": {"Url": "http://erp.example"}})
    endpoint = erp.sources["erp_stock"].primary
    assert (endpoint.paging, endpoint.fields, endpoint.csv) == (None, (), None)


def test_environment_variables_reach_into_paging_and_fields(tmp_path: Path) -> None:
    """`Sources__ErpStock__Paging__PageSize` and a Fields rule can be set from the environment."""
    settings = load_sources(
        tmp_path,
        {"ErpStock": FLEXI},
        Sources__ErpStock__Paging__PageSize="250",
        Sources__ErpStock__Fields__product_name="nazev",
    )
    erp = settings.sources["erp_stock"].primary
    assert erp.paging is not None
    assert erp.paging.page_size == 250
    assert FieldRule(field="product_name", source="nazev") in erp.fields


def test_a_backup_has_its_own_paging_and_fields(tmp_path: Path) -> None:
    """The backup may be another system: it inherits none of the primary's reading options."""
    source = {**FLEXI, "Backup": {"Url": "http://replica.example/stock"}}
    erp = load_sources(tmp_path, {"ErpStock": source}).sources["erp_stock"]
    assert erp.backup is not None
    assert (erp.backup.paging, erp.backup.fields) == (None, ())


def test_describe_shows_the_options_and_loads_back(tmp_path: Path) -> None:
    """describe() writes Paging, Fields and Csv in the file's shape; loading it gives the same."""
    sources = {"ErpStock": FLEXI, "EshopStock": SHOPTET, "Attributes": EXPORT}
    settings = load_sources(tmp_path, sources)
    described = describe(settings)["Sources"]
    assert described["ErpStock"]["Paging"]["TotalPath"] == "winstrom.@rowCount"
    assert described["EshopStock"]["Fields"] == {"product_code": "code", "stock": "amount"}
    assert described["Attributes"]["Csv"]["Encoding"] == "windows-1250"
    again = load_sources(tmp_path, json.loads(json.dumps(described)))
    assert again.sources == settings.sources


def erp(**options: Any) -> dict[str, Any]:
    return {"ErpStock": {"Url": "http://erp.example", **options}}


OFFSET = {"Kind": "offset", "PageSize": 10}


@pytest.mark.parametrize(
    ("sources", "key", "problem"),
    [
        (erp(Paging={"Kind": "scroll", "PageSize": 10}), "Paging:Kind", "one of offset, page"),
        (erp(Paging={"PageSize": 10}), "Paging:Kind", "required"),
        (erp(Paging={"Kind": "offset"}), "Paging:PageSize", "required"),
        (erp(Paging={**OFFSET, "PageSize": 0}), "Paging:PageSize", "at least 1"),
        (erp(Paging={**OFFSET, "MaxPages": 0}), "Paging:MaxPages", "at least 1"),
        (erp(Paging={**OFFSET, "PageSise": 5}), "Paging:PageSise", "did you mean PageSize?"),
        (erp(Paging={**OFFSET, "PageCountPath": "a.b"}), "Paging:PageCountPath", "Kind page"),
        (erp(Paging={**OFFSET, "FirstPage": 0}), "Paging:FirstPage", "only for Kind page"),
        (
            erp(Paging={"Kind": "page", "PageSize": 5, "TotalPath": "a"}),
            "Paging:TotalPath",
            "only for Kind offset",
        ),
        (erp(Paging={**OFFSET, "TotalPath": "total"}), "Paging:TotalPath", "needs RecordsPath"),
        (
            erp(RecordsPath="d.items", Paging={**OFFSET, "TotalPath": "d..total"}),
            "Paging:TotalPath",
            "empty step",
        ),
        (erp(Paging={**OFFSET, "OffsetParameter": "limit"}), "Paging:SizeParameter", "differ"),
        (erp(Paging={**OFFSET, "SizeParameter": " "}), "Paging:SizeParameter", "not be empty"),
        (erp(Paging=5), "Paging", "expected an object"),
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
        (erp(Csv={}, Paging=OFFSET), "Paging", "not for a Csv payload"),
        (erp(Csv={}, RecordsPath="data"), "RecordsPath", "not for a Csv payload"),
    ],
)
def test_bad_options_are_refused_naming_the_key(
    tmp_path: Path, sources: dict[str, Any], key: str, problem: str
) -> None:
    """Every wrong Paging, Fields or Csv option fails at load with its key and the reason."""
    error = error_of(tmp_path, sources)
    assert error.key == f"Sources:ErpStock:{key}"
    assert problem in error.problem


@pytest.mark.parametrize("option", ["Paging", "Fields", "Csv"])
def test_reading_options_on_a_demo_endpoint_are_refused(tmp_path: Path, option: str) -> None:
    """A demo endpoint makes its own records: paging, mapping or CSV would be ignored, so no."""
    value = OFFSET if option == "Paging" else {}
    error = error_of(tmp_path, {"Lots": {"Type": "demo", option: value}})
    assert (error.key, error.problem) == (f"Sources:Lots:{option}", "only for Type http, not demo")


def test_a_backups_bad_option_names_the_backup(tmp_path: Path) -> None:
    """An error in the backup's Paging names the backup's key."""
    source = {"Url": "http://erp.example", "Backup": {"Url": "http://b.example", "Paging": {}}}
    assert error_of(tmp_path, {"ErpStock": source}).key == "Sources:ErpStock:Backup:Paging:Kind"


def test_a_history_source_keeps_date_parameters_for_its_window(tmp_path: Path) -> None:
    """A paging parameter named date_from would overwrite the window: refused."""
    paging = {**OFFSET, "OffsetParameter": "date_from"}
    error = error_of(tmp_path, {"SalesData": {"Url": "http://s.example", "Paging": paging}})
    assert error.key == "Sources:SalesData:Paging:OffsetParameter"


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
    """Adding Paging, Fields and Csv did not loosen the check on the other source keys."""
    error = error_of(tmp_path, erp(Pagin=OFFSET))
    assert error.key == "Sources:ErpStock:Pagin"
    assert "did you mean Paging?" in error.problem


def test_the_readme_example_loads(tmp_path: Path) -> None:
    """The README's Flexi and Shoptet example is a configuration the service accepts."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("### Reading real systems", 1)[1]
    example = section.split("```jsonc\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "appsettings.json"
    path.write_text("{" + example + "}")
    environ = {
        "FLEXI_BASIC_AUTH": "Basic x",
        "SHOPTET_TOKEN": "t",
        "SHOPTET_EXPORT_URL": "https://eshop.example/export/products.csv?hash=abc",
    }
    settings = load(path, environment=None, environ=environ)
    erp, eshop = settings.sources["erp_stock"], settings.sources["eshop_stock"]
    assert erp.primary.paging is not None
    assert erp.primary.paging.count_path == json_path("winstrom.@rowCount")
    assert eshop.primary.fields == (
        FieldRule(field="product_code", source="code"),
        FieldRule(field="stock", source="amount"),
    )
    assert eshop.backup is not None
    assert eshop.backup.csv == CsvFormat(delimiter=";", encoding="windows-1250", decimal_comma=True)
