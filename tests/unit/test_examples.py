"""The shipped examples, with only their URLs changed, refreshing through the real service.

Each test loads ``examples/abraflexi.json`` or ``examples/shoptet.json`` with the
configuration loader, stand-ins for its ``env:`` secrets, and every URL's origin
swapped for a real local HTTP server that answers from fixtures in the systems'
own shapes (``tests/examples_server.py``). It refreshes one source through
``Application`` (in-process: no worker process) and checks the product aggregate
holds exactly what the payloads say, and that the requests were the ones the
systems expect (method, body, paging, window, credentials).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from catalog_refresher import config
from catalog_refresher.app import Application
from catalog_refresher.config.settings import RefreshSettings, Settings
from catalog_refresher.domain.aggregate import ProductAggregate, SalesPeriod
from catalog_refresher.domain.records import Consumption, Lot, Purchase
from catalog_refresher.domain.runs import Run, RunStatus
from catalog_refresher.testing import FakeClock
from tests.examples_server import (
    FLEXI,
    SAMPLES,
    SHOPTET,
    Systems,
    always,
    fixture,
    flexi_error,
    flexi_pages,
    serve,
    shoptet_pages,
)
from tests.paged_server import Reply

EXAMPLES = Path(__file__).parents[2] / "examples"
#: The origins the examples are written with; the tests swap exactly these.
ORIGINS = (
    "https://flexi.example.cz:5434",
    "https://api.myshoptet.com",
    "https://www.example-eshop.cz",
)
#: The day the runs start: the fixtures' dates fall inside every history window.
NOW = datetime(2024, 5, 10, 8, 0, tzinfo=UTC)
TODAY = NOW.date()
AUTHORIZATION = "Basic YXBpOmZsZXhpLXBhc3N3b3JkLTI3"
TOKEN = "shoptet-private-4c1d9e0b7a"
EXPORT = "/export/products.csv"
#: Waits on the clock up to this long are moved through (a rate limit's, not a timeout's).
SHORT_WAIT = 5.0


def window_start(days: int) -> str:
    return (TODAY - timedelta(days=days)).isoformat()


def example(name: str, systems: Systems, tmp_path: Path, **environ: str) -> Settings:
    """``examples/<name>`` with every URL's origin swapped for the local server's."""
    text = (EXAMPLES / name).read_text(encoding="utf-8")
    for origin in ORIGINS:
        text = text.replace(origin, systems.url)
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    stand_ins = {
        "FLEXI_AUTHORIZATION": AUTHORIZATION,
        "SHOPTET_PRIVATE_API_TOKEN": TOKEN,
        "SHOPTET_EXPORT_HASH": "0f1e2d3c",
        "CATALOG_ADMIN_TOKEN": "admin-token-for-tests",
        "Store__Url": f"sqlite:///{tmp_path / 'catalog.db'}",
    }
    settings = config.load(path, environment=None, environ={**stand_ins, **environ})
    # One-shot, as `catalog-refresher refresh` runs: decoding in this process.
    return replace(settings, refresh=RefreshSettings(worker_processes=0))


@asynccontextmanager
async def service(settings: Settings) -> AsyncIterator[Application]:
    application = Application.build(settings, clock=FakeClock(NOW))
    try:
        await application.service.prepare(recover=False)
        yield application
    finally:
        await application.aclose()


async def run_once(application: Application, source: str) -> Run:
    """One refresh of ``source``, moving the fake clock through short waits only.

    A rate limit (``MaxRequestsPerSecond``) waits on the injected clock between
    pages; the run's own ``RefreshTimeout`` waits on it too, and must not be
    reached. Meanwhile the pages travel over a real socket, which takes real time.
    """
    clock = application.service.clock
    assert isinstance(clock, FakeClock)
    task = asyncio.ensure_future(application.service.refresh(source))
    while not task.done():
        await asyncio.wait({task}, timeout=0.02)
        deadline = clock.next_deadline()
        if not task.done() and deadline is not None and deadline <= SHORT_WAIT:
            await clock.advance(deadline)
    return task.result()


async def refresh(settings: Settings, source: str) -> tuple[Run, dict[str, ProductAggregate]]:
    """Refresh ``source`` once; the run and every product it stored, by code."""
    async with service(settings) as application:
        run = await run_once(application, source)
        products = {}
        for code in _codes(application):
            product = await application.catalog.get(code)
            assert product is not None
            products[code] = product
        return run, products


def _codes(application: Application) -> list[str]:
    codes, _ = application.store.list_products(search=None, limit=1000, offset=0)
    return codes


def succeeded(run: Run, *, fetched: int) -> None:
    assert (run.status, run.error) == (RunStatus.SUCCEEDED, None)
    assert (run.counts.fetched, run.counts.invalid) == (fetched, 0)


def starts(systems: Systems, evidence: str, *, in_body: bool) -> list[int]:
    """The ``start`` of every page asked of a Flexi evidence, in order."""
    asked = systems.asked(evidence)
    if in_body:
        return [int(r.body["winstrom"]["start"]) for r in asked]
    return [int(r.query["start"]) for r in asked]


@pytest.fixture
def systems() -> Iterator[Systems]:
    with serve() as systems:
        yield systems


# --- ABRA Flexi: ErpStock (stock to date) and its Backup (stock cards) ----------------------


def stock_to_date(systems: Systems, *pages: str) -> None:
    paths = [FLEXI / f"stav-skladu-k-datu_{page}.json" for page in pages]
    systems.route("POST", "stav-skladu-k-datu", flexi_pages(paths, in_body=True))


async def test_flexi_stock_to_date_posts_a_query_and_reads_the_expanded_cenik(
    systems: Systems, tmp_path: Path
) -> None:
    """ErpStock POSTs .../query (paging in the body) and maps cenik[0].kod/nazev and stavMJ."""
    stock_to_date(systems, "page1", "page2")
    run, products = await refresh(example("abraflexi.json", systems, tmp_path), "erp_stock")
    succeeded(run, fetched=5)
    assert {code: (p.product_name, p.stock.erp, p.location) for code, p in products.items()} == {
        "KRM001": ("Pleťový krém levandule 50 ml", 128.0, None),
        "KRM002": ("Krém na ruce měsíček 75 ml", 0.0, None),  # stray space trimmed
        "SER010-30": ("Sérum s kyselinou hyaluronovou 30 ml", 36.5, None),
        "SER010-50": ("Sérum s kyselinou hyaluronovou 50 ml", 71238.961591, None),
        "MYD003": ("Mýdlo šalvěj & měsíček", -2.0, None),
    }
    asked = systems.asked("stav-skladu-k-datu")
    assert starts(systems, "stav-skladu-k-datu", in_body=True) == [0, 3]
    first = asked[0]
    assert first.path.endswith("/stav-skladu-k-datu/query.json")
    # The URL's own query as written (code:ZBOZI, no %3A), the date appended.
    assert first.raw_query == f"sklad=code:ZBOZI&datum={TODAY.isoformat()}"
    assert first.headers["Authorization"] == AUTHORIZATION
    body = first.body["winstrom"]
    assert (body["detail"], body["includes"], int(body["limit"])) == (
        "custom:cenik(kod,nazev),stavMJ",
        "/stav-skladu-k-datu/cenik",
        1000,
    )


async def test_flexi_stock_to_date_with_every_value_a_string(
    systems: Systems, tmp_path: Path
) -> None:
    """Ids, quantities and booleans sent as strings read as the numbers they are."""
    stock_to_date(systems, "strings")
    run, products = await refresh(example("abraflexi.json", systems, tmp_path), "erp_stock")
    succeeded(run, fetched=2)
    assert {code: (p.product_name, p.stock.erp) for code, p in products.items()} == {
        "KRM001": ("Pleťový krém levandule 50 ml", 128.0),
        "MYD003": ("Mýdlo šalvěj & měsíček", 7.0),  # kod " MYD003"
    }


async def test_flexi_stock_cards_serve_when_stock_to_date_fails(
    systems: Systems, tmp_path: Path
) -> None:
    """Flexi's error envelope fails the primary; the stock cards (flat relations) serve, named."""
    systems.route("POST", "stav-skladu-k-datu", always(flexi_error("Sklad nebyl nalezen")))
    cards = [SAMPLES / f"abraflexi_skladova-karta_page{page}.json" for page in (1, 2)]
    systems.route("GET", "skladova-karta", flexi_pages(cards))
    run, products = await refresh(example("abraflexi.json", systems, tmp_path), "erp_stock")
    succeeded(run, fetched=5)
    assert run.used_backup
    assert {code: (p.product_name, p.stock.erp, p.location) for code, p in products.items()} == {
        "KRM001": ("Pleťový krém levandule 50 ml", 128.0, "A1-R02"),
        "KRM002": ("Krém na ruce měsíček 75 ml", 0.0, None),  # regal ""
        "SER010-30": ("Sérum s kyselinou hyaluronovou 30 ml", 36.5, "B2-R01"),
        "SER010-50": ("Sérum s kyselinou hyaluronovou 50 ml", 71238.961591, "B2-R01"),
        "MYD003": ("Mýdlo šalvěj & měsíček", 7.0, "C3"),  # regal " code:C3 "
    }
    assert starts(systems, "skladova-karta", in_body=False) == [0, 3]
    card_request = systems.asked("skladova-karta")[0]
    assert "(sklad = 'code:ZBOZI' and ucetObdobi.platiOdData lte now()" in card_request.path
    assert card_request.query["add-row-count"] == "true"


