"""Reading a source over HTTP (contract section 4).

``HttpSource`` sends a GET to the endpoint's URL and hands back the raw body;
with ``Paging`` one GET per page, each body a page of the payload
(``sources/paging.py`` decides what to ask for next). It never decodes the
records: ``sources/decoding.py`` does that, in the pipeline, so every source
type gets the same rules and the same error messages.

httpx is met here and nowhere else, so its errors are translated here::

    httpx.TimeoutException            -> SourceTimeoutError     (transient)
    httpx.UnsupportedProtocol         -> SourceError            (permanent)
    any other httpx.TransportError    -> SourceConnectionError  (transient)
    httpx.DecodingError               -> InvalidPayloadError    (permanent)
    a response that is not 2xx        -> SourceStatusError      (transient for 429 and 5xx)

Secrets (header values, the password in the URL) exist in clear text only in
the request that goes on the wire: messages and ``Payload.origin`` carry the URL
without userinfo and query, and foreign error text is scrubbed of every header
value before it is quoted.
"""

from __future__ import annotations

import os
import tempfile
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote

import httpx

from catalog_refresher.config.settings import EndpointSettings, EndpointType, reveal
from catalog_refresher.domain.specs import SPECS
from catalog_refresher.domain.window import Window
from catalog_refresher.errors import (
    ConfigError,
    InvalidPayloadError,
    SourceConnectionError,
    SourceError,
    SourceStatusError,
    SourceTimeoutError,
    UnknownSourceError,
)
from catalog_refresher.sources.base import Payload, Source
from catalog_refresher.sources.decoding import read_page
from catalog_refresher.sources.demo import DemoSource, DemoWorld
from catalog_refresher.sources.paging import pager_for

__all__ = ["USER_AGENT", "HttpSource", "build_client", "open_source", "safe_url"]


def _version() -> str:
    try:
        return metadata.version("catalog-refresher")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


USER_AGENT = f"catalog-refresher/{_version()}"

# Values shorter than this are not credentials, and scrubbing them would mangle
# messages ("1" would turn "[Errno 111]" into "[Errno ***]").
_MIN_SCRUB_LENGTH = 4


def safe_url(url: httpx.URL | str) -> str:
    """``url`` without userinfo, query and fragment: fit for logs and messages.

    The query goes too because systems such as Shoptet or ABRA Flexi accept API
    tokens as query parameters.
    """
    return str(httpx.URL(url).copy_with(userinfo=b"", query=None, fragment=None))


