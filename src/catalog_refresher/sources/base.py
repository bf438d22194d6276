"""The boundary to an external system.

A source fetches raw pages and nothing more: decoding (``sources/decoding.py``)
and the per-record rules (``domain/rules.py``) are applied later, by
``refresh/validate.py``, so every implementation gets the same rules. Sources
translate their own failures into ``SourceError`` subclasses (``errors.py``):
``TransientSourceError`` for what is worth retrying, ``InvalidPayloadError`` and
plain ``SourceError`` for what is not.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from catalog_refresher.config.settings import CsvFormat, FieldRule, FilterCondition, JsonPath
from catalog_refresher.domain.window import Window


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchState:
    """What a fetch is told of the last good one (the store's ``SyncState``).

    ``cursor`` set: an incremental run, which asks only for the changes since it.
    ``etag``/``last_modified`` set: the request is conditional; ``body_hash`` set:
    a body identical to the last good one comes back as ``not_modified``.
    """

    cursor: str | None = None
    cursor_parameter: str | None = None
    """Where the cursor goes: the query parameter of an HTTP source (``Incremental``)."""
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Payload:
    """What a source returned: one document per page, and how to read the records in it.

    The reading instructions travel with the pages because they belong to the
    endpoint that answered: a backup may be another system with other names.
    """

    pages: list[bytes | Path] = field(default_factory=list)
    """Each page's body, or the file it was spooled to (see ``HttpSource``)."""
    records_path: JsonPath | None = None
    """Dotted path to the records array inside each page, or ``None`` for a bare array."""
    origin: str = ""
    """Where it came from, for logs (a URL without credentials, or ``demo``)."""
    fields: tuple[FieldRule, ...] = ()
    """Record fields the pages name differently (``sources/mapping.py``)."""
    csv: CsvFormat | None = None
    """Set when the pages are CSV documents instead of JSON (``sources/csv_payload.py``)."""
    filters: tuple[FilterCondition, ...] = ()
    """Which of the pages' records are this source's (``sources/filters.py``)."""
    not_modified: bool = False
    """The source answered 304, or with the very body of ``FetchState.body_hash``: no pages."""
    etag: str | None = None
    """The answer's validators, to send on the next fetch (the first page's, when paged)."""
    last_modified: str | None = None
    body_hash: str | None = None
    """A hash of every page's bytes, computed as they were read; ``None``: not computed."""
    ndjson: bool = False
    """Set when each page holds one JSON record per line (``sources/decoding.py``)."""

    def discard(self) -> None:
        """Delete spooled pages; the payload is not read after this."""
        for page in self.pages:
            if isinstance(page, Path):
                with contextlib.suppress(FileNotFoundError):
                    page.unlink()


class Source(Protocol):
    """One external system."""

    @property
    def source_id(self) -> str: ...

    async def fetch(self, window: Window | None, state: FetchState | None = None) -> Payload:
        """Fetch the current records; ``window`` is given to history sources, ``state``
        (what the last good fetch left) to sources that read incrementally or conditionally;
        a source that cannot ignores it."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