# --- ABRA Flexi: Lots -----------------------------------------------------------------------


async def test_flexi_lots_keep_received_lots_with_their_expiry(
    systems: Systems, tmp_path: Path
) -> None:
    """Lots: strings everywhere, dates with offsets, "" expiry is none; no-lot and issue rows go."""
    pages = [FLEXI / f"sarze-expirace_page{page}.json" for page in (1, 2)]
    systems.route("GET", "sarze-expirace", flexi_pages(pages))
    run, products = await refresh(example("abraflexi.json", systems, tmp_path), "lots")
    succeeded(run, fetched=4)
    assert {code: p.lots for code, p in products.items()} == {
        "KRM001": [
            Lot(product_code="KRM001", lot="L2404-17", amount=24.0, expiration="2025-09-30"),
            Lot(product_code="KRM001", lot="L2404-18", amount=104.0, expiration="2025-10-31"),
        ],
        "SER010-30": [Lot(product_code="SER010-30", lot="S-0424", amount=36.5)],
        "MYD003": [Lot(product_code="MYD003", lot="M3", amount=7.0, expiration="2026-01-22")],
    }
    assert starts(systems, "sarze-expirace", in_body=False) == [0, 3]


async def test_flexi_lots_in_full_detail_with_native_numbers(
    systems: Systems, tmp_path: Path
) -> None:
    """Lots in detail=full (more fields, numbers as numbers) map the same way."""
    systems.route("GET", "sarze-expirace", flexi_pages([FLEXI / "sarze-expirace_full.json"]))
    run, products = await refresh(example("abraflexi.json", systems, tmp_path), "lots")
    succeeded(run, fetched=2)
    assert {code: p.lots for code, p in products.items()} == {
        "SER010-50": [
            Lot(product_code="SER010-50", lot="H50-0501", amount=12.0, expiration="2026-04-30")
        ],
        "OBL-KEL50": [Lot(product_code="OBL-KEL50", lot="K-2024-03", amount=480.0)],
    }


