"""CSV payloads: the Shoptet export's windows-1250, CRLF, trailing `;` and decimal commas."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from catalog_refresher.config import load
from catalog_refresher.config.settings import CsvFormat, FieldRule
from catalog_refresher.domain.records import ErpStock, EshopStock
from catalog_refresher.domain.specs import SPECS
from catalog_refresher.errors import InvalidPayloadError
from catalog_refresher.refresh.validate import validate
from catalog_refresher.sources.base import Payload
from catalog_refresher.sources.csv_payload import read_rows
from catalog_refresher.sources.http import HttpSource, build_client
from tests.paged_server import Reply, sample, serve

EXPORT = sample("shoptet_products_export.csv")
SHOPTET_CSV = CsvFormat(delimiter=";", encoding="windows-1250", decimal_comma=True)
CODE = FieldRule(field="product_code", source="code")


def test_the_export_sample_is_what_the_tests_claim() -> None:
    """The sample really is windows-1250 with CRLF and a `;` ending every line."""
    assert EXPORT.count(b"\r\n") == 6
    assert all(line.endswith(b";") for line in EXPORT.split(b"\r\n") if line)
    assert "Pleťový".encode("cp1250") in EXPORT
    assert "Pleťový".encode() not in EXPORT


def test_rows_are_keyed_by_header_without_the_trailing_empty_column() -> None:
    """Quotes and CRLF are gone, the trailing `;` makes no column, empty cells are left out."""
    rows = read_rows(EXPORT, SHOPTET_CSV, frozenset({"purchasePrice"}), 1)
    assert len(rows) == 5
    assert rows[0] == {
        "code": "KRM001",
        "name": "Pleťový krém levandule",
        "appendix": "50 ml",
        "productVisibility": "visible",
        "defaultImage": "https://cdn.myshoptet.com/usr/www.example-eshop.cz/user/shop/orig/"
        "311_krem-levandule.jpg",
        "price": "249",
        "purchasePrice": "87.5",  # a numeric column: decimal comma read as a point
        "stock": "122",
        "stockLocation": "A1/R02/P3",
    }
    assert "pairCode" not in rows[0]  # an empty cell
    assert rows[4]["name"] == "Mýdlo šalvěj & měsíček"
    assert "purchasePrice" not in rows[4]  # `""` is empty too


def test_the_export_refreshes_e_shop_stock() -> None:
    """The sample as an e-shop stock payload: `code` mapped, `stock` read by its own name."""
    payload = Payload(pages=[EXPORT], csv=SHOPTET_CSV, fields=(CODE,))
    batch = validate(SPECS["eshop_stock"], payload, None)
    assert (batch.fetched, batch.invalid) == (5, 0)
    assert batch.rows == {
        code: EshopStock(product_code=code, stock=stock)
        for code, stock in [
            ("KRM001", 122.0),
            ("KRM002", 0.0),
            ("SER010-30", -1.0),
            ("SER010-50", 14.0),
            ("MYD003", 7.0),
        ]
    }


def test_decimal_commas_names_and_empty_cells_reach_the_records() -> None:
    """`87,5` is 87.5, names are decoded from windows-1250, an empty required cell is refused."""
    fields = (
        CODE,
        FieldRule(field="product_name", source="name"),
        FieldRule(field="stock", source="purchasePrice"),
        FieldRule(field="location", source="stockLocation"),
    )
    batch = validate(
        SPECS["erp_stock"], Payload(pages=[EXPORT], csv=SHOPTET_CSV, fields=fields), None
    )
    assert batch.rows["KRM001"] == ErpStock(
        product_code="KRM001",
        stock=87.5,
        product_name="Pleťový krém levandule",
        location="A1/R02/P3",
    )
    assert batch.rows["KRM002"].location is None  # type: ignore[attr-defined]
    assert batch.rows["SER010-50"].stock == 198.0  # type: ignore[attr-defined]
    assert (batch.invalid, list(batch.rows)) == (1, ["KRM001", "KRM002", "SER010-30", "SER010-50"])
    assert batch.reasons == ["record 4: Object missing required field `purchasePrice`"]


def test_without_decimal_comma_a_comma_number_is_refused() -> None:
    """DecimalComma is what makes `87,5` a number: without it the record is invalid."""
    fields = (CODE, FieldRule(field="stock", source="purchasePrice"))
    fmt = CsvFormat(delimiter=";", encoding="windows-1250")
    batch = validate(SPECS["eshop_stock"], Payload(pages=[EXPORT], csv=fmt, fields=fields), None)
    assert "KRM001" not in batch.rows
    assert batch.rows["SER010-50"] == EshopStock(product_code="SER010-50", stock=198.0)


def test_commas_in_text_columns_are_left_alone() -> None:
    """Only numeric columns get the decimal comma read as a point."""
    text = 'product_code;product_name;stock\r\n"A";"Šroub 4,5 mm, pozink";"1,25"\r\n'
    fmt = CsvFormat(delimiter=";", decimal_comma=True)
    batch = validate(SPECS["erp_stock"], Payload(pages=[text.encode()], csv=fmt), None)
    assert batch.rows["A"] == ErpStock(
        product_code="A", stock=1.25, product_name="Šroub 4,5 mm, pozink"
    )


def test_a_headerless_file_uses_the_configured_columns() -> None:
    """HasHeader false with Columns: every line is a record."""
    fmt = CsvFormat(has_header=False, columns=("product_code", "stock"))
    batch = validate(SPECS["eshop_stock"], Payload(pages=[b"A,1\nB,2\n\n"], csv=fmt), None)
    assert batch.rows == {
        "A": EshopStock(product_code="A", stock=1.0),
        "B": EshopStock(product_code="B", stock=2.0),
    }


def test_columns_replace_the_header_names_when_there_is_a_header() -> None:
    """Columns with a header row: the header is skipped and the configured names apply."""
    fmt = CsvFormat(columns=("product_code", "stock"))
    batch = validate(SPECS["eshop_stock"], Payload(pages=[b"Kod,Stav\nA,1\n"], csv=fmt), None)
    assert list(batch.rows) == ["A"]


def test_a_utf8_byte_order_mark_does_not_stick_to_the_first_column() -> None:
    """Files saved by Excel start with a BOM; the first column keeps its plain name."""
    body = "\ufeffproduct_code,stock\r\nA,1\r\n".encode()
    batch = validate(SPECS["eshop_stock"], Payload(pages=[body], csv=CsvFormat()), None)
    assert list(batch.rows) == ["A"]


def test_a_spooled_csv_page_is_read_from_its_file(tmp_path: Path) -> None:
    """A page spooled to a file reads the same as one held in memory."""
    spooled = tmp_path / "page.csv"
    spooled.write_bytes(EXPORT)
    payload = Payload(pages=[spooled], csv=SHOPTET_CSV, fields=(CODE,))
    in_memory = Payload(pages=[EXPORT], csv=SHOPTET_CSV, fields=(CODE,))
    spec = SPECS["eshop_stock"]
    assert validate(spec, payload, None).rows == validate(spec, in_memory, None).rows


@pytest.mark.parametrize(
    ("body", "fmt", "problem"),
    [
        (EXPORT, CsvFormat(delimiter=";"), "page 1: not utf-8 text at byte 115"),
        (b'product_code,stock\n"A"x,1\n', CsvFormat(), "page 1: not valid CSV"),
        (b"", CsvFormat(), "page 1: the CSV document has no header row"),
        (b"stock,stock\n1,2\n", CsvFormat(), "page 1: column 'stock' appears twice"),
    ],
    ids=["wrong-encoding", "bad-quoting", "empty", "duplicate-column"],
)
def test_a_page_that_is_not_readable_csv_fails_the_run(
    body: bytes, fmt: CsvFormat, problem: str
) -> None:
    """Undecodable bytes, broken quoting, no header or a repeated column fail the payload."""
    with pytest.raises(InvalidPayloadError) as caught:
        validate(SPECS["eshop_stock"], Payload(pages=[body], csv=fmt), None)
    assert str(caught.value).startswith(problem)


async def test_a_csv_export_served_over_http_is_spooled_and_read(tmp_path: Path) -> None:
    """Configured with Csv, the export is fetched, spooled as a .csv file and read."""
    config = tmp_path / "appsettings.json"
    with serve(lambda path, query: Reply(body=EXPORT, content_type="text/csv")) as server:
        options = {
            "Url": f"{server.url}/export/products.csv",
            "Csv": {"Delimiter": ";", "Encoding": "windows-1250", "DecimalComma": True},
            "Fields": {"product_code": "code"},
        }
        config.write_text(json.dumps({"Sources": {"EshopStock": options}}))
        endpoint = load(config, environment=None, environ={}).sources["eshop_stock"].primary
        spool = tmp_path / "spool"
        spool.mkdir()
        async with build_client() as client:
            payload = await HttpSource("eshop_stock", endpoint, client, spool=spool).fetch(None)

    (page,) = payload.pages
    assert isinstance(page, Path)
    assert page.suffix == ".csv"
    assert page.read_bytes() == EXPORT
    batch = validate(SPECS["eshop_stock"], payload, None)
    assert (len(batch.rows), batch.invalid) == (5, 0)
    payload.discard()