def build_client(*, transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """The one HTTP client all HTTP sources share; the caller closes it.

    ``transport`` is for tests (``httpx.MockTransport``); production passes nothing.
    """
    return httpx.AsyncClient(
        # A redirect usually means a login page or a moved API: fail loudly as a
        # status error instead of parsing HTML, and never carry our
        # Authorization header to another host.
        follow_redirects=False,
        headers={"User-Agent": USER_AGENT},
        # Ten sources with MaxConcurrentRefreshes around 3 need few connections;
        # the cap protects the external systems if many endpoints share a host.
        limits=httpx.Limits(max_connections=20, max_keepalive_connections=10, keepalive_expiry=30),
        # Each request passes its endpoint's own timeout; this is only the fallback.
        timeout=httpx.Timeout(60.0, connect=10.0),
        transport=transport,
    )


class HttpSource:
    """One external system read with a GET on ``endpoint.url``.

    History sources (``SPECS[source_id].is_history``) must be given a window and
    send it as ``date_from``/``date_to`` ISO dates, merged into any query the URL
    already has, on every page. ``endpoint.headers`` are sent with secrets
    revealed. Each body is returned untouched as one page of the payload, with
    the endpoint's ``RecordsPath``, ``Fields`` and ``Csv`` telling validation how
    to read it.

    The client is shared and owned by the caller, so ``aclose`` leaves it open.
    """

    def __init__(
        self,
        source_id: str,
        endpoint: EndpointSettings,
        client: httpx.AsyncClient,
        *,
        spool: Path | None = None,
    ) -> None:
        spec = SPECS.get(source_id)
        if spec is None:
            raise UnknownSourceError(source_id)
        key = f"Sources:{spec.config_key}:Url"
        if not endpoint.url:
            raise ConfigError(key, "is required for an http source")
        try:
            url = httpx.URL(endpoint.url)
        except httpx.InvalidURL:
            # httpx quotes the offending part of the URL, which may be the password.
            raise ConfigError(key, "is not a valid URL") from None
        self._source_id = source_id
        self._is_history = spec.is_history
        self._endpoint = endpoint
        self._client = client
        self._url = url
        self._origin = safe_url(url)
        self._timeout_s = endpoint.request_timeout.total_seconds()
        self._spool = spool

    @property
    def source_id(self) -> str:
        return self._source_id

    async def fetch(self, window: Window | None) -> Payload:
        """GET the records, every page of them; raises a ``SourceError`` subclass on any failure.

        A page that fails fails the fetch, with the error it would have alone
        (so a 503 on page 7 is as transient as on page 1): the runner retries
        the whole fetch, because pages read at different times do not make one
        snapshot.
        """
        url = self._url
        if self._is_history:
            if window is None:
                raise ValueError(f"{self._source_id} is a history source and needs a window")
            url = url.copy_merge_params(
                {"date_from": window.date_from.isoformat(), "date_to": window.date_to.isoformat()}
            )
        headers = {name: reveal(value) for name, value in self._endpoint.headers.items()}
        paging = self._endpoint.paging
        pages: list[bytes | Path] = []
        if paging is None:
            pages.append(await self._get_page(url, headers, self._origin))
            return self._payload(pages)
        pager = pager_for(paging, self._endpoint.records_path)
        try:
            for number in range(1, paging.max_pages + 1):
                params = pager.params()
                shown = ", ".join(f"{name}={value}" for name, value in params.items())
                where = f"{self._origin} (page {number}: {shown})"
                page = await self._get_page(url.copy_merge_params(params), headers, where)
                pages.append(page)
                if not pager.advance(read_page(page), number):
                    return self._payload(pages)
            raise InvalidPayloadError(
                f"{self._origin}: more than {paging.max_pages} pages (MaxPages);"
                " the source does not end, or MaxPages is too low for its size"
            )
        except BaseException:
            self._payload(pages).discard()  # no spooled page of a failed fetch stays behind
            raise

    def _payload(self, pages: list[bytes | Path]) -> Payload:
        endpoint = self._endpoint
        return Payload(
            pages=pages,
            records_path=endpoint.records_path,
            origin=self._origin,
            fields=endpoint.fields,
            csv=endpoint.csv,
            filters=endpoint.filters,
        )

    async def _get_page(self, url: httpx.URL, headers: dict[str, str], where: str) -> bytes | Path:
        """One GET, httpx's errors translated; ``where`` names the URL (and page) in messages."""
        try:
            return await self._get(url, headers, where)
        except httpx.TimeoutException as exc:
            raise SourceTimeoutError(
                f"no answer from {where} within {self._timeout_s:g} s ({self._describe(exc)})"
            ) from exc
        except httpx.UnsupportedProtocol as exc:
            # A wrong scheme will not fix itself; retrying would only delay the error.
            raise SourceError(f"cannot request {where}: {self._describe(exc)}") from exc
        except httpx.TransportError as exc:
            raise SourceConnectionError(f"cannot reach {where}: {self._describe(exc)}") from exc
        except httpx.DecodingError as exc:
            raise InvalidPayloadError(
                f"undecodable body from {where}: {self._describe(exc)}"
            ) from exc
        except httpx.HTTPError as exc:
            raise SourceError(f"request to {where} failed: {self._describe(exc)}") from exc

    async def _get(self, url: httpx.URL, headers: dict[str, str], where: str) -> bytes | Path:
        """The body in memory, or streamed to a file in the spool folder if there is one.

        Spooling never holds the whole body in this process: no large join, and a
        worker process reads the file instead of receiving the bytes pickled.
        """
        timeout = httpx.Timeout(self._timeout_s)
        async with self._client.stream("GET", url, headers=headers, timeout=timeout) as response:
            if not response.is_success:
                raise SourceStatusError(response.status_code, where)
            if self._spool is None:
                return await response.aread()
            suffix = ".json" if self._endpoint.csv is None else ".csv"
            fd, name = tempfile.mkstemp(
                prefix=f"{self._source_id}-", suffix=suffix, dir=self._spool
            )
            try:
                with os.fdopen(fd, "wb") as file:
                    async for chunk in response.aiter_bytes():
                        file.write(chunk)
            except BaseException:
                os.unlink(name)
                raise
            return Path(name)

    async def aclose(self) -> None:
        """Nothing to release: the shared client is closed by whoever built it."""

    def _describe(self, exc: Exception) -> str:
        """The foreign error's class and text, with every credential scrubbed.

        Some layers quote what they choke on (h11 quotes an illegal header value,
        others the URL), so the text is scrubbed of each header value, the URL's
        userinfo and its query values, which may hold API keys.
        """
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        secrets = [reveal(value) for value in self._endpoint.headers.values()]
        raw_userinfo = self._url.userinfo.decode("ascii")
        secrets += [raw_userinfo, unquote(raw_userinfo), self._url.password, self._url.username]
        secrets += [value for _, value in self._url.params.multi_items()]
        raw_query = self._url.query.decode("ascii")  # values as sent, percent-encoded
        secrets += [raw_query, *(part.partition("=")[2] for part in raw_query.split("&"))]
        for secret in sorted(secrets, key=len, reverse=True):
            if len(secret) >= _MIN_SCRUB_LENGTH:
                text = text.replace(secret, "***")
        return text


def open_source(
    source_id: str,
    endpoint: EndpointSettings,
    client: httpx.AsyncClient,
    *,
    world: DemoWorld | None = None,
    spool: Path | None = None,
) -> Source:
    """The source for ``endpoint``: ``HttpSource`` or, for ``"Type": "demo"``, ``DemoSource``.

    Demo sources need the one ``DemoWorld`` the caller shares among all ten, so
    that they describe the same products.
    """
    if endpoint.type is EndpointType.DEMO:
        if world is None:
            raise ValueError("a demo endpoint needs the shared DemoWorld")
        return DemoSource(source_id, world)
    return HttpSource(source_id, endpoint, client, spool=spool)
