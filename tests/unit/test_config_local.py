"""config.load of "Type": "sql" and "Type": "file" endpoints: read, refused naming the key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from catalog_refresher.config import describe, load
from catalog_refresher.config.settings import CsvFormat, EndpointType, FileFormat, Settings
from catalog_refresher.errors import ConfigError

SQL = {
    "Type": "sql",
    "Url": "postgresql+psycopg://erp:s3cret-pw@db.example/erp",
    "Query": "SELECT code AS product_code, qty AS stock FROM stock",
    "Fields": {"location": "regal"},
}
FILE = {"Type": "file", "Path": "drop/*.csv", "Format": "csv", "Csv": {"Delimiter": ";"}}


def load_sources(tmp_path: Path, sources: dict[str, Any], **environ: str) -> Settings:
    path = tmp_path / "appsettings.json"
    path.write_text(json.dumps({"Sources": sources}))
    return load(path, environment=None, environ=environ)


def error_of(tmp_path: Path, sources: dict[str, Any], **environ: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_sources(tmp_path, sources, **environ)
    return caught.value


def test_a_sql_endpoint_is_read_with_its_url_query_and_fields(tmp_path: Path) -> None:
    """Type sql keeps Url, Query and Fields; the URL may come from env:."""
    erp = (
        load_sources(
            tmp_path, {"ErpStock": {**SQL, "Url": "env:ERP_DB"}}, ERP_DB="sqlite:///erp.db"
        )
        .sources["erp_stock"]
        .primary
    )
    assert (erp.type, erp.url, erp.sql) == (EndpointType.SQL, "sqlite:///erp.db", SQL["Query"])
    assert [rule.field for rule in erp.fields] == ["location"]


def test_a_file_endpoint_resolves_a_relative_path_from_the_configuration(tmp_path: Path) -> None:
    """Type file: Path relative to the configuration file's folder, Format and Csv read."""
    erp = load_sources(tmp_path, {"ErpStock": FILE}).sources["erp_stock"].primary
    assert erp.path == str(tmp_path / "drop" / "*.csv")
    assert erp.format is FileFormat.CSV
    assert erp.csv == CsvFormat(delimiter=";")


@pytest.mark.parametrize(
    ("source", "key", "problem"),
    [
        ({**SQL, "Paging": {"Kind": "offset"}}, "ErpStock:Paging", "not for Type sql"),
        ({**SQL, "Method": "POST"}, "ErpStock:Method", "not for Type sql"),
        ({**SQL, "Headers": {"X": "y"}}, "ErpStock:Headers", "not for Type sql"),
        ({**SQL, "Path": "x.csv"}, "ErpStock:Path", "not for Type sql"),
        ({**FILE, "Url": "http://x.example"}, "ErpStock:Url", "not for Type file"),
        ({**FILE, "Query": "SELECT 1"}, "ErpStock:Query", "not for Type file"),
        ({**FILE, "Tls": {"Verify": False}}, "ErpStock:Tls", "not for Type file"),
        ({"Url": "http://x.example", "Path": "x.csv"}, "ErpStock:Path", "only for Type file"),
        ({"Url": "http://x.example", "Format": "csv"}, "ErpStock:Format", "only for Type file"),
        ({**SQL, "Url": None}, "ErpStock:Url", "required for Type sql"),
        ({**SQL, "Query": None}, "ErpStock:Query", "required for Type sql"),
        ({**SQL, "Query": "  "}, "ErpStock:Query", "must not be empty"),
        ({**SQL, "Url": "nonsense"}, "ErpStock:Url", "not a SQLAlchemy URL"),
        ({**SQL, "Url": "nosuchdb://u:pw@h/db"}, "ErpStock:Url", "no SQLAlchemy dialect"),
        ({**SQL, "Query": "SELECT * FROM t WHERE d > :since"}, "ErpStock:Query", ":since"),
        ({**FILE, "Path": None}, "ErpStock:Path", "required for Type file"),
        ({**FILE, "Format": None}, "ErpStock:Format", "required for Type file"),
        ({**FILE, "Format": "xml"}, "ErpStock:Format", "expected one of csv, json, ndjson"),
        ({**FILE, "Format": "json"}, "ErpStock:Csv", "only for Format csv"),
        (
            {"Type": "file", "Path": "x", "Format": "ndjson", "RecordsPath": "a"},
            "ErpStock:RecordsPath",
            "only for Format json",
        ),
    ],
)
def test_options_of_another_type_or_bad_values_are_refused(
    tmp_path: Path, source: dict[str, Any], key: str, problem: str
) -> None:
    """Each wrong option is a ConfigError naming its colon key and the problem."""
    error = error_of(tmp_path, {"ErpStock": source})
    assert error.key == f"Sources:{key}"
    assert problem in str(error)
    assert "s3cret-pw" not in str(error)


def test_the_window_parameters_are_only_for_history_sources(tmp_path: Path) -> None:
    """:date_from in a snapshot source's Query is refused; a history source binds both."""
    query = "SELECT * FROM s WHERE d BETWEEN :date_from AND :date_to"
    error = error_of(tmp_path, {"ErpStock": {**SQL, "Query": query, "Fields": None}})
    assert (error.key, ":date_from is only for history sources" in str(error)) == (
        "Sources:ErpStock:Query",
        True,
    )
    sales = load_sources(tmp_path, {"SalesData": {**SQL, "Query": query, "Fields": None}})
    assert sales.sources["sales_data"].primary.sql == query
    cursor = {**SQL, "Query": "SELECT * FROM s WHERE :cursor IS NULL OR changed > :cursor"}
    assert load_sources(tmp_path, {"ErpStock": cursor}).sources["erp_stock"].primary.sql


def test_describe_masks_the_sql_password_and_loads_back(tmp_path: Path) -> None:
    """describe() shows the URL without its password and the file options; both load again."""
    settings = load_sources(tmp_path, {"ErpStock": SQL, "EshopStock": FILE})
    described = describe(settings)["Sources"]
    assert described["ErpStock"]["Url"] == "postgresql+psycopg://erp:***@db.example/erp"
    assert "s3cret-pw" not in json.dumps(described)
    assert described["EshopStock"]["Format"] == "csv"
    unmasked = json.loads(json.dumps(described))
    unmasked["ErpStock"]["Url"] = SQL["Url"]
    assert load_sources(tmp_path, unmasked).sources == settings.sources


def test_the_readme_sql_and_file_example_is_accepted(tmp_path: Path) -> None:
    """The README's "Databases and files" example loads: two sql sources and a file one."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("### Databases and files", 1)[1]
    example = section.split("```jsonc\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "appsettings.json"
    path.write_text('{"Sources": {' + example + "}}")
    settings = load(path, environment=None, environ={"ERP_DB": "sqlite:///erp.db"})
    types = {id_: source.primary.type for id_, source in settings.sources.items()}
    assert types == {
        "erp_stock": EndpointType.SQL,
        "eshop_stock": EndpointType.FILE,
        "sales_data": EndpointType.SQL,
    }
    assert settings.sources["eshop_stock"].primary.path == str(tmp_path / "drop/stock-*.csv")
