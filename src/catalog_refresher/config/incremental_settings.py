"""A source's ``Incremental`` settings, read by ``config/incremental.py`` and used by
``refresh/incremental.py``; ``config.settings`` re-exports them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from catalog_refresher.config.json_path import JsonPath


@dataclass(frozen=True, slots=True, kw_only=True)
class Tombstone:
    """A record whose value at ``path``, as comparable text, is ``equals`` deletes its key."""

    path: JsonPath
    equals: str


@dataclass(frozen=True, slots=True, kw_only=True)
class IncrementalSettings:
    """A source's ``Incremental`` (``config/incremental.py``, ``refresh/incremental.py``)."""

    cursor_field: JsonPath
    cursor_parameter: str | None = None
    """The query parameter the stored cursor is sent in, on incremental runs; ``None``
    when it goes elsewhere: a template's ``{cursor}``, a sql ``Query``'s ``:cursor``."""
    tombstone: Tombstone | None = None
    full_every: timedelta | None = None
    full_every_runs: int | None = None
