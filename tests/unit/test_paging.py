"""HttpSource with Paging, against a real local HTTP server playing ABRA Flexi and Shoptet."""

from __future__ import annotations

import dataclasses
import json
import os
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from catalog_refresher.clock import SystemClock
from catalog_refresher.config import load
from catalog_refresher.config.settings import EndpointSettings
from catalog_refresher.domain.records import ErpStock, EshopStock
from catalog_refresher.domain.specs import SPECS
from catalog_refresher.domain.window import Window
from catalog_refresher.errors import InvalidPayloadError, SourceError, SourceStatusError
from catalog_refresher.refresh.resilience import with_retries
from catalog_refresher.refresh.validate import validate
from catalog_refresher.sources.base import Payload
from catalog_refresher.sources.http import HttpSource, build_client
from tests.paged_server import (
    Handler,
    Reply,
    flexi,
    flexi_cards,
    flexi_page,
    sample,
    serve,
    shoptet,
    shoptet_page,
    shoptet_supplies,
)

TOKEN = "shoptet-token-5f4e3d2c1b"

#: The README's ABRA Flexi example, with the samples' page size.
FLEXI = {
    "RecordsPath": "winstrom.skladova-karta",
    "Paging": {
        "Kind": "offset",
        "OffsetParameter": "start",
        "SizeParameter": "limit",
        "PageSize": 3,
        "TotalPath": "winstrom.@rowCount",
    },
    "Fields": {
        "product_code": {"From": "cenik", "RemovePrefix": "code:"},
        "stock": "stavMJ",
        "location": {"From": "regal", "RemovePrefix": "code:"},
    },
}

#: The README's Shoptet example, with the samples' page size.
SHOPTET = {
    "Headers": {"Shoptet-Private-API-Token": "env:SHOPTET_TOKEN"},
    "RecordsPath": "data.supplies",
    "Paging": {
        "Kind": "page",
        "PageParameter": "page",
        "SizeParameter": "itemsPerPage",
        "PageSize": 3,
        "PageCountPath": "data.paginator.pageCount",
    },
    "Fields": {"product_code": "code", "stock": "amount"},
}

#: What the two sample pages of each system hold, once read.
FLEXI_ROWS = {
    "KRM001": ErpStock(product_code="KRM001", stock=128.0, location="A1-R02"),
    "KRM002": ErpStock(product_code="KRM002", stock=0.0, location=None),
    "SER010-30": ErpStock(product_code="SER010-30", stock=36.5, location="B2-R01"),
    "SER010-50": ErpStock(product_code="SER010-50", stock=71238.961591, location="B2-R01"),
    "MYD003": ErpStock(product_code="MYD003", stock=7.0, location="C3"),
}
SHOPTET_ROWS = {
    "KRM001": EshopStock(product_code="KRM001", stock=122.0),
    "KRM002": EshopStock(product_code="KRM002", stock=0.0),
    "SER010-30": EshopStock(product_code="SER010-30", stock=-1.0),
    "SER010-50": EshopStock(product_code="SER010-50", stock=14.0),
    "MYD003": EshopStock(product_code="MYD003", stock=7.5),
}


def endpoint(
    tmp_path: Path, source_id: str, url: str, options: dict[str, Any], **paging: Any
) -> EndpointSettings:
    """The endpoint ``config.load`` makes of ``options`` (``paging`` overrides Paging keys)."""
    options = {**options, "Url": url}
    if paging:
        options["Paging"] = {**options["Paging"], **paging}
        options["Paging"] = {k: v for k, v in options["Paging"].items() if v is not None}
    path = tmp_path / "appsettings.json"
    path.write_text(json.dumps({"Sources": {SPECS[source_id].config_key: options}}))
    settings = load(path, environment=None, environ={"SHOPTET_TOKEN": TOKEN})
    return settings.sources[source_id].primary


async def fetch(
    source_id: str,
    settings: EndpointSettings,
    *,
    window: Window | None = None,
    spool: Path | None = None,
) -> Payload:
    async with build_client() as client:
        return await HttpSource(source_id, settings, client, spool=spool).fetch(window)


def by_param(name: str, bodies: dict[str, bytes]) -> Handler:
    """Answer with the body kept for the request's ``name`` parameter; 404 for any other."""

    def handle(path: str, query: dict[str, str]) -> Reply:
        body = bodies.get(query.get(name, ""))
        return Reply(status=404) if body is None else Reply(body=body)

    return handle


