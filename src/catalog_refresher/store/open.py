"""Open the store a URL names."""

from __future__ import annotations

from datetime import timedelta

from catalog_refresher.errors import ConfigError
from catalog_refresher.store.base import Store
from catalog_refresher.store.postgres import DEFAULT_LEASE, PostgresStore
from catalog_refresher.store.sqlite import SqliteStore, sqlite_path


def open_store(url: str, *, lease: timedelta = DEFAULT_LEASE, memory_map: bool = True) -> Store:
    """The store at ``url`` (``sqlite:///path`` or ``postgresql://...``), migrated;
    ``memory_map``: SQLite reads through a memory map (the API's process), or not (a
    refresh worker, whose resident size would keep every page a run touched)."""
    store: Store
    if url.startswith("sqlite:///"):
        store = SqliteStore(sqlite_path(url), memory_map=memory_map)
    elif url.startswith(("postgresql://", "postgres://")):
        store = PostgresStore(url, lease=lease)
    else:
        raise ConfigError("Store:Url", "must start with sqlite:/// or postgresql://")
    store.migrate()
    return store
