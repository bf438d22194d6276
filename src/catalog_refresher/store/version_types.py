"""What the store answers about versions (``store/versions.py`` keeps them)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True, kw_only=True)
class VersionPolicy:
    """How many versions of each source are kept, and for how long (``store/versions.py``)."""

    kept: int = 10
    """``CatalogRepository:VersionsKept``."""
    retention: timedelta | None = timedelta(days=30)
    """``CatalogRepository:VersionsRetention``; ``None``: no age limit."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Version:
    run_id: int
    published_at: datetime
    record_count: int
    inserted: int
    updated: int
    deleted: int
    served: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceVersions:
    """A source's kept versions, newest first, and which one is served."""

    source: str
    served_run_id: int | None
    pinned: bool
    pinned_at: datetime | None
    items: list[Version]


class Change(enum.StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyChange:
    key: str
    product_code: str
    change: Change
    old: bytes | None
    new: bytes | None


@dataclass(frozen=True, slots=True, kw_only=True)
class VersionDiff:
    """The keys that differ between two kept versions, ordered by key, one page of them."""

    source: str
    from_run: int
    to_run: int
    added: int
    removed: int
    changed: int
    items: list[KeyChange]

    @property
    def total(self) -> int:
        return self.added + self.removed + self.changed


@dataclass(frozen=True, slots=True, kw_only=True)
class PartVersion:
    """A product's rows from one source as one kept version had them."""

    run_id: int
    published_at: datetime
    rows: list[bytes]
