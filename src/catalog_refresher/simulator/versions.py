"""Conditional requests: each representation's ``ETag`` and ``Last-Modified``, and 304s.

A representation is what one URL answers: a source, with its window or its
cursor. Its ``ETag`` is a strong hash of the body, so the same bytes always get
the same tag. Its ``Last-Modified`` is when the simulator first answered the
current bytes, which is when they changed: the demo world changes only when it
is read. HTTP dates have whole seconds, so a representation that changes twice
within a second gets the next second, keeping ``Last-Modified`` strictly
growing per representation (a client's ``If-Modified-Since`` then never hides a
change, at the price of running slightly ahead of the clock under a burst).

``not_modified`` follows RFC 9110 section 13.2.2: ``If-None-Match`` (weak
comparison, ``*`` matching anything) decides when present; otherwise
``If-Modified-Since``, when it is a valid HTTP date.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime

__all__ = ["Version", "Versions", "entity_tag", "http_date", "not_modified"]

_SECOND = timedelta(seconds=1)


def entity_tag(body: bytes) -> str:
    """A strong ``ETag`` of ``body``: a quoted 128-bit BLAKE2b hash."""
    return f'"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'


def http_date(moment: datetime) -> str:
    """``moment`` as an HTTP date: ``Sun, 29 Nov 2026 10:00:00 GMT``."""
    return format_datetime(moment.astimezone(UTC), usegmt=True)


@dataclass(frozen=True, slots=True)
class Version:
    etag: str
    last_modified: datetime
    """Whole seconds, UTC."""


class Versions:
    """The current version of the ``capacity`` representations answered most recently.

    Not thread-safe: the simulator records under its lock.
    """

    def __init__(self, capacity: int = 1024) -> None:
        # Cursor URLs differ on every request, so the table must forget old ones.
        self._capacity = capacity
        self._seen: OrderedDict[tuple[str, ...], Version] = OrderedDict()

    def observe(self, key: tuple[str, ...], body: bytes, now: datetime) -> Version:
        """The version of ``body`` answered for ``key`` at ``now``: the same while unchanged."""
        etag = entity_tag(body)
        old = self._seen.get(key)
        if old is not None and old.etag == etag:
            self._seen.move_to_end(key)
            return old
        moment = now.astimezone(UTC).replace(microsecond=0)
        if old is not None:
            moment = max(moment, old.last_modified + _SECOND)
        self._seen[key] = version = Version(etag, moment)
        self._seen.move_to_end(key)
        while len(self._seen) > self._capacity:
            self._seen.popitem(last=False)
        return version


def not_modified(
    version: Version, if_none_match: str | None, if_modified_since: str | None
) -> bool:
    """Whether a request with these conditional headers gets ``304 Not Modified``."""
    if if_none_match is not None:
        tags = {_opaque(tag) for tag in if_none_match.split(",")}
        return "*" in tags or _opaque(version.etag) in tags
    if if_modified_since is None:
        return False
    try:
        since = parsedate_to_datetime(if_modified_since)
    except (TypeError, ValueError):
        return False  # an invalid date is ignored, as RFC 9110 says
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return version.last_modified <= since


def _opaque(tag: str) -> str:
    """The tag without a weak marker: ``W/"x"`` and ``"x"`` compare equal (weak comparison)."""
    tag = tag.strip()
    return tag[2:] if tag.startswith("W/") else tag