def pages_asked(requests: list[dict[str, str]], name: str) -> list[str]:
    return [query[name] for query in requests]


# --- the samples, page by page ----------------------------------------------------------


async def test_flexi_sample_pages_are_read_by_start_and_limit(tmp_path: Path) -> None:
    """Both Flexi pages are fetched by start/limit, kept as two pages, and read into records."""
    bodies = {
        "0": sample("abraflexi_skladova-karta_page1.json"),
        "3": sample("abraflexi_skladova-karta_page2.json"),
    }
    with serve(by_param("start", bodies)) as server:
        url = f"{server.url}/c/demo_firma/skladova-karta.json?add-row-count=true"
        payload = await fetch("erp_stock", endpoint(tmp_path, "erp_stock", url, FLEXI))

    assert server.requests == [
        {"add-row-count": "true", "start": "0", "limit": "3"},
        {"add-row-count": "true", "start": "3", "limit": "3"},
    ]
    assert payload.pages == list(bodies.values())  # one Payload page per response, untouched
    batch = validate(SPECS["erp_stock"], payload, None)
    assert (batch.fetched, batch.invalid, batch.reasons) == (5, 0, [])
    assert batch.rows == FLEXI_ROWS


async def test_shoptet_sample_pages_follow_the_page_count(tmp_path: Path) -> None:
    """Both Shoptet pages are fetched by page/itemsPerPage, with the token, and read."""
    bodies = {
        "1": sample("shoptet_stocks_supplies_page1.json"),
        "2": sample("shoptet_stocks_supplies_page2.json"),
    }
    with serve(by_param("page", bodies)) as server:
        url = f"{server.url}/api/stocks/1/supplies"
        payload = await fetch("eshop_stock", endpoint(tmp_path, "eshop_stock", url, SHOPTET))

    assert server.requests == [
        {"page": "1", "itemsPerPage": "3"},
        {"page": "2", "itemsPerPage": "3"},
    ]
    assert all(h["Shoptet-Private-API-Token"] == TOKEN for h in server.headers)
    batch = validate(SPECS["eshop_stock"], payload, None)
    assert (batch.fetched, batch.invalid) == (5, 0)
    assert batch.rows == SHOPTET_ROWS


# --- page sizes the server caps -----------------------------------------------------------


async def test_shoptet_capped_items_per_page_is_followed_by_page_count(tmp_path: Path) -> None:
    """Asking 1000 a page from a Shoptet that caps at 2 still reads all three pages it reports."""
    with serve(shoptet(shoptet_supplies(), cap=2)) as server:
        settings = endpoint(tmp_path, "eshop_stock", server.url, SHOPTET, PageSize=1000)
        payload = await fetch("eshop_stock", settings)

    assert pages_asked(server.requests, "page") == ["1", "2", "3"]
    assert pages_asked(server.requests, "itemsPerPage") == ["1000"] * 3
    assert validate(SPECS["eshop_stock"], payload, None).rows == SHOPTET_ROWS


async def test_flexi_capped_limit_advances_by_the_records_received(tmp_path: Path) -> None:
    """With limit capped at 2, the next start follows the records received, not the limit asked."""
    with serve(flexi(flexi_cards(), cap=2)) as server:
        settings = endpoint(tmp_path, "erp_stock", server.url, FLEXI, PageSize=1000)
        payload = await fetch("erp_stock", settings)

    assert pages_asked(server.requests, "start") == ["0", "2", "4"]
    assert validate(SPECS["erp_stock"], payload, None).rows == FLEXI_ROWS


# --- paging without a count ---------------------------------------------------------------


async def test_offset_paging_without_a_total_stops_at_the_first_short_page(tmp_path: Path) -> None:
    """Without TotalPath, pages are asked for until one holds fewer than PageSize records."""
    with serve(flexi(flexi_cards())) as server:
        settings = endpoint(tmp_path, "erp_stock", server.url, FLEXI, PageSize=2, TotalPath=None)
        payload = await fetch("erp_stock", settings)

    assert pages_asked(server.requests, "start") == ["0", "2", "4"]
    batch = validate(SPECS["erp_stock"], payload, None)
    assert (len(payload.pages), batch.rows) == (3, FLEXI_ROWS)


