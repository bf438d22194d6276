"""Paging by a next link, a Link header and a cursor, against a real local server."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from catalog_refresher.domain.specs import SPECS
from catalog_refresher.errors import InvalidPayloadError
from catalog_refresher.refresh.validate import validate
from tests.endpoints import fetch, load_endpoint
from tests.http_recorder import Answer, Seen, ok_json, recording

ROWS = [{"product_code": f"P-{i}", "stock": i} for i in range(5)]


def page_of(seen: Seen, size: int = 2) -> tuple[int, list[dict[str, Any]]]:
    """The page number the request asks for (``p``, default 1) and its rows."""
    number = int(seen.query.get("p", 1))
    return number, ROWS[(number - 1) * size : number * size]


def read(payload: Any) -> int:
    batch = validate(SPECS["erp_stock"], payload, None)
    assert batch.invalid == 0
    return batch.fetched


# --- next: a link in the body ----------------------------------------------------------


async def test_next_links_are_followed_absolute_and_relative(tmp_path: Path) -> None:
    """An absolute next link, then a relative one, then null: three pages, all records."""
    links = {1: None, 2: "?p=3&token=x", 3: None}

    def handle(seen: Seen) -> Answer:
        number, rows = page_of(seen)
        nxt = links[number] if number != 1 else f"{server.url}/items?p=2"
        return ok_json({"data": rows, "links": {"next": nxt}})

    with recording(handle) as server:
        options = {
            "Url": f"{server.url}/items",
            "RecordsPath": "data",
            "Paging": {"Kind": "next", "NextPath": "links.next"},
        }
        payload = await fetch("erp_stock", load_endpoint(tmp_path, "erp_stock", options))

    assert server.targets == ["/items", "/items?p=2", "/items?p=3&token=x"]
    assert read(payload) == 5


@pytest.mark.parametrize("end", [None, "", "missing"])
async def test_next_paging_ends_on_a_null_empty_or_missing_link(
    tmp_path: Path, end: str | None
) -> None:
    """A page whose next link is null, "" or absent is the last."""

    def handle(seen: Seen) -> Answer:
        number, rows = page_of(seen)
        links: dict[str, Any] = {"next": "/items?p=2"}
        if number > 1:
            links = {} if end == "missing" else {"next": end}
        return ok_json({"data": rows, "links": links})

    with recording(handle) as server:
        options = {
            "Url": f"{server.url}/items",
            "RecordsPath": "data",
            "Paging": {"Kind": "next", "NextPath": "links.next"},
        }
        await fetch("erp_stock", load_endpoint(tmp_path, "erp_stock", options))

    assert server.targets == ["/items", "/items?p=2"]


async def test_a_next_link_to_another_host_fails_the_run_and_is_never_fetched(
    tmp_path: Path,
) -> None:
    """A link off the configured scheme/host/port is refused, credentials masked, not fetched."""
    spool = tmp_path / "spool"
    spool.mkdir()
    with recording(lambda seen: Answer()) as elsewhere:
        evil = elsewhere.url.replace("http://", "http://thief:s3cr3t-pw@") + "/steal?key=abc123"

        def handle(seen: Seen) -> Answer:
            return ok_json({"data": ROWS[:2], "links": {"next": evil}})

        with recording(handle) as server:
            options = {
                "Url": f"{server.url}/items",
                "RecordsPath": "data",
                "Paging": {"Kind": "next", "NextPath": "links.next"},
            }
            endpoint = load_endpoint(tmp_path, "erp_stock", options)
            with pytest.raises(InvalidPayloadError) as caught:
                await fetch("erp_stock", endpoint, spool=spool)

    message = str(caught.value)
    assert "page 1: NextPath 'links.next' leads to" in message
    assert f"{elsewhere.url}/steal" in message
    assert "only the configured scheme, host and port" in message
    assert "s3cr3t-pw" not in message
    assert "abc123" not in message
    assert elsewhere.seen == []
    assert os.listdir(spool) == []


async def test_a_next_link_that_repeats_fails_instead_of_looping(tmp_path: Path) -> None:
    """A server that links back to a page already read fails the fetch at once."""

    def handle(seen: Seen) -> Answer:
        return ok_json({"data": ROWS[:2], "links": {"next": "/items?p=2"}})

    with recording(handle) as server:
        options = {
            "Url": f"{server.url}/items",
            "RecordsPath": "data",
            "Paging": {"Kind": "next", "NextPath": "links.next"},
        }
        with pytest.raises(InvalidPayloadError, match=r"page 2: .* again; the source would loop"):
            await fetch("erp_stock", load_endpoint(tmp_path, "erp_stock", options))

    assert len(server.seen) == 2


# --- link: the RFC 8288 Link header -----------------------------------------------------


async def test_link_header_next_is_followed_among_other_links(tmp_path: Path) -> None:
    """rel="next" is found among several links and params, in one or several Link headers."""

    def handle(seen: Seen) -> Answer:
        number, rows = page_of(seen)
        headers = [("Link", f'<{server.url}/items?p=1>; rel="first", </items?p=9>; rel=last')]
        if number < 3:
            headers.append(
                (
                    "Link",
                    f'</items?p=0>; title="back, or; next"; rel="prev", '
                    f'<{server.url}/items?p={number + 1}>; rel="next"; title="Next page"',
                )
            )
        return ok_json(rows, headers=headers)

    with recording(handle) as server:
        options = {"Url": f"{server.url}/items", "Paging": {"Kind": "link"}}
        payload = await fetch("erp_stock", load_endpoint(tmp_path, "erp_stock", options))

    assert server.targets == ["/items", "/items?p=2", "/items?p=3"]
    assert read(payload) == 5


async def test_link_paging_stays_on_the_configured_port(tmp_path: Path) -> None:
    """A Link to the same host on another port is refused like another host."""
    with recording(lambda seen: Answer()) as other:

        def handle(seen: Seen) -> Answer:
            return ok_json(ROWS[:2], headers=[("Link", f'<{other.url}/items?p=2>; rel="next"')])

        with recording(handle) as server:
            options = {"Url": f"{server.url}/items", "Paging": {"Kind": "link"}}
            with pytest.raises(InvalidPayloadError, match='Link header\'s rel="next" leads to'):
                await fetch("erp_stock", load_endpoint(tmp_path, "erp_stock", options))

    assert other.seen == []


# --- cursor --------------------------------------------------------------------------------


def cursor_server(end: Any = None) -> Any:
    """Pages of two rows; the cursor is the next row's index as text, then ``end``."""

    def handle(seen: Seen) -> Answer:
        start = int(seen.query.get("cursor", 0))
        rows = ROWS[start : start + int(seen.query["limit"])]
        after = start + len(rows)
        meta: dict[str, Any] = {"cursor": str(after) if after < len(ROWS) else end}
        if end == "missing" and after >= len(ROWS):
            meta = {}
        return ok_json({"items": rows, "meta": meta})

    return handle


