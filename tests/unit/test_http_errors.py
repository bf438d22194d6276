"""Errors an operator can act on, from a real local server: an HTML page where JSON or
CSV was expected, and a system's error envelope, on 2xx and on error statuses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from catalog_refresher.errors import InvalidPayloadError, SourceStatusError
from tests.endpoints import fetch, load_endpoint
from tests.http_recorder import Answer, ok_json, recording

TOKEN = "flexi-token-0a9b8c7d"
LOGIN = b"<!DOCTYPE html>\n<html><head><title>Login</title></head><body>" + b"x" * 2000 + b"</body>"
FLEXI_ERRORS = {
    "ErrorWhen": {"Path": "winstrom.success", "Equals": "false"},
    "ErrorMessagePath": "winstrom.message",
}


def flexi_error(message: str) -> bytes:
    return json.dumps(
        {"winstrom": {"@version": "1.0", "success": "false", "message": message}},
        ensure_ascii=False,
    ).encode()


def options(url: str, **more: Any) -> dict[str, Any]:
    return {"Url": f"{url}/c/firma/skladova-karta.json", **more}


@pytest.mark.parametrize("spooled", [False, True], ids=["memory", "spool"])
@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", "application/json"])
async def test_an_html_page_on_200_says_it_is_probably_a_login_page(
    tmp_path: Path, spooled: bool, content_type: str
) -> None:
    """An HTML body, by its Content-Type or by how it starts, is named with its size."""
    spool = tmp_path / "spool"
    spool.mkdir()
    with recording(lambda seen: Answer(body=LOGIN, content_type=content_type)) as server:
        endpoint = load_endpoint(tmp_path, "erp_stock", options(server.url))
        with pytest.raises(InvalidPayloadError) as caught:
            await fetch("erp_stock", endpoint, spool=spool if spooled else None)

    where = f"{server.url}/c/firma/skladova-karta.json"
    assert str(caught.value) == f"got text/html, 2.1 kB from {where}: a login page?"
    assert list(spool.iterdir()) == []


async def test_an_html_page_on_a_paged_source_names_the_page(tmp_path: Path) -> None:
    """The page and its parameters are named, as for any failing page."""
    with recording(lambda seen: Answer(body=b"<html>" + b"." * 100, content_type=None)) as server:
        more = {"Paging": {"Kind": "offset", "PageSize": 10}}
        endpoint = load_endpoint(tmp_path, "erp_stock", options(server.url, **more))
        with pytest.raises(InvalidPayloadError, match=r"got text/html, 106 B from .* \(page 1"):
            await fetch("erp_stock", endpoint)


async def test_json_labelled_text_html_is_still_read(tmp_path: Path) -> None:
    """A JSON body served as text/html is not taken for a page: only a tag makes one."""
    body = b'  [{"product_code": "P", "stock": 1}]'
    with recording(lambda seen: Answer(body=body, content_type="text/html")) as server:
        endpoint = load_endpoint(tmp_path, "erp_stock", options(server.url))
        payload = await fetch("erp_stock", endpoint)
    assert len(payload.pages) == 1


async def test_an_html_page_on_an_error_status_is_its_detail(tmp_path: Path) -> None:
    """A 401 with a login page says both, each once."""
    with recording(lambda seen: Answer(status=401, body=LOGIN, content_type="text/html")) as server:
        endpoint = load_endpoint(tmp_path, "erp_stock", options(server.url))
        with pytest.raises(SourceStatusError) as caught:
            await fetch("erp_stock", endpoint)

    where = f"{server.url}/c/firma/skladova-karta.json"
    assert str(caught.value) == f"HTTP 401 from {where}: got text/html, 2.1 kB: a login page?"
    assert not caught.value.transient


async def test_a_flexi_error_envelope_on_200_fails_the_run_with_its_message(
    tmp_path: Path,
) -> None:
    """success "false" with a message fails the fetch with the system's own words."""
    body = flexi_error("Nepodařilo se načíst záznamy: neznámá evidence.")
    with recording(lambda seen: Answer(body=body)) as server:
        endpoint = load_endpoint(tmp_path, "erp_stock", options(server.url, **FLEXI_ERRORS))
        with pytest.raises(InvalidPayloadError) as caught:
            await fetch("erp_stock", endpoint)

    assert str(caught.value).endswith(
        "skladova-karta.json answered with an error:"
        " Nepodařilo se načíst záznamy: neznámá evidence."
    )