async def test_offset_paging_without_a_total_ends_on_an_empty_page_after_full_ones(
    tmp_path: Path,
) -> None:
    """When the records fill the last page exactly, the empty page after it ends paging."""
    with serve(flexi(flexi_cards())) as server:
        settings = endpoint(tmp_path, "erp_stock", server.url, FLEXI, PageSize=5, TotalPath=None)
        payload = await fetch("erp_stock", settings)

    assert pages_asked(server.requests, "start") == ["0", "5"]
    assert validate(SPECS["erp_stock"], payload, None).rows == FLEXI_ROWS


async def test_page_paging_without_a_page_count_stops_at_the_first_short_page(
    tmp_path: Path,
) -> None:
    """Without PageCountPath, page numbers go up until a page has fewer than PageSize records."""
    with serve(shoptet(shoptet_supplies())) as server:
        settings = endpoint(
            tmp_path, "eshop_stock", server.url, SHOPTET, PageSize=2, PageCountPath=None
        )
        payload = await fetch("eshop_stock", settings)

    assert pages_asked(server.requests, "page") == ["1", "2", "3"]
    assert validate(SPECS["eshop_stock"], payload, None).rows == SHOPTET_ROWS


async def test_a_zero_based_page_number_starts_at_first_page(tmp_path: Path) -> None:
    """FirstPage 0 asks for page 0 first and still reads as many pages as the count says."""
    bodies = {
        "0": sample("shoptet_stocks_supplies_page1.json"),
        "1": sample("shoptet_stocks_supplies_page2.json"),
    }
    with serve(by_param("page", bodies)) as server:
        settings = endpoint(tmp_path, "eshop_stock", server.url, SHOPTET, FirstPage=0)
        payload = await fetch("eshop_stock", settings)

    assert pages_asked(server.requests, "page") == ["0", "1"]
    assert validate(SPECS["eshop_stock"], payload, None).rows == SHOPTET_ROWS


# --- failures -------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "transient"), [(503, True), (429, True), (404, False)])
async def test_a_failing_page_fails_the_whole_fetch(
    tmp_path: Path, status: int, transient: bool
) -> None:
    """An error on page 2 fails the fetch as it would alone, names the page, leaves no spool."""
    good = flexi(flexi_cards())

    def handle(path: str, query: dict[str, str]) -> Reply:
        return Reply(status=status) if query["start"] == "3" else good(path, query)

    spool = tmp_path / "spool"
    spool.mkdir()
    with serve(handle) as server:
        options = {**FLEXI, "Headers": {"Authorization": "env:SHOPTET_TOKEN"}}
        settings = endpoint(tmp_path, "erp_stock", server.url, options)
        with pytest.raises(SourceStatusError) as caught:
            await fetch("erp_stock", settings, spool=spool)

    assert (caught.value.status_code, caught.value.transient) == (status, transient)
    message = str(caught.value)
    assert "page 2: start=3, limit=3" in message
    assert TOKEN not in message
    assert len(server.requests) == 2
    assert os.listdir(spool) == []  # page 1 was spooled, then removed with the failure


async def test_a_transient_page_failure_is_retried_as_a_whole_fetch(tmp_path: Path) -> None:
    """The runner's retry starts the pages over: a 503 once on page 2, then all pages succeed."""
    good = shoptet(shoptet_supplies())
    failures = [Reply(status=503)]

    def handle(path: str, query: dict[str, str]) -> Reply:
        if query["page"] == "2" and failures:
            return failures.pop()
        return good(path, query)

    retries: list[int] = []
    with serve(handle) as server:
        settings = endpoint(tmp_path, "eshop_stock", server.url, SHOPTET)
        async with build_client() as client:
            source = HttpSource("eshop_stock", settings, client)
            payload, attempts = await with_retries(
                lambda: source.fetch(None),
                attempts=3,
                base_delay=timedelta(0),  # no backoff to wait for
                clock=SystemClock(),
                on_retry=lambda attempt, exc: retries.append(attempt),
            )

    assert (attempts, retries) == (2, [1])
    assert pages_asked(server.requests, "page") == ["1", "2", "1", "2"]
    assert validate(SPECS["eshop_stock"], payload, None).rows == SHOPTET_ROWS


def endless_flexi(path: str, query: dict[str, str]) -> Reply:
    """A server that ignores start: the same full page, forever, of a huge total."""
    return Reply(body=flexi_page(flexi_cards()[:3], 10**9))


