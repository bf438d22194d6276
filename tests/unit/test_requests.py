"""Requests built from the endpoint's templates, as a real local server receives them."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from catalog_refresher.domain.specs import SPECS
from catalog_refresher.domain.window import Window
from catalog_refresher.refresh.validate import validate
from catalog_refresher.sources.requests import with_parameters
from catalog_refresher.testing import FakeClock
from tests.endpoints import fetch, load_endpoint
from tests.http_recorder import Answer, Seen, ok_json, recording

WINDOW = Window(date_from=date(2025, 11, 29), date_to=date(2026, 11, 29))
SALE = {"product_code": "KRM001", "period": "2026-10", "b2b_sold": 2, "b2c_sold": 1}
FLEXI_SALES_PATH = (
    "/c/firma/faktura-vydana-polozka/"
    "(doklFak.datVyst >= '{date_from}' and doklFak.datVyst <= '{date_to}').json"
)


def answer_sales(seen: Seen) -> Answer:
    return ok_json([SALE])


async def test_the_urls_own_query_is_sent_exactly_as_written(tmp_path: Path) -> None:
    """detail=custom:id,kod and includes=/a/b reach the server byte for byte; Query follows."""
    with recording(lambda seen: Answer()) as server:
        url = f"{server.url}/c/firma/cenik.json?detail=custom:id,kod&includes=/cenik/sklad"
        options = {"Url": url, "Query": {"add-row-count": True, "x": "a:b,c/d"}}
        await fetch("erp_stock", load_endpoint(tmp_path, "erp_stock", options))

    assert server.targets == [
        "/c/firma/cenik.json?detail=custom:id,kod&includes=/cenik/sklad&add-row-count=true"
        "&x=a:b,c/d"
    ]


async def test_a_flexi_filter_in_the_path_gets_the_window_percent_encoded(tmp_path: Path) -> None:
    """The window's dates fill the path's filter, which goes percent-encoded and reads back."""
    with recording(answer_sales) as server:
        options = {
            "Url": f"{server.url}{FLEXI_SALES_PATH}?detail=custom:cenik,mnozMj",
            "WindowParameters": False,
        }
        payload = await fetch(
            "sales_data", load_endpoint(tmp_path, "sales_data", options), window=WINDOW
        )

    (seen,) = server.seen
    assert seen.target == (
        "/c/firma/faktura-vydana-polozka/(doklFak.datVyst%20%3E=%20'2025-11-29'%20and"
        "%20doklFak.datVyst%20%3C=%20'2026-11-29').json?detail=custom:cenik,mnozMj"
    )
    assert unquote(seen.path) == FLEXI_SALES_PATH.format(
        date_from="2025-11-29", date_to="2026-11-29"
    )
    assert validate(SPECS["sales_data"], payload, WINDOW).fetched == 1


async def test_query_values_take_the_window_in_a_format_of_their_own(tmp_path: Path) -> None:
    """{date_to:%d.%m.%Y} writes the date the system's way; date_from/date_to still follow."""
    with recording(answer_sales) as server:
        options = {
            "Url": f"{server.url}/sales",
            "Query": {
                "datum": "{date_to:%d.%m.%Y}",
                "od": "{date_from}",
                "mesic": "{date_to:%Y-%m}",
            },
        }
        await fetch("sales_data", load_endpoint(tmp_path, "sales_data", options), window=WINDOW)

    assert server.targets == [
        "/sales?datum=29.11.2026&od=2025-11-29&mesic=2026-11"
        "&date_from=2025-11-29&date_to=2026-11-29"
    ]


async def test_window_parameters_false_sends_only_the_placeholders(tmp_path: Path) -> None:
    """With WindowParameters false a history source sends no date_from/date_to of its own."""
    with recording(answer_sales) as server:
        options = {
            "Url": f"{server.url}/sales?company=1",
            "Query": {"from": "{date_from}"},
            "WindowParameters": False,
        }
        await fetch("sales_data", load_endpoint(tmp_path, "sales_data", options), window=WINDOW)

    assert server.targets == ["/sales?company=1&from=2025-11-29"]


async def test_a_post_sends_the_body_template_with_the_window_filled_in(tmp_path: Path) -> None:
    """Method POST sends the Body as JSON, its strings' placeholders filled, keys as written."""
    body = {
        "winstrom": {
            "stav-skladu-k-datu": {"datum": "{date_to}", "sklad": "code:ZBOZI", "max": 5},
            "labels": ["{date_from:%d.%m.%Y}", True, None],
            "braces": "{{literal}}",
        }
    }
    with recording(answer_sales) as server:
        options = {"Url": f"{server.url}/c/firma/query.json", "Method": "post", "Body": body}
        await fetch("sales_data", load_endpoint(tmp_path, "sales_data", options), window=WINDOW)

    (seen,) = server.seen
    assert seen.method == "POST"
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.json() == {
        "winstrom": {
            "stav-skladu-k-datu": {"datum": "2026-11-29", "sklad": "code:ZBOZI", "max": 5},
            "labels": ["29.11.2025", True, None],
            "braces": "{literal}",
        }
    }
    assert seen.query == {"date_from": "2025-11-29", "date_to": "2026-11-29"}


async def test_content_type_labels_the_body(tmp_path: Path) -> None:
    """ContentType is sent as the body's Content-Type."""
    with recording(lambda seen: Answer()) as server:
        options = {
            "Url": f"{server.url}/q",
            "Method": "POST",
            "Body": {"a": 1},
            "ContentType": "application/vnd.flexibee+json; charset=utf-8",
        }
        await fetch("erp_stock", load_endpoint(tmp_path, "erp_stock", options))

    assert server.seen[0].headers["Content-Type"] == "application/vnd.flexibee+json; charset=utf-8"


