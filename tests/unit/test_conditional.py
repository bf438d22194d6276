"""Conditional requests and the incremental cursor on a real local HTTP server: the
validators sent, a 304 and an identical body as ``not_modified``, the cursor parameter."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import ClassVar

import httpx

from catalog_refresher.config.settings import EndpointSettings, EndpointType
from catalog_refresher.sources.base import FetchState, Payload
from catalog_refresher.sources.http import HttpSource
from tests.local_http import serving

BODY = json.dumps([{"product_code": "P-1", "stock": 1, "changed_at": "2026-01-01T00:00:00Z"}])


class _Erp(BaseHTTPRequestHandler):
    """Answers ``BODY`` with an ETag, or 304 when asked with that ETag; records requests."""

    seen: ClassVar[list[tuple[str, str | None, str | None]]] = []

    def do_GET(self) -> None:
        match = self.headers.get("If-None-Match")
        since = self.headers.get("If-Modified-Since")
        self.seen.append((self.path, match, since))
        if match == '"v1"':
            self.send_response(304)
            self.send_header("ETag", '"v1"')
            self.end_headers()
            return
        body = BODY.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("ETag", '"v1"')
        self.send_header("Last-Modified", "Thu, 01 Jan 2026 00:00:00 GMT")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


async def _fetch(url: str, state: FetchState | None) -> tuple[HttpSource, Payload]:
    async with httpx.AsyncClient() as client:
        source = HttpSource("erp_stock", EndpointSettings(type=EndpointType.HTTP, url=url), client)
        return source, await source.fetch(None, state)


async def test_first_fetch_keeps_validators_and_a_hash_then_a_304_is_not_modified() -> None:
    """A plain fetch carries the answer's ETag, Last-Modified and a body hash; sent back,
    the ETag alone makes the request conditional and the 304 a ``not_modified`` payload
    without pages."""
    _Erp.seen.clear()
    with serving(_Erp) as base:
        _, first = await _fetch(f"{base}/erp", None)
        assert first.etag == '"v1"'
        assert first.last_modified
        assert first.body_hash
        assert not first.not_modified
        state = FetchState(etag=first.etag, last_modified=first.last_modified)
        _, second = await _fetch(f"{base}/erp", state)
    assert second.not_modified
    assert second.pages == []
    assert _Erp.seen[0][1:] == (None, None)
    assert _Erp.seen[1][1:] == ('"v1"', None)  # an ETag goes alone: no date beside it


async def test_a_body_identical_to_the_last_good_one_is_not_modified() -> None:
    """Without validators the server answers 200; a body whose hash equals the stored one
    comes back ``not_modified`` with no pages, and a different stored hash reads it."""
    _Erp.seen.clear()
    with serving(_Erp) as base:
        _, first = await _fetch(f"{base}/erp", None)
        same = FetchState(body_hash=first.body_hash)
        _, again = await _fetch(f"{base}/erp", same)
        _, other = await _fetch(f"{base}/erp", FetchState(body_hash="0" * 32))
    assert again.not_modified
    assert again.pages == []
    assert not other.not_modified
    assert len(other.pages) == 1


async def test_the_cursor_goes_in_its_query_parameter() -> None:
    """An incremental fetch adds the cursor as ``CursorParameter`` after the URL's query."""
    _Erp.seen.clear()
    with serving(_Erp) as base:
        cursor = FetchState(cursor="2026-01-01T00:00:00Z", cursor_parameter="changed_since")
        await _fetch(f"{base}/erp?x=1", cursor)
    assert _Erp.seen[0][0] == "/erp?x=1&changed_since=2026-01-01T00:00:00Z"
