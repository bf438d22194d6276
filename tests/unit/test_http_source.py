"""HttpSource: one GET with headers and window on the wire, httpx errors translated."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from types import MappingProxyType

import httpx
import pytest

from catalog_refresher.config.settings import EndpointSettings, EndpointType, Secret
from catalog_refresher.domain.specs import SPECS
from catalog_refresher.domain.window import Window
from catalog_refresher.errors import (
    ConfigError,
    InvalidPayloadError,
    SourceConnectionError,
    SourceError,
    SourceStatusError,
    SourceTimeoutError,
)
from catalog_refresher.refresh.validate import validate
from catalog_refresher.sources.base import Payload
from catalog_refresher.sources.demo import DemoSource, DemoWorld
from catalog_refresher.sources.http import HttpSource, build_client, open_source, safe_url
from tests.helpers import json_path

TOKEN = "tok-9f8e7d6c5b4a"
PASSWORD = "pa55-w0rd-xyz"
API_KEY = "key-1234abcd"
URL = "http://erp.example/api/stock"
SECRET_URL = f"http://erp-user:{PASSWORD}@erp.example/api/stock?api_key={API_KEY}"
WINDOW = Window(date_from=date(2025, 11, 29), date_to=date(2026, 11, 29))

Handler = Callable[[httpx.Request], httpx.Response]


def endpoint(
    url: str | None = URL,
    *,
    records_path: str | None = None,
    request_timeout: timedelta = timedelta(seconds=60),
) -> EndpointSettings:
    headers: dict[str, str | Secret] = {
        "Authorization": Secret(f"Bearer {TOKEN}", "env:ERP_TOKEN"),
        "X-Shop": "main",
    }
    return EndpointSettings(
        type=EndpointType.HTTP,
        url=url,
        headers=MappingProxyType(headers),
        records_path=None if records_path is None else json_path(records_path),
        request_timeout=request_timeout,
    )


async def fetch(
    handler: Handler,
    *,
    source_id: str = "erp_stock",
    settings: EndpointSettings | None = None,
    window: Window | None = None,
) -> Payload:
    async with build_client(transport=httpx.MockTransport(handler)) as client:
        source = HttpSource(source_id, settings or endpoint(), client)
        return await source.fetch(window)


def ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, content=b"[]")


async def test_sends_configured_headers_with_secrets_revealed() -> None:
    """The secret header goes on the wire in clear text, with the others and our User-Agent."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return ok(request)

    await fetch(handler)

    (request,) = seen
    assert request.method == "GET"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["X-Shop"] == "main"
    assert request.headers["User-Agent"].startswith("catalog-refresher/")
    assert request.url == httpx.URL(URL)  # a snapshot source sends no window


async def test_history_source_sends_window_as_iso_dates() -> None:
    """A history source adds date_from/date_to as ISO dates and keeps the URL's own query."""
    seen: list[httpx.URL] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return ok(request)

    settings = endpoint("http://sales.example/api/sales?company=1")
    await fetch(handler, source_id="sales_data", settings=settings, window=WINDOW)

    assert dict(seen[0].params) == {
        "company": "1",
        "date_from": "2025-11-29",
        "date_to": "2026-11-29",
    }


async def test_history_source_without_window_is_a_programming_error() -> None:
    """Asking a history source for data without a window is refused before any request."""
    with pytest.raises(ValueError, match="needs a window"):
        await fetch(ok, source_id="sales_data")


async def test_request_timeout_comes_from_the_endpoint() -> None:
    """The endpoint's RequestTimeout bounds every phase of the request."""
    seen: list[dict[str, float]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        return ok(request)

    await fetch(handler, settings=endpoint(request_timeout=timedelta(seconds=2.5)))

    assert seen == [{"connect": 2.5, "read": 2.5, "write": 2.5, "pool": 2.5}]


async def test_returns_the_body_untouched_with_records_path_and_safe_origin() -> None:
    """The body is not decoded, records_path passes through, the origin has no credentials."""
    body = b'{"data": {"items": [{"product_code": "A", "stock": 1}]}} trailing junk'

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"Content-Type": "text/html"})

    payload = await fetch(handler, settings=endpoint(SECRET_URL, records_path="data.items"))

    assert payload.pages == [body]
    assert payload.records_path == json_path("data.items")
    assert payload.origin == URL