def flexi_query(records: list[dict[str, Any]], total: int) -> Answer:
    return ok_json({"winstrom": {"@rowCount": str(total), "stav-skladu-k-datu": records}})


async def test_offset_paging_in_the_body_puts_start_and_limit_at_dotted_keys(
    tmp_path: Path,
) -> None:
    """With In: body the pager's start/limit go into the JSON body as numbers, not the URL."""
    rows = [{"product_code": f"P-{i}", "stock": i} for i in range(5)]

    def handle(seen: Seen) -> Answer:
        query = seen.json()["winstrom"]
        start, limit = query["start"], query["limit"]
        return flexi_query(rows[start : start + limit], len(rows))

    with recording(handle) as server:
        options = {
            "Url": f"{server.url}/c/firma/stav-skladu-k-datu/query.json?add-row-count=true",
            "Method": "POST",
            "Body": {"winstrom": {"sklad": "code:ZBOZI"}},
            "RecordsPath": "winstrom.stav-skladu-k-datu",
            "Paging": {
                "Kind": "offset",
                "In": "body",
                "OffsetParameter": "winstrom.start",
                "SizeParameter": "winstrom.limit",
                "PageSize": 2,
                "TotalPath": "winstrom.@rowCount",
            },
        }
        payload = await fetch("erp_stock", load_endpoint(tmp_path, "erp_stock", options))

    assert [s.json() for s in server.seen] == [
        {"winstrom": {"sklad": "code:ZBOZI", "start": start, "limit": 2}} for start in (0, 2, 4)
    ]
    assert set(server.targets) == {"/c/firma/stav-skladu-k-datu/query.json?add-row-count=true"}
    assert validate(SPECS["erp_stock"], payload, None).fetched == 5


async def test_a_paging_parameter_the_url_has_is_set_in_place(tmp_path: Path) -> None:
    """?start=0&limit=3 written in the URL is overwritten where it stands, not sent twice."""
    rows = [{"product_code": f"P-{i}", "stock": i} for i in range(3)]

    def handle(seen: Seen) -> Answer:
        start = int(seen.query["start"])
        return ok_json(rows[start : start + 2])

    with recording(handle) as server:
        options = {
            "Url": f"{server.url}/cards.json?start=0&limit=3&detail=custom:kod",
            "Paging": {"Kind": "offset", "OffsetParameter": "start", "PageSize": 2},
        }
        await fetch("erp_stock", load_endpoint(tmp_path, "erp_stock", options))

    assert server.targets == [
        "/cards.json?start=0&limit=2&detail=custom:kod",
        "/cards.json?start=2&limit=2&detail=custom:kod",
    ]


async def test_a_query_value_may_be_a_secret_reference(tmp_path: Path) -> None:
    """A Query value written env:NAME is sent revealed, and encoded where it must be."""
    with recording(lambda seen: Answer()) as server:
        options = {"Url": f"{server.url}/x", "Query": {"api_key": "env:KEY"}}
        endpoint = load_endpoint(tmp_path, "erp_stock", options, KEY="k&y=1 +z{}")
        await fetch("erp_stock", endpoint)

    assert server.targets == ["/x?api_key=k%26y%3D1%20%2Bz%7B%7D"]
    assert server.seen[0].query == {"api_key": "k&y=1 +z{}"}


@pytest.mark.parametrize(
    ("url", "pairs", "expected"),
    [
        ("http://h/p", [], "http://h/p"),
        ("http://h/p?a=1", [("b", "2")], "http://h/p?a=1&b=2"),
        ("http://h/p?a=x:y&b=1&a=z", [("a", "2")], "http://h/p?a=2&b=1"),
        ("http://h/p?q=%2F#frag", [("r", "a b")], "http://h/p?q=%2F&r=a%20b"),
        ("http://h/p?", [("x", "é")], "http://h/p?x=%C3%A9"),
        ("http://h/p?flag&b", [("b", "1")], "http://h/p?flag&b=1"),
    ],
)
def test_with_parameters_keeps_the_query_as_written(
    url: str, pairs: list[tuple[str, str]], expected: str
) -> None:
    """Added pairs are appended or set in place; every other byte of the query stays."""
    assert with_parameters(url, pairs) == expected


async def test_a_get_with_paging_in_the_query_sends_no_body(tmp_path: Path) -> None:
    """A plain GET has no body and no Content-Type."""
    with recording(lambda seen: Answer(body=json.dumps([]).encode())) as server:
        await fetch("erp_stock", load_endpoint(tmp_path, "erp_stock", {"Url": server.url}))

    (seen,) = server.seen
    assert (seen.method, seen.body, "Content-Type" in seen.headers) == ("GET", b"", False)


async def test_today_fills_a_snapshot_sources_stock_to_date_body(tmp_path: Path) -> None:
    """{today} is the run's date off the clock, for a snapshot source that has no window."""
    with recording(lambda seen: Answer()) as server:
        options = {
            "Url": f"{server.url}/c/firma/stav-skladu-k-datu/query.json?den={{today}}",
            "Method": "POST",
            "Body": {"winstrom": {"stav-skladu-k-datu": {"datum": "{today:%d.%m.%Y}"}}},
        }
        endpoint = load_endpoint(tmp_path, "erp_stock", options)
        await fetch("erp_stock", endpoint, clock=FakeClock())  # 2026-11-29 10:00 UTC

    (seen,) = server.seen
    assert seen.target == "/c/firma/stav-skladu-k-datu/query.json?den=2026-11-29"
    assert seen.json() == {"winstrom": {"stav-skladu-k-datu": {"datum": "29.11.2026"}}}
