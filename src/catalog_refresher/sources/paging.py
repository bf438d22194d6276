"""Which page to ask for next (a source's ``Paging``).

Two kinds, after the two systems we read:

- ``offset`` (ABRA Flexi ``?start=0&limit=1000``): the next page starts after
  the records actually received, not after the size asked for, so a server
  that caps the page size still gets read whole. The total comes from
  ``TotalPath`` in each page (Flexi ``winstrom.@rowCount``, a string).
- ``page`` (Shoptet ``?page=1&itemsPerPage=1000``): pages are numbered and the
  number of pages comes from ``PageCountPath`` in each page (Shoptet
  ``data.paginator.pageCount``). Shoptet silently caps ``itemsPerPage``, so the
  page count it reports is followed; it is never worked out from the size asked
  for.

Without a count path, paging stops at the first page with no records. The
latest page's count is the one followed: a source that grows while it is read
is read to its new end. A ``Pager`` decides only; ``HttpSource`` does the
requests and enforces ``MaxPages``.

Pages are small (``PageSize`` records), so reading each one's envelope here,
in the service process, is cheap (``sources/decoding.py`` reads it, as it reads
the records later in a worker).
"""

from __future__ import annotations

from typing import Protocol

from catalog_refresher.config.settings import JsonPath, PagingKind, PagingSettings
from catalog_refresher.sources.decoding import count_at, record_count

__all__ = ["Pager", "pager_for"]


class Pager(Protocol):
    """The paging state of one fetch."""

    def params(self) -> dict[str, str]:
        """The query parameters that ask for the current page."""
        ...

    def advance(self, body: bytes, page_number: int) -> bool:
        """Read the current page's envelope; True when another page follows (now current)."""
        ...


def pager_for(paging: PagingSettings, records_path: JsonPath | None) -> Pager:
    if paging.kind is PagingKind.OFFSET:
        return _OffsetPager(paging, records_path)
    return _NumberPager(paging, records_path)


class _OffsetPager:
    def __init__(self, paging: PagingSettings, records_path: JsonPath | None) -> None:
        self._paging = paging
        self._records_path = records_path
        self._offset = 0

    def params(self) -> dict[str, str]:
        paging = self._paging
        return {
            paging.position_parameter: str(self._offset),
            paging.size_parameter: str(paging.page_size),
        }

    def advance(self, body: bytes, page_number: int) -> bool:
        received = record_count(body, self._records_path, page_number)
        self._offset += received
        if received == 0:
            return False
        if self._paging.count_path is None:
            return True  # only an empty page says the end was passed
        # An empty page before the total was reached means the source shrank while it
        # was read (records deleted meanwhile): that page ended it, above.
        total = count_at(body, self._paging.count_path, page_number, "TotalPath")
        return self._offset < total


class _NumberPager:
    def __init__(self, paging: PagingSettings, records_path: JsonPath | None) -> None:
        self._paging = paging
        self._records_path = records_path
        self._page = paging.first_page

    def params(self) -> dict[str, str]:
        paging = self._paging
        return {
            paging.position_parameter: str(self._page),
            paging.size_parameter: str(paging.page_size),
        }

    def advance(self, body: bytes, page_number: int) -> bool:
        paging = self._paging
        if paging.count_path is None:
            more = record_count(body, self._records_path, page_number) > 0
        else:
            count = count_at(body, paging.count_path, page_number, "PageCountPath")
            more = page_number < count
        self._page += 1
        return more
