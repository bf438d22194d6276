"""A response body's chunks as ``HttpSource`` reads them: a look at the head first,
a hash of every byte on the way, and the headers that make a request conditional."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from email.utils import parsedate_to_datetime

from catalog_refresher import progress
from catalog_refresher.sources.base import FetchState

__all__ = ["HASH_SIZE", "Chunks", "conditional_headers", "hashed", "strong_last_modified"]

#: The digest of every page's bytes kept to tell an identical body (BLAKE2b: fast in C).
HASH_SIZE = 16
#: How much older than the answer's Date a Last-Modified must be to be sent back.
_STRONG_AFTER = timedelta(seconds=1)


class Chunks:
    """A response's body chunks, with a look at its head first."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks
        self._held: list[bytes] = []

    async def head(self, size: int) -> bytes:
        """At least ``size`` bytes of the body's start (less if it is shorter); kept for later."""
        held = sum(map(len, self._held))
        async for chunk in self._chunks:
            self._held.append(chunk)
            held += len(chunk)
            if held >= size:
                break
        return b"".join(self._held)

    async def read(self, limit: int) -> bytes | None:
        """The whole body, or ``None`` when it is longer than ``limit``."""
        body = bytearray()
        async for chunk in self:
            body += chunk
            if len(body) > limit:
                return None
        return bytes(body)

    async def drain(self, limit: int) -> tuple[int, bool]:
        """Read on up to ``limit`` bytes: how many there were, and whether there were more."""
        size = 0
        async for chunk in self:
            size += len(chunk)
            if size > limit:
                return limit, True
        return size, False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        while self._held:
            yield self._held.pop(0)
        async for chunk in self._chunks:
            yield chunk


async def hashed(chunks: AsyncIterator[bytes], hasher: hashlib._Hash) -> AsyncIterator[bytes]:
    """``chunks`` as they come, each fed to ``hasher`` on the way."""
    async for chunk in chunks:
        hasher.update(chunk)
        yield chunk


async def counted(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """``chunks`` as they come, their sizes reported as progress (``progress.BYTES``)."""
    async for chunk in chunks:
        progress.advance(progress.BYTES, len(chunk))
        yield chunk


def conditional_headers(state: FetchState) -> dict[str, str] | None:
    """``If-None-Match`` when an ETag is stored, else ``If-Modified-Since``, else nothing.

    Never both: a server that has an ETag compares by it, and one that compares times
    does so by whole seconds (python's http.server, Apache's ``<=``), so a date sent
    beside an ETag could only turn a changed body into a 304. A ``Last-Modified`` is
    stored only when it was a strong validator (``strong_last_modified``).
    """
    if state.etag:
        return {"If-None-Match": state.etag}
    if state.last_modified:
        return {"If-Modified-Since": state.last_modified}
    return None


def strong_last_modified(headers: Mapping[str, str]) -> str | None:
    """The answer's ``Last-Modified`` if it is worth sending back, else ``None``.

    Only when it is more than a second older than the answer's ``Date`` (RFC 9110
    8.8.2.2): a resource changed in the second it was read may change again within
    that second, and a server comparing whole seconds would then answer 304 to the
    new version. Without a ``Date``, or either unreadable, it is not kept.
    """
    modified, served = headers.get("last-modified"), headers.get("date")
    if not modified or not served:
        return None
    try:
        then, now = parsedate_to_datetime(modified), parsedate_to_datetime(served)
    except (TypeError, ValueError):
        return None
    if then.tzinfo is None or now.tzinfo is None:
        return None
    return modified if now - then > _STRONG_AFTER else None
