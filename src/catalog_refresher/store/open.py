"""Open the store a URL names."""

from __future__ import annotations

from datetime import timedelta

from catalog_refresher.errors import ConfigError
from catalog_refresher.store.base import Store
from catalog_refresher.store.postgres import DEFAULT_LEASE, PostgresStore
from catalog_refresher.store.sqlite import SqliteStore, sqlite_path


def open_store(url: str, *, lease: timedelta = DEFAULT_LEASE) -> Store:
    """The store at ``url`` (``sqlite:///path`` or ``postgresql://...``), migrated."""
    store: Store
    if url.startswith("sqlite:///"):
        store = SqliteStore(sqlite_path(url))
    elif url.startswith(("postgresql://", "postgres://")):
        store = PostgresStore(url, lease=lease)
    else:
        raise ConfigError("Store:Url", "must start with sqlite:/// or postgresql://")
    store.migrate()
    return store