@pytest.mark.parametrize(
    ("status", "transient"),
    [(503, True), (500, True), (429, True), (404, False), (401, False), (400, False)],
)
async def test_error_status_becomes_status_error(status: int, transient: bool) -> None:
    """A non-2xx answer is a SourceStatusError, transient only for 429 and 5xx."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=b"oops")

    with pytest.raises(SourceStatusError) as caught:
        await fetch(handler)

    assert caught.value.status_code == status
    assert caught.value.transient is transient


async def test_redirect_is_not_followed() -> None:
    """A redirect fails as a permanent status error instead of being followed."""
    calls: list[httpx.URL] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url)
        return httpx.Response(302, headers={"Location": "http://login.example/"})

    with pytest.raises(SourceStatusError) as caught:
        await fetch(handler)

    assert (caught.value.status_code, caught.value.transient) == (302, False)
    assert len(calls) == 1


async def test_connect_error_becomes_connection_error() -> None:
    """An httpx transport failure surfaces as a transient SourceConnectionError chained to it."""

    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(SourceConnectionError) as caught:
        await fetch(handler)

    assert caught.value.transient
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


@pytest.mark.parametrize("error", [httpx.ReadTimeout, httpx.ConnectTimeout, httpx.PoolTimeout])
async def test_timeout_becomes_timeout_error(error: type[httpx.TimeoutException]) -> None:
    """Every httpx timeout, connect timeout included, surfaces as a SourceTimeoutError."""

    def handler(request: httpx.Request) -> httpx.Response:
        raise error("timed out", request=request)

    with pytest.raises(SourceTimeoutError) as caught:
        await fetch(handler)

    assert caught.value.transient
    assert isinstance(caught.value.__cause__, error)


async def test_unsupported_scheme_is_a_permanent_error() -> None:
    """A URL with a scheme httpx cannot speak fails without being classed as worth retrying."""

    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.UnsupportedProtocol("unsupported protocol 'ftp://'", request=request)

    with pytest.raises(SourceError) as caught:
        await fetch(handler, settings=endpoint("ftp://erp.example/stock.json"))

    assert not caught.value.transient


async def test_broken_content_encoding_is_an_invalid_payload() -> None:
    """A body that cannot be decompressed is an InvalidPayloadError, not a connection problem."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"not gzip at all", headers={"Content-Encoding": "gzip"})

    with pytest.raises(InvalidPayloadError):
        await fetch(handler)


def leak(request: httpx.Request) -> httpx.Response:
    """A failing layer that quotes what it was given, as h11 does with an illegal header."""
    raise httpx.RemoteProtocolError(
        f"bad header {request.headers['Authorization']!r} for {PASSWORD} ({API_KEY})",
        request=request,
    )


def slow(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout(f"timed out on {request.url}", request=request)


def unavailable(request: httpx.Request) -> httpx.Response:
    return httpx.Response(503)


@pytest.mark.parametrize("handler", [leak, slow, unavailable])
async def test_error_messages_never_contain_secrets(handler: Handler) -> None:
    """Whatever fails, the message names the URL but not the header secret, password or query."""
    with pytest.raises(SourceError) as caught:
        await fetch(handler, settings=endpoint(SECRET_URL))

    message = str(caught.value)
    assert "erp.example/api/stock" in message
    for secret in (TOKEN, PASSWORD, API_KEY, "erp-user"):
        assert secret not in message


def test_safe_url_strips_userinfo_query_and_fragment() -> None:
    """safe_url keeps scheme, host, port and path only."""
    assert safe_url("https://u:p@erp.example:8443/api/stock?token=x#top") == (
        "https://erp.example:8443/api/stock"
    )


def test_missing_url_is_a_config_error_naming_the_key() -> None:
    """An http endpoint without a URL is refused with the configuration key in the message."""
    client = httpx.AsyncClient()
    with pytest.raises(ConfigError, match="Sources:ErpStock:Url"):
        HttpSource("erp_stock", endpoint(None), client)


async def test_open_source_picks_the_implementation_by_type() -> None:
    """open_source builds an HttpSource for http and a DemoSource on the shared world for demo."""
    world = DemoWorld(products=20, clock_today=lambda: date(2026, 11, 29))
    demo = EndpointSettings(type=EndpointType.DEMO)
    async with build_client() as client:
        http_source = open_source("erp_stock", endpoint(), client)
        demo_source = open_source("lots", demo, client, world=world)
        with pytest.raises(ValueError, match="DemoWorld"):
            open_source("lots", demo, client)
        await http_source.aclose()
        assert not client.is_closed  # the shared client belongs to the caller

    assert isinstance(http_source, HttpSource)
    assert isinstance(demo_source, DemoSource)
    assert demo_source.source_id == "lots"


async def test_spooled_body_lands_in_a_file_that_validates(tmp_path: Path) -> None:
    """With a spool folder the body is streamed to a file; discard() removes it."""
    body = b'[{"product_code": "A1", "stock": 3}]'
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=body))
    async with httpx.AsyncClient(transport=transport) as client:
        endpoint = EndpointSettings(type=EndpointType.HTTP, url="http://erp.test/stock")
        source = HttpSource("erp_stock", endpoint, client, spool=tmp_path)
        payload = await source.fetch(None)
    (page,) = payload.pages
    assert isinstance(page, Path)
    assert page.read_bytes() == body
    assert stat.S_IMODE(page.stat().st_mode) == 0o600  # a payload is the company's data
    assert list(validate(SPECS["erp_stock"], payload, None).rows) == ["A1"]
    payload.discard()
    assert os.listdir(tmp_path) == []