async def test_a_flexi_error_on_400_is_read_from_its_body_and_scrubbed(tmp_path: Path) -> None:
    """HTTP 400's envelope gives the message; a header value echoed in it is scrubbed."""
    body = flexi_error(f"Neplatný token {TOKEN} pro uživatele.")
    with recording(lambda seen: Answer(status=400, body=body)) as server:
        more = {**FLEXI_ERRORS, "Headers": {"Authorization": "env:TOKEN"}}
        endpoint = load_endpoint(tmp_path, "erp_stock", options(server.url, **more), TOKEN=TOKEN)
        with pytest.raises(SourceStatusError) as caught:
            await fetch("erp_stock", endpoint)

    message = str(caught.value)
    assert message == (
        f"HTTP 400 from {server.url}/c/firma/skladova-karta.json: Neplatný token *** pro uživatele."
    )


async def test_a_page_of_data_is_not_an_error(tmp_path: Path) -> None:
    """success "true", or no success flag at all, is data."""
    pages = [
        {"winstrom": {"success": "true", "skladova-karta": []}},
        {"winstrom": {"skladova-karta": []}},
    ]
    with recording(lambda seen: ok_json(pages.pop(0))) as server:
        more = {**FLEXI_ERRORS, "RecordsPath": "winstrom.skladova-karta"}
        endpoint = load_endpoint(tmp_path, "erp_stock", options(server.url, **more))
        await fetch("erp_stock", endpoint)
        await fetch("erp_stock", endpoint)


@pytest.mark.parametrize(
    ("errors", "failed"),
    [(None, False), ([], False), ([{"errorCode": "x", "message": "Neznámý sklad."}], True)],
)
async def test_an_error_message_path_alone_fails_only_when_it_holds_a_message(
    tmp_path: Path, errors: Any, failed: bool
) -> None:
    """Shoptet's errors[0].message: an error when present, data when null or empty."""
    body = {"data": {"supplies": []}, "errors": errors}
    with recording(lambda seen: ok_json(body)) as server:
        more = {"RecordsPath": "data.supplies", "ErrorMessagePath": "errors[0].message"}
        endpoint = load_endpoint(tmp_path, "eshop_stock", options(server.url, **more))
        if failed:
            with pytest.raises(InvalidPayloadError, match="answered with an error: Neznámý sklad"):
                await fetch("eshop_stock", endpoint)
        else:
            await fetch("eshop_stock", endpoint)


async def test_a_long_message_is_clipped_to_one_line(tmp_path: Path) -> None:
    """A system's message is put on one line and clipped at 300 characters."""
    body = flexi_error("Chyba\n" + "x" * 1000)
    with recording(lambda seen: Answer(status=500, body=body)) as server:
        endpoint = load_endpoint(tmp_path, "erp_stock", options(server.url, **FLEXI_ERRORS))
        with pytest.raises(SourceStatusError) as caught:
            await fetch("erp_stock", endpoint)

    detail = str(caught.value).partition(".json: ")[2]
    assert detail.startswith("Chyba xxx")
    assert (len(detail), detail[-1]) == (300, "…")
    assert caught.value.transient


async def test_not_equals_marks_an_error_when_the_flag_is_anything_else(tmp_path: Path) -> None:
    """ErrorWhen NotEquals "ok" fails a page whose status is present and not ok."""
    with recording(lambda seen: ok_json({"status": "denied", "items": []})) as server:
        more = {"RecordsPath": "items", "ErrorWhen": {"Path": "status", "NotEquals": "ok"}}
        endpoint = load_endpoint(tmp_path, "erp_stock", options(server.url, **more))
        with pytest.raises(InvalidPayloadError, match=r"the system reported an error \(status"):
            await fetch("erp_stock", endpoint)