async def test_flexi_error_envelope_fails_the_run_with_flexis_message(
    systems: Systems, tmp_path: Path
) -> None:
    """success "false" on a 200 fails the run, and the run's error is Flexi's own message."""
    message = "Chyba při zpracování filtru: neznámá vlastnost 'datVyst2'"
    systems.route("GET", "sarze-expirace", always(flexi_error(message, status=200)))
    async with service(example("abraflexi.json", systems, tmp_path)) as application:
        run = await run_once(application, "lots")
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert message in run.error


# --- ABRA Flexi: stock-movement lines, split into PurchaseHistory and ConsumedMaterials ------


def movement_lines(systems: Systems, *pages: str) -> None:
    paths = [FLEXI / f"skladovy-pohyb-polozka_{page}.json" for page in pages]
    systems.route("POST", "skladovy-pohyb-polozka", flexi_pages(paths, in_body=True))


async def test_flexi_receipts_are_purchases(systems: Systems, tmp_path: Path) -> None:
    """Receipt lines (doklSklad[0].typPohybuK) are purchases; cancelled ones and issues are not."""
    movement_lines(systems, "page1", "page2", "page3")
    settings = example("abraflexi.json", systems, tmp_path)
    run, products = await refresh(settings, "purchase_history")
    succeeded(run, fetched=3)
    assert {code: p.purchase_history for code, p in products.items()} == {
        "MAT-LEV01": [
            Purchase(
                product_code="MAT-LEV01",
                date="2024-04-03",
                quantity=2.5,
                purchase_price=1180.0,
                currency="CZK",
                supplier_code="AROMA",
                supplier_name="Aroma Trade s.r.o.",
                document_number="P+00012/2024",
            )
        ],
        "OBL-KEL50": [
            Purchase(
                product_code="OBL-KEL50",
                date="2024-04-18",  # "2024-04-18+02:00"
                quantity=500.0,  # "500.0"
                purchase_price=8.156325,
                currency="EUR",
                supplier_code="OBALY",
                supplier_name="Obaly Morava a.s.",
                document_number="P+00013/2024",
            )
        ],
        "KRM001": [  # production output is a receipt too; it has no supplier ("")
            Purchase(
                product_code="KRM001",
                date="2024-04-22",
                quantity=48.0,
                purchase_price=61.2,
                currency="CZK",
                document_number="S+00034/2024",
            )
        ],
    }
    assert starts(systems, "skladovy-pohyb-polozka", in_body=True) == [0, 3, 6]
    body = systems.asked("skladovy-pohyb-polozka")[0].body["winstrom"]
    window = f"'{window_start(365)}' and doklSklad.datVyst lte '{TODAY.isoformat()}'"
    assert window in body["filter"]
    assert body["includes"] == "/skladovy-pohyb-polozka/doklSklad"
    assert "date_from" not in systems.asked("skladovy-pohyb-polozka")[0].query