def endless_shoptet(path: str, query: dict[str, str]) -> Reply:
    """A server whose page count grows with every page asked for."""
    page = int(query["page"])
    items = shoptet_supplies()[:3]
    return Reply(body=shoptet_page(items, page=page, page_count=page + 1, per_page=3, total=10**9))


@pytest.mark.parametrize(
    ("source_id", "options", "handler"),
    [("erp_stock", FLEXI, endless_flexi), ("eshop_stock", SHOPTET, endless_shoptet)],
    ids=["offset", "page"],
)
async def test_a_source_that_never_ends_fails_at_max_pages(
    tmp_path: Path, source_id: str, options: dict[str, Any], handler: Handler
) -> None:
    """After MaxPages pages with more to come, the fetch fails for good instead of looping."""
    spool = tmp_path / "spool"
    spool.mkdir()
    with serve(handler) as server:
        settings = endpoint(tmp_path, source_id, server.url, options, MaxPages=4)
        with pytest.raises(InvalidPayloadError, match=r"more than 4 pages \(MaxPages\)") as caught:
            await fetch(source_id, settings, spool=spool)

    assert len(server.requests) == 4
    assert not caught.value.transient
    assert os.listdir(spool) == []


@pytest.mark.parametrize(
    ("row_count", "problem"),
    [(None, "no '@rowCount' on the way to TotalPath"), ("many", 'holds "many", not a count')],
)
async def test_a_page_without_a_usable_total_fails_the_fetch(
    tmp_path: Path, row_count: str | None, problem: str
) -> None:
    """A TotalPath missing from a page, or not a number, is an invalid payload naming it."""
    envelope: dict[str, Any] = {"skladova-karta": flexi_cards()[:3]}
    if row_count is not None:
        envelope["@rowCount"] = row_count
    body = json.dumps({"winstrom": envelope}).encode()
    with serve(lambda path, query: Reply(body=body)) as server:
        settings = endpoint(tmp_path, "erp_stock", server.url, FLEXI)
        with pytest.raises(InvalidPayloadError) as caught:
            await fetch("erp_stock", settings)

    assert str(caught.value).startswith("page 1: ")
    assert problem in str(caught.value)


async def test_a_page_that_is_not_json_fails_the_fetch(tmp_path: Path) -> None:
    """An HTML error page served with 200 is an invalid payload, not retried."""
    with serve(lambda path, query: Reply(body=b"<html>login</html>")) as server:
        settings = endpoint(tmp_path, "eshop_stock", server.url, SHOPTET)
        with pytest.raises(SourceError) as caught:
            await fetch("eshop_stock", settings)

    assert isinstance(caught.value, InvalidPayloadError)
    assert "page 1" in str(caught.value)


# --- history sources -----------------------------------------------------------------------


async def test_a_history_source_sends_its_window_on_every_page(tmp_path: Path) -> None:
    """date_from/date_to go with every page request, next to the paging parameters."""
    rows = [{"product_code": f"P-{i}", "period": "2026-10", "b2b_sold": i} for i in range(3)]

    def handle(path: str, query: dict[str, str]) -> Reply:
        start = int(query["offset"])
        return Reply(body=json.dumps(rows[start : start + 2]).encode())

    window = Window(date_from=date(2025, 11, 29), date_to=date(2026, 11, 29))
    with serve(handle) as server:
        options = {"Paging": {"Kind": "offset", "PageSize": 2}}
        settings = endpoint(tmp_path, "sales_data", f"{server.url}/sales?company=1", options)
        payload = await fetch("sales_data", settings, window=window)

    assert server.requests == [
        {
            "company": "1",
            "date_from": "2025-11-29",
            "date_to": "2026-11-29",
            "offset": o,
            "limit": "2",
        }
        for o in ("0", "2")  # the second page is short: the last
    ]
    batch = validate(SPECS["sales_data"], payload, window)
    assert (batch.fetched, batch.invalid) == (3, 0)


def test_paging_settings_are_immutable(tmp_path: Path) -> None:
    """The paging settings loaded from the file cannot be changed after load."""
    settings = endpoint(tmp_path, "erp_stock", "http://erp.example", FLEXI)
    assert settings.paging is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.paging.page_size = 5  # type: ignore[misc]