@pytest.mark.parametrize("end", [None, "", "missing"])
async def test_cursor_paging_sends_the_token_back_until_it_ends(tmp_path: Path, end: Any) -> None:
    """Each page's cursor goes back as CursorParameter; null, "" or none ends paging."""
    with recording(cursor_server(end)) as server:
        options = {
            "Url": f"{server.url}/items",
            "RecordsPath": "items",
            "Paging": {
                "Kind": "cursor",
                "CursorPath": "meta.cursor",
                "CursorParameter": "cursor",
                "PageSize": 2,
                "SizeParameter": "limit",
            },
        }
        payload = await fetch("erp_stock", load_endpoint(tmp_path, "erp_stock", options))

    assert server.targets == [
        "/items?limit=2",
        "/items?cursor=2&limit=2",
        "/items?cursor=4&limit=2",
    ]
    assert read(payload) == 5


async def test_a_cursor_that_repeats_fails_the_fetch(tmp_path: Path) -> None:
    """A server that hands out the same cursor again would loop: the fetch fails instead."""

    def handle(seen: Seen) -> Answer:
        return ok_json({"items": ROWS[:2], "meta": {"cursor": "abc"}})

    with recording(handle) as server:
        options = {
            "Url": f"{server.url}/items",
            "RecordsPath": "items",
            "Paging": {"Kind": "cursor", "CursorPath": "meta.cursor"},
        }
        with pytest.raises(InvalidPayloadError, match=r"page 2: the cursor .* \(abc\) was"):
            await fetch("erp_stock", load_endpoint(tmp_path, "erp_stock", options))

    assert server.targets == ["/items", "/items?cursor=abc"]