async def test_flexi_issues_that_are_not_sales_are_consumption(
    systems: Systems, tmp_path: Path
) -> None:
    """Issue lines are consumption unless their document type is a sale (code:PRODEJ)."""
    movement_lines(systems, "page1", "page2", "page3")
    settings = example("abraflexi.json", systems, tmp_path)
    run, products = await refresh(settings, "consumed_materials")
    succeeded(run, fetched=2)
    assert {code: p.consumed_history for code, p in products.items()} == {
        "MAT-LEV01": [Consumption(product_code="MAT-LEV01", date="2024-04-20", quantity=0.75)],
        "OBL-KEL50": [Consumption(product_code="OBL-KEL50", date="2024-04-20", quantity=120.0)],
    }
    body = systems.asked("skladovy-pohyb-polozka")[0].body["winstrom"]
    assert f"'{window_start(720)}'" in body["filter"]


async def test_flexi_movement_lines_with_cenik_expanded_too(
    systems: Systems, tmp_path: Path
) -> None:
    """Lines whose cenik came expanded (as the origin project asks) give the same codes."""
    movement_lines(systems, "cenik-included")
    settings = example("abraflexi.json", systems, tmp_path)
    run, purchases = await refresh(settings, "purchase_history")
    succeeded(run, fetched=1)
    assert [p.product_code for p in purchases["MAT-LEV01"].purchase_history] == ["MAT-LEV01"]
    run, consumed = await refresh(settings, "consumed_materials")
    succeeded(run, fetched=1)
    assert consumed["MAT-LEV01"].consumed_history == [
        Consumption(product_code="MAT-LEV01", date="2024-04-20", quantity=0.75)
    ]


# --- ABRA Flexi: SalesData from issued-invoice lines ---------------------------------------


async def test_flexi_invoice_lines_are_sales_booked_to_their_month(
    systems: Systems, tmp_path: Path
) -> None:
    """Invoice lines of the window (a filter in the URL path) sum per month; no-product lines go."""
    pages = [FLEXI / f"faktura-vydana-polozka_page{page}.json" for page in (1, 2)]
    systems.route("GET", "faktura-vydana-polozka", flexi_pages(pages))
    run, products = await refresh(example("abraflexi.json", systems, tmp_path), "sales_data")
    succeeded(run, fetched=4)
    assert {code: p.sales_history for code, p in products.items()} == {
        "KRM001": [SalesPeriod(period="2024-04", b2b_sold=3.0)],
        "SER010-30": [SalesPeriod(period="2024-03", b2b_sold=4.0)],
        "SER010-50": [SalesPeriod(period="2024-05", b2b_sold=6.0)],
    }
    assert starts(systems, "faktura-vydana-polozka", in_body=False) == [0, 3]
    first = systems.asked("faktura-vydana-polozka")[0]
    assert (
        f"(doklFak.datVyst gte '{window_start(365)}' and doklFak.datVyst lte '{TODAY}'"
        in first.path
    )
    assert "date_from" not in first.query
    assert first.query["add-row-count"] == "true"


async def test_flexi_invoice_lines_with_cenik_expanded(systems: Systems, tmp_path: Path) -> None:
    """With includes= the relation is an array; its @showAs still gives the code."""
    page = FLEXI / "faktura-vydana-polozka_includes.json"
    systems.route("GET", "faktura-vydana-polozka", flexi_pages([page]))
    run, products = await refresh(example("abraflexi.json", systems, tmp_path), "sales_data")
    succeeded(run, fetched=1)
    assert {code: p.sales_history for code, p in products.items()} == {
        "MYD003": [SalesPeriod(period="2024-02", b2b_sold=5.0)]
    }


