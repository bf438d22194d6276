"""Reading a source over HTTP (contract section 4).

``HttpSource`` requests the endpoint's URL and hands back the raw body; with
``Paging`` one request per page, each body a page of the payload
(``sources/paging.py`` decides what to ask for next, ``sources/requests.py``
builds each request from the endpoint's templates). It never decodes the
records: ``sources/decoding.py`` does that, in the pipeline, so every source
type gets the same rules and the same error messages.

Requests are sent here and nowhere else, so httpx's errors are translated here::

    httpx.TimeoutException            -> SourceTimeoutError     (transient)
    RequestTimeout passed (the whole request, on the clock) -> SourceTimeoutError
    httpx.UnsupportedProtocol         -> SourceError            (permanent)
    any other httpx.TransportError    -> SourceConnectionError  (transient)
    httpx.DecodingError               -> InvalidPayloadError    (permanent)
    a response that is not 2xx        -> SourceStatusError      (transient for 429 and 5xx;
                                         a 429's or 503's Retry-After rides on it)
    an HTML page, an error envelope   -> InvalidPayloadError    (on a 2xx; on an error status
                                         they are the SourceStatusError's detail)

Secrets (header values, the password in the URL, query values, the proxy's
credentials) exist in clear text only in the request that goes on the wire:
messages and ``Payload.origin`` carry the URL without userinfo and query, and
foreign error text and a system's message are scrubbed of every secret before
they are quoted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import ssl
import tempfile
from dataclasses import dataclass
from datetime import UTC, timedelta
from pathlib import Path
from urllib.parse import unquote

import httpx

from catalog_refresher import progress
from catalog_refresher.clock import Clock, SystemClock, timeout
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
from catalog_refresher.sources.base import FetchState, Payload, Source
from catalog_refresher.sources.chunks import (
    Chunks,
    conditional_headers,
    counted,
    hashed,
    strong_last_modified,
)
from catalog_refresher.sources.decoding import read_page
from catalog_refresher.sources.demo import DemoSource, DemoWorld
from catalog_refresher.sources.files import FileSource
from catalog_refresher.sources.http_client import USER_AGENT, RateLimiter, build_client
from catalog_refresher.sources.paging import PageRead, pager_for
from catalog_refresher.sources.requests import (
    Outgoing,
    PageAsk,
    RequestBuilder,
    safe_url,
    with_parameters,
)
from catalog_refresher.sources.responses import (
    ENVELOPE_LIMIT,
    HEAD,
    envelope_message,
    html_problem,
    looks_like_html,
    retry_after,
)
from catalog_refresher.sources.sql import SqlSource

__all__ = ["USER_AGENT", "HttpSource", "build_client", "open_source", "safe_url"]

log = logging.getLogger("catalog_refresher.sources")

# Values shorter than this are not credentials, and scrubbing them would mangle
# messages ("1" would turn "[Errno 111]" into "[Errno ***]").
_MIN_SCRUB_LENGTH = 4
#: Statuses whose Retry-After is honoured.
_RETRY_AFTER_STATUSES = frozenset({429, 503})
_LOGIN = "a login page?"


@dataclass(frozen=True, slots=True)
class _Answer:
    content: bytes | Path | None
    """``None`` for a 304 Not Modified."""
    headers: httpx.Headers


class HttpSource:
    """One external system read with requests to ``endpoint.url``.

    History sources (``SPECS[source_id].is_history``) must be given a window; its
    dates fill the endpoint's placeholders and, unless ``WindowParameters`` is false,
    go as ``date_from``/``date_to`` ISO dates after the URL's own query, on every
    page. ``endpoint.headers`` are sent with secrets revealed. Each body is
    returned untouched as one page of the payload, with the endpoint's
    ``RecordsPath``, ``Fields`` and ``Csv`` telling validation how to read it.

    The client is shared and owned by the caller, so ``aclose`` leaves it open.
    ``clock`` spaces requests under ``MaxRequestsPerSecond`` and bounds each whole
    request by ``RequestTimeout``.
    """

    def __init__(
        self,
        source_id: str,
        endpoint: EndpointSettings,
        client: httpx.AsyncClient,
        *,
        spool: Path | None = None,
        clock: Clock | None = None,
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
        request = endpoint.request
        self._source_id = source_id
        self._is_history = spec.is_history
        self._endpoint = endpoint
        self._client = client
        self._url = url
        self._origin = safe_url(url)
        self._timeout_s = endpoint.request_timeout.total_seconds()
        self._timeout = httpx.Timeout(
            self._timeout_s,
            connect=_seconds(request.connect_timeout, self._timeout_s),
            read=_seconds(request.read_timeout, self._timeout_s),
        )
        self._spool = spool
        self._clock = clock or SystemClock()
        # What turns these bytes into records: an identical body read otherwise is not the same.
        self._read_instructions = hashlib.blake2b(
            repr((endpoint.records_path, endpoint.fields, endpoint.csv, endpoint.filters)).encode()
        ).digest()
        self._builder = RequestBuilder(endpoint, endpoint.url, is_history=spec.is_history)
        self._headers = {name: reveal(value) for name, value in endpoint.headers.items()}
        has_body = request.body is not None or self._builder.sends_body
        if has_body and not any(name.lower() == "content-type" for name in self._headers):
            self._headers["Content-Type"] = request.content_type
        rate = request.max_requests_per_second
        self._limiter = None if rate is None else RateLimiter(rate, self._clock)
        self._envelope = request.error_when is not None or request.error_message_path is not None
        if not request.tls.verify:
            log.warning(
                "%s: TLS verification is off for %s: its server's certificate is not checked",
                source_id,
                self._origin,
                extra={"source": source_id, "action": "tls_unverified"},
            )

    @property
    def source_id(self) -> str:
        return self._source_id

    async def fetch(self, window: Window | None, state: FetchState | None = None) -> Payload:
        """Request the records, every page of them; raises a ``SourceError`` subclass on any
        failure.

        A page that fails fails the fetch, with the error it would have alone
        (so a 503 on page 7 is as transient as on page 1): the runner retries
        the whole fetch, because pages read at different times do not make one
        snapshot.

        With ``state``: its cursor goes in the ``Incremental`` cursor parameter on every
        page (and in ``{cursor}`` of the templates); its validators make the first request
        conditional (``If-None-Match``, else ``If-Modified-Since``: ``conditional_headers``;
        never with ``"Conditional": false``), and a 304 answers a payload ``not_modified``
        with no pages. A ``Last-Modified`` is kept for the next fetch only when it is more
        than a second older than the answer's ``Date`` (``strong_last_modified``). Later
        pages are never conditional: a page's validator says nothing of the collection,
        and the first page's 304 is taken to speak for all of it. A hash of every page's
        bytes is computed as they are read; equal to ``state.body_hash``, the payload is
        ``not_modified`` too (its pages dropped).
        """
        if self._is_history and window is None:
            raise ValueError(f"{self._source_id} is a history source and needs a window")
        state = state or FetchState()
        # The run's date: a history window ends on it; a snapshot reads it off the clock.
        today = window.date_to if window is not None else self._clock.now().astimezone(UTC).date()
        started = self._builder.start(
            window if self._is_history else None, today, cursor=state.cursor
        )
        paging = self._endpoint.paging
        # SHA-256, not BLAKE2: with the CPU's SHA extensions OpenSSL hashes 170 MB in
        # 0.15 s here, BLAKE2b in 0.28 s, on the event loop of every fetch.
        hasher = hashlib.sha256(self._read_instructions)
        conditional = conditional_headers(state) if self._endpoint.conditional else None
        pages: list[bytes | Path] = []
        if paging is None:
            outgoing = self._with_cursor(self._builder.request(started, PageAsk()), state)
            answer = await self._get_page(outgoing, self._origin, conditional, hasher)
            if answer.content is None:
                return self._not_modified(answer.headers, state)
            pages.append(answer.content)
            return self._finished(pages, hasher, answer.headers, state)
        pager = pager_for(paging, self._endpoint.records_path, self._url)
        try:
            first: httpx.Headers | None = None
            for number in range(1, paging.max_pages + 1):
                ask = pager.ask()
                outgoing = self._with_cursor(self._builder.request(started, ask), state)
                where = f"{self._origin} (page {number}: {ask.shown})"
                answer = await self._get_page(outgoing, where, conditional, hasher)
                if answer.content is None:
                    return self._not_modified(answer.headers, state)
                conditional = None
                first = first or answer.headers
                pages.append(answer.content)
                read = PageRead(
                    body=read_page(answer.content),
                    url=str(outgoing.url),
                    links=answer.headers.get_list("link"),
                )
                if not pager.advance(read, number):
                    return self._finished(pages, hasher, first, state)
            raise InvalidPayloadError(
                f"{self._origin}: more than {paging.max_pages} pages (MaxPages);"
                " the source does not end, or MaxPages is too low for its size"
            )
        except BaseException:
            self._payload(pages).discard()  # no spooled page of a failed fetch stays behind
            raise

    def _with_cursor(self, outgoing: Outgoing, state: FetchState) -> Outgoing:
        if state.cursor is None or state.cursor_parameter is None:
            return outgoing
        url = with_parameters(str(outgoing.url), [(state.cursor_parameter, state.cursor)])
        return Outgoing(method=outgoing.method, url=httpx.URL(url), content=outgoing.content)

    def _not_modified(self, headers: httpx.Headers, state: FetchState) -> Payload:
        return dataclasses.replace(
            self._payload([]),
            not_modified=True,
            etag=headers.get("etag", state.etag),
            last_modified=(
                strong_last_modified(headers) if "last-modified" in headers else state.last_modified
            ),
            body_hash=state.body_hash,
        )

    def _finished(
        self,
        pages: list[bytes | Path],
        hasher: hashlib._Hash,
        headers: httpx.Headers,
        state: FetchState,
    ) -> Payload:
        """The payload of a whole read, or ``not_modified`` if its bytes are the last good's."""
        body_hash = hasher.hexdigest()
        if state.body_hash is not None and body_hash == state.body_hash:
            self._payload(pages).discard()
            return self._not_modified(headers, state)
        return dataclasses.replace(
            self._payload(pages),
            etag=headers.get("etag"),
            last_modified=strong_last_modified(headers),
            body_hash=body_hash,
        )

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

    async def _get_page(
        self,
        outgoing: Outgoing,
        where: str,
        conditional: dict[str, str] | None = None,
        hasher: hashlib._Hash | None = None,
    ) -> _Answer:
        """One request, httpx's errors translated; ``where`` names the URL (and page).

        ``conditional``: headers that make it conditional (a 304 is an answer without
        content); ``hasher`` is fed the body's bytes as they arrive."""
        if self._limiter is not None:
            await self._limiter.wait()
        try:
            async with timeout(self._clock, self._timeout_s):
                answer = await self._get(outgoing, where, conditional, hasher)
        except TimeoutError as exc:
            raise SourceTimeoutError(
                f"no whole answer from {where} within {self._timeout_s:g} s (RequestTimeout)"
            ) from exc
        except httpx.TimeoutException as exc:
            raise SourceTimeoutError(
                f"no answer from {where} within {self._timeout_s:g} s ({self._describe(exc)})"
            ) from exc
        except httpx.UnsupportedProtocol as exc:
            # A wrong scheme will not fix itself; retrying would only delay the error.
            raise SourceError(f"cannot request {where}: {self._describe(exc)}") from exc
        except httpx.TransportError as exc:
            raise SourceConnectionError(f"cannot reach {where}: {self._describe(exc)}") from exc
        except ssl.SSLError as exc:
            # httpx maps a TLS failure of the handshake, not one that comes with the first
            # read: TLS 1.3 servers refuse a missing client certificate only then.
            raise SourceConnectionError(f"TLS with {where} failed: {self._describe(exc)}") from exc
        except httpx.DecodingError as exc:
            raise InvalidPayloadError(
                f"undecodable body from {where}: {self._describe(exc)}"
            ) from exc
        except httpx.HTTPError as exc:
            raise SourceError(f"request to {where} failed: {self._describe(exc)}") from exc
        if self._envelope and answer.content is not None:
            self._check_envelope(answer.content, where)
        return answer

    async def _get(
        self,
        outgoing: Outgoing,
        where: str,
        conditional: dict[str, str] | None,
        hasher: hashlib._Hash | None,
    ) -> _Answer:
        """The body in memory, or streamed to a file in the spool folder if there is one.

        Spooling never holds the whole body in this process: no large join, and a
        worker process reads the file instead of receiving the bytes pickled.
        """
        async with self._client.stream(
            outgoing.method,
            outgoing.url,
            content=outgoing.content,
            headers=self._headers if not conditional else {**self._headers, **conditional},
            timeout=self._timeout,
        ) as response:
            if response.status_code == httpx.codes.NOT_MODIFIED and conditional:
                return _Answer(None, response.headers)
            if not response.is_success:
                raise await self._status_error(response, where)
            chunks = Chunks(response.aiter_bytes())
            head = await chunks.head(HEAD)
            if looks_like_html(response.headers.get("content-type"), head):
                size, more = await chunks.drain(ENVELOPE_LIMIT)
                raise InvalidPayloadError(f"{html_problem(size, more=more)} from {where}: {_LOGIN}")
            if hasher is not None:
                chunks = Chunks(hashed(aiter(chunks), hasher))
            if progress.active():
                chunks = Chunks(counted(aiter(chunks)))
            if self._spool is None:
                body = b"".join([c async for c in chunks])
                progress.advance(progress.PAGES)
                return _Answer(body, response.headers)
            suffix = ".json" if self._endpoint.csv is None else ".csv"
            fd, name = tempfile.mkstemp(
                prefix=f"{self._source_id}-", suffix=suffix, dir=self._spool
            )
            try:
                with os.fdopen(fd, "wb") as file:
                    async for chunk in chunks:
                        file.write(chunk)
            except BaseException:
                os.unlink(name)
                raise
            progress.advance(progress.PAGES)
            return _Answer(Path(name), response.headers)

    async def _status_error(self, response: httpx.Response, where: str) -> SourceStatusError:
        """The error of a non-2xx answer, with what its body says: an HTML page, or the
        system's message from its error envelope."""
        status = response.status_code
        wait = None
        if status in _RETRY_AFTER_STATUSES:
            wait = retry_after(response.headers, self._clock.now())
        detail = None
        with contextlib.suppress(httpx.HTTPError):  # the status is the news, not the body
            chunks = Chunks(response.aiter_bytes())
            head = await chunks.head(HEAD)
            if looks_like_html(response.headers.get("content-type"), head):
                size, more = await chunks.drain(ENVELOPE_LIMIT)
                detail = f"{html_problem(size, more=more)}: {_LOGIN}"
            elif self._envelope:
                body = await chunks.read(ENVELOPE_LIMIT)
                if body is not None:
                    message = envelope_message(body, self._endpoint.request, failed=True)
                    detail = None if message is None else self._scrub(message)
        return SourceStatusError(status, where, detail=detail, retry_after=wait)

    def _check_envelope(self, content: bytes | Path, where: str) -> None:
        """Fail on a 2xx page that is the system's error envelope (only small ones can be)."""
        if isinstance(content, Path):
            if content.stat().st_size > ENVELOPE_LIMIT:
                return
            content = content.read_bytes()
        elif len(content) > ENVELOPE_LIMIT:
            return
        message = envelope_message(content, self._endpoint.request, failed=False)
        if message is not None:
            raise InvalidPayloadError(f"{where} answered with an error: {self._scrub(message)}")

    async def aclose(self) -> None:
        """Nothing to release: the shared client is closed by whoever built it."""

    def _describe(self, exc: Exception) -> str:
        """The foreign error's class and text, with every credential scrubbed."""
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return self._scrub(text)

    def _scrub(self, text: str) -> str:
        """``text`` without a credential of this endpoint.

        Some layers quote what they choke on (h11 quotes an illegal header value,
        others the URL), and a system may echo a request in its message, so the
        text is scrubbed of each header value, the URL's userinfo and its query
        values, which may hold API keys, the ``Query`` values and the proxy's
        credentials.
        """
        secrets = list(self._headers.values())
        raw_userinfo = self._url.userinfo.decode("ascii")
        secrets += [raw_userinfo, unquote(raw_userinfo), self._url.password, self._url.username]
        secrets += [value for _, value in self._url.params.multi_items()]
        raw_query = self._url.query.decode("ascii")  # values as sent, percent-encoded
        secrets += [raw_query, *(part.partition("=")[2] for part in raw_query.split("&"))]
        request = self._endpoint.request
        secrets += [reveal(value) for _, value in request.query]
        if request.proxy is not None:
            proxy = httpx.URL(request.proxy.value)
            secrets += [proxy.userinfo.decode("ascii"), proxy.password, proxy.username]
        for secret in sorted((s for s in secrets if s), key=len, reverse=True):
            if len(secret) >= _MIN_SCRUB_LENGTH:
                text = text.replace(secret, "***")
        return text


def _seconds(value: timedelta | None, default: float) -> float:
    return default if value is None else value.total_seconds()


def open_source(
    source_id: str,
    endpoint: EndpointSettings,
    client: httpx.AsyncClient,
    *,
    world: DemoWorld | None = None,
    spool: Path | None = None,
    clock: Clock | None = None,
) -> Source:
    """The source for ``endpoint``: ``HttpSource``, or ``DemoSource``, ``FileSource``,
    ``SqlSource`` for ``"Type": "demo"``, ``"file"``, ``"sql"``.

    Demo sources need the one ``DemoWorld`` the caller shares among all ten, so
    that they describe the same products.
    """
    if endpoint.type is EndpointType.DEMO:
        if world is None:
            raise ValueError("a demo endpoint needs the shared DemoWorld")
        return DemoSource(source_id, world)
    if endpoint.type is EndpointType.FILE:
        return FileSource(source_id, endpoint, spool=spool)
    if endpoint.type is EndpointType.SQL:
        return SqlSource(source_id, endpoint, spool=spool)
    return HttpSource(source_id, endpoint, client, spool=spool, clock=clock)
