"""Open the store a URL names."""

from __future__ import annotations

from catalog_refresher.errors import ConfigError
from catalog_refresher.store.base import Store
from catalog_refresher.store.sqlite import SqliteStore, sqlite_path


def open_store(url: str) -> Store:
    """The store at ``url`` (``sqlite:///path``), migrated."""
    if url.startswith("sqlite:///"):
        store = SqliteStore(sqlite_path(url))
    else:
        raise ConfigError("Store:Url", "only sqlite:/// stores are available in this version")
    store.migrate()
    return store