async def test_a_cursor_in_the_body_of_a_post(tmp_path: Path) -> None:
    """With In: body the cursor and size travel in the JSON body."""

    def handle(seen: Seen) -> Answer:
        request = seen.json()["page"]
        start = int(request.get("after", 0))
        rows = ROWS[start : start + request["size"]]
        after = start + len(rows)
        return ok_json({"items": rows, "next": after if after < len(ROWS) else None})

    with recording(handle) as server:
        options = {
            "Url": f"{server.url}/search",
            "Method": "POST",
            "Body": {"filter": "all"},
            "RecordsPath": "items",
            "Paging": {
                "Kind": "cursor",
                "In": "body",
                "CursorPath": "next",
                "CursorParameter": "page.after",
                "PageSize": 3,
                "SizeParameter": "page.size",
            },
        }
        payload = await fetch("erp_stock", load_endpoint(tmp_path, "erp_stock", options))

    assert [s.json() for s in server.seen] == [
        {"filter": "all", "page": {"size": 3}},
        {"filter": "all", "page": {"after": 3, "size": 3}},
    ]
    assert read(payload) == 5


@pytest.mark.parametrize(
    "paging",
    [
        {"Kind": "next", "NextPath": "links.next", "MaxPages": 3},
        {"Kind": "link", "MaxPages": 3},
        {"Kind": "cursor", "CursorPath": "links.next", "MaxPages": 3},
    ],
    ids=["next", "link", "cursor"],
)
async def test_max_pages_bounds_every_kind(tmp_path: Path, paging: dict[str, Any]) -> None:
    """A source whose links never end fails at MaxPages, whichever kind of paging it uses."""

    def handle(seen: Seen) -> Answer:
        number = len(server.seen)
        return ok_json(
            {"data": ROWS[:1], "links": {"next": f"/items?n={number}"}},
            headers=[("Link", f'</items?n={number}>; rel="next"')],
        )

    with recording(handle) as server:
        options = {"Url": f"{server.url}/items", "RecordsPath": "data", "Paging": paging}
        with pytest.raises(InvalidPayloadError, match=r"more than 3 pages \(MaxPages\)"):
            await fetch("erp_stock", load_endpoint(tmp_path, "erp_stock", options))

    assert len(server.seen) == 3


async def test_a_next_link_that_is_not_text_fails_naming_the_path(tmp_path: Path) -> None:
    """A NextPath holding an object is an invalid payload naming the option."""

    def handle(seen: Seen) -> Answer:
        return ok_json({"data": ROWS[:1], "links": {"next": {"href": "/x"}}})

    with recording(handle) as server:
        options = {
            "Url": f"{server.url}/items",
            "RecordsPath": "data",
            "Paging": {"Kind": "next", "NextPath": "links.next"},
        }
        with pytest.raises(InvalidPayloadError, match=r"page 1: NextPath 'links\.next' holds"):
            await fetch("erp_stock", load_endpoint(tmp_path, "erp_stock", options))