# --- Shoptet: EshopStock from supplies, the product CSV export as its Backup ----------------


def supplies(systems: Systems) -> None:
    pages = [SHOPTET / f"stocks-supplies_page{page}.json" for page in (1, 2, 3)]
    systems.route("GET", "/api/stocks/1/supplies", shoptet_pages(pages, token=TOKEN))


def export(systems: Systems, path: Path) -> None:
    csv = Reply(body=fixture(path), content_type="text/csv; charset=windows-1250")
    systems.route("GET", EXPORT, always(csv))


async def test_shoptet_supplies_follow_the_reported_page_count(
    systems: Systems, tmp_path: Path
) -> None:
    """Asked for 1000 a page, served 2: every page is read; a null amount is no stock."""
    supplies(systems)
    run, products = await refresh(example("shoptet.json", systems, tmp_path), "eshop_stock")
    succeeded(run, fetched=5)
    assert {code: p.stock.eshop for code, p in products.items()} == {
        "KRM001": 122.0,
        "KRM002": 0.0,
        "SER010-30": -1.0,
        "SER010-50": 14.5,  # " SER010-50 "
        "MYD003": 7.0,
    }
    asked = systems.asked("/api/stocks/1/supplies")
    assert [(r.query["page"], r.query["itemsPerPage"]) for r in asked] == [
        ("1", "1000"),
        ("2", "1000"),
        ("3", "1000"),
    ]
    assert all(r.headers["Shoptet-Private-API-Token"] == TOKEN for r in asked)


async def test_shoptet_export_serves_when_the_api_refuses_the_token(
    systems: Systems, tmp_path: Path
) -> None:
    """A 401 fails over to the CSV export: "$" before codes removed, "14,5" is 14.5, "" is 0."""
    supplies(systems)
    export(systems, SHOPTET / "products_export.csv")
    settings = example("shoptet.json", systems, tmp_path, SHOPTET_PRIVATE_API_TOKEN="revoked")
    run, products = await refresh(settings, "eshop_stock")
    succeeded(run, fetched=6)
    assert run.used_backup
    assert {code: p.stock.eshop for code, p in products.items()} == {
        "KRM001": 120.0,
        "KRM002": 0.0,
        "SER010-30": -1.0,
        "SER010-50": 14.5,
        "MYD003": 0.0,
        "0042": 300.0,  # "$0042": the reason Shoptet adds the "$"
    }


async def test_shoptet_export_without_the_dollar_option(systems: Systems, tmp_path: Path) -> None:
    """The shared sample export (codes without "$") reads the same way."""
    # An unknown stock id: a 404 in Shoptet's error envelope, not retried.
    systems.route("GET", "/api/stocks/1/supplies", always(Reply(status=404, body=b"{}")))
    export(systems, SAMPLES / "shoptet_products_export.csv")
    run, products = await refresh(example("shoptet.json", systems, tmp_path), "eshop_stock")
    succeeded(run, fetched=5)
    assert {code: p.stock.eshop for code, p in products.items()} == {
        "KRM001": 122.0,
        "KRM002": 0.0,
        "SER010-30": -1.0,
        "SER010-50": 14.0,
        "MYD003": 7.0,
    }


# --- Both examples pass check-config's loader ----------------------------------------------


@pytest.mark.parametrize("name", ["abraflexi.json", "shoptet.json"])
def test_example_loads_and_describes_with_its_secrets_masked(name: str, tmp_path: Path) -> None:
    """check-config's loader and describe accept the example as shipped; no secret is printed."""
    environ = {
        "FLEXI_AUTHORIZATION": AUTHORIZATION,
        "SHOPTET_PRIVATE_API_TOKEN": TOKEN,
        "SHOPTET_EXPORT_HASH": "9a8b7c5d",
        "CATALOG_ADMIN_TOKEN": "admin-token-for-tests",
    }
    settings = config.load(EXAMPLES / name, environment=None, environ=environ)
    described = json.dumps(config.describe(settings), ensure_ascii=False)
    for secret in environ.values():
        assert secret not in described
    expected = {"abraflexi.json": 5, "shoptet.json": 1}[name]
    assert len(settings.sources) == expected
