"""Which page to ask for next (a source's ``Paging``).

Five kinds, after the systems we read:

- ``offset`` (ABRA Flexi ``start=0&limit=1000``): the next page starts after the
  records actually received, not after the size asked for, so a server that caps
  the page size still gets read whole. The total comes from ``TotalPath`` in
  each page (Flexi ``winstrom.@rowCount``, a string).
- ``page`` (Shoptet ``page=1&itemsPerPage=1000``): pages are numbered and the
  number of pages comes from ``PageCountPath`` in each page (Shoptet
  ``data.paginator.pageCount``). Shoptet silently caps ``itemsPerPage``, so the
  page count it reports is followed; it is never worked out from the size asked
  for.
- ``next``: each page holds the link to the next at ``NextPath`` (absolute, or
  relative to the page's URL); ``null``, ``""`` or no such key ends paging.
- ``link``: the same, from the RFC 8288 ``Link`` header's ``rel="next"``
  (``sources/link_header.py``).
- ``cursor``: each page holds an opaque token at ``CursorPath``, sent back as
  ``CursorParameter`` for the next page; ``null``, ``""`` or none ends paging.

Without a count path, ``offset`` and ``page`` stop at the first page with fewer
records than ``PageSize`` (an empty one included): a server that caps the page
size below ``PageSize`` needs its count path. The latest page's count is the one
followed, so a source that grows while it is read is read to its new end.

A link or cursor that repeats one already followed fails the fetch: the server
would loop. A next link must stay on the configured URL's scheme, host and
port: the service never fetches a URL that is not configured (a link elsewhere
could carry the endpoint's credentials to another host). A ``Pager`` decides
only; ``HttpSource`` does the requests and enforces ``MaxPages``.

Pages are small (``PageSize`` records), so reading each one's envelope here, in
the service process, is cheap (``sources/decoding.py`` reads it, as it reads the
records later in a worker).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import httpx
import msgspec

from catalog_refresher.config.settings import JsonPath, PagingKind, PagingSettings
from catalog_refresher.errors import InvalidPayloadError
from catalog_refresher.sources.decoding import count_at, record_count, value_at
from catalog_refresher.sources.link_header import next_link
from catalog_refresher.sources.requests import PageAsk, safe_url

__all__ = ["PageRead", "Pager", "pager_for"]

#: How much of a repeated cursor a message shows.
_SHOWN = 60


@dataclass(frozen=True, slots=True)
class PageRead:
    """What a pager may read of one answer."""

    body: bytes
    url: str
    """The URL the page was requested from: relative links are resolved against it."""
    links: Sequence[str] = ()
    """The values of its ``Link`` headers."""


class Pager(Protocol):
    """The paging state of one fetch; each kind says what to ask and whether more follows."""

    def ask(self) -> PageAsk:
        """What to ask for the current page."""
        ...

    def advance(self, page: PageRead, page_number: int) -> bool:
        """Read the current page; True when another page follows (now current)."""
        ...


def pager_for(paging: PagingSettings, records_path: JsonPath | None, origin: httpx.URL) -> Pager:
    """The pager of one fetch from ``origin`` (the configured URL)."""
    if paging.kind is PagingKind.OFFSET:
        return _OffsetPager(paging, records_path)
    if paging.kind is PagingKind.PAGE:
        return _NumberPager(paging, records_path)
    if paging.kind is PagingKind.CURSOR:
        return _CursorPager(paging)
    return _LinkPager(paging, origin)


def _size(paging: PagingSettings) -> tuple[tuple[str, str | int], ...]:
    if paging.page_size is None or paging.size_parameter is None:
        return ()
    return ((paging.size_parameter, paging.page_size),)


class _OffsetPager:
    def __init__(self, paging: PagingSettings, records_path: JsonPath | None) -> None:
        assert paging.position_parameter is not None
        assert paging.page_size is not None
        self._paging = paging
        self._position = paging.position_parameter
        self._page_size = paging.page_size
        self._records_path = records_path
        self._offset = 0

    def ask(self) -> PageAsk:
        return PageAsk(params=((self._position, self._offset), *_size(self._paging)))

    def advance(self, page: PageRead, page_number: int) -> bool:
        received = record_count(page.body, self._records_path, page_number)
        self._offset += received
        if received == 0:
            return False
        if self._paging.count_path is None:
            return received >= self._page_size  # a short page is the last
        # An empty page before the total was reached means the source shrank while it
        # was read (records deleted meanwhile): that page ended it, above.
        total = count_at(page.body, self._paging.count_path, page_number, "TotalPath")
        return self._offset < total


class _NumberPager:
    def __init__(self, paging: PagingSettings, records_path: JsonPath | None) -> None:
        assert paging.position_parameter is not None
        assert paging.page_size is not None
        self._paging = paging
        self._position = paging.position_parameter
        self._page_size = paging.page_size
        self._records_path = records_path
        self._page = paging.first_page

    def ask(self) -> PageAsk:
        return PageAsk(params=((self._position, self._page), *_size(self._paging)))

    def advance(self, page: PageRead, page_number: int) -> bool:
        paging = self._paging
        if paging.count_path is None:
            more = record_count(page.body, self._records_path, page_number) >= self._page_size
        else:
            count = count_at(page.body, paging.count_path, page_number, "PageCountPath")
            more = page_number < count
        self._page += 1
        return more


class _CursorPager:
    def __init__(self, paging: PagingSettings) -> None:
        assert paging.position_parameter is not None
        assert paging.cursor_path is not None
        self._paging = paging
        self._parameter = paging.position_parameter
        self._path = paging.cursor_path
        self._cursor: str | int | None = None
        self._seen: set[str | int] = set()

    def ask(self) -> PageAsk:
        cursor = () if self._cursor is None else ((self._parameter, self._cursor),)
        return PageAsk(params=(*cursor, *_size(self._paging)))

    def advance(self, page: PageRead, page_number: int) -> bool:
        cursor = _token(page.body, self._path, page_number, "CursorPath")
        if cursor is None:
            return False
        if cursor in self._seen:
            shown = str(cursor)[:_SHOWN]
            raise InvalidPayloadError(
                f"page {page_number}: the cursor at CursorPath {self._path.text!r} ({shown})"
                " was followed already; the source would loop"
            )
        self._seen.add(cursor)
        self._cursor = cursor
        return True


class _LinkPager:
    """``next`` (a link in the body) and ``link`` (the ``Link`` header)."""

    def __init__(self, paging: PagingSettings, origin: httpx.URL) -> None:
        self._path = paging.next_path
        self._origin = origin
        self._link: str | None = None
        self._seen: set[str] = set()

    def ask(self) -> PageAsk:
        return PageAsk(link=self._link)

    def advance(self, page: PageRead, page_number: int) -> bool:
        if self._path is None:
            found = next_link(page.links)
            where = 'the Link header\'s rel="next"'
        else:
            token = _token(page.body, self._path, page_number, "NextPath")
            if isinstance(token, int):
                raise InvalidPayloadError(
                    f"page {page_number}: NextPath {self._path.text!r} holds {token}, not a link"
                )
            found = token
            where = f"NextPath {self._path.text!r}"
        if not found:
            return False
        try:
            link = httpx.URL(page.url).join(found)
        except httpx.InvalidURL:
            raise InvalidPayloadError(f"page {page_number}: {where} is not a URL") from None
        if not _same_origin(link, self._origin):
            raise InvalidPayloadError(
                f"page {page_number}: {where} leads to {safe_url(link)}, away from"
                f" {_origin_text(self._origin)}; only the configured scheme, host and port"
                " are fetched"
            )
        text = str(link)
        if text in self._seen or text == page.url:
            raise InvalidPayloadError(
                f"page {page_number}: {where} leads to {safe_url(link)} again;"
                " the source would loop"
            )
        self._seen.add(text)
        self._link = text
        return True


def _token(body: bytes, path: JsonPath, page_number: int, option: str) -> str | int | None:
    """A link or cursor at ``path``: text or a whole number; ``None`` when absent, null or ""."""
    raw = value_at(body, path)
    if raw is None:
        return None
    try:
        value = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise InvalidPayloadError(f"page {page_number}: not the expected JSON: {exc}") from exc
    if value is None or value == "":
        return None
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    shown = raw[:40].decode(errors="replace")
    raise InvalidPayloadError(f"page {page_number}: {option} {path.text!r} holds {shown}")


def _port(url: httpx.URL) -> int | None:
    return url.port or {"http": 80, "https": 443}.get(url.scheme)


def _same_origin(link: httpx.URL, origin: httpx.URL) -> bool:
    return (link.scheme, link.host, _port(link)) == (origin.scheme, origin.host, _port(origin))


def _origin_text(url: httpx.URL) -> str:
    return f"{url.scheme}://{url.host}:{_port(url)}"
