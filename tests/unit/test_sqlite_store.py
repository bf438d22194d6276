"""What only the SQLite store does (the shared behaviour is in ``tests/contract``)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
import threading
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from catalog_refresher.domain.runs import Trigger
from catalog_refresher.store.sqlite import READ_BUSY_TIMEOUT_MS, SqliteStore

AT = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_reads_wait_briefly_for_a_lock_and_writes_wait_long(tmp_path: Path) -> None:
    """The API reads on its event loop, so a read that meets a lock gives up after
    a second; a write may wait for a worker's long first load to commit."""
    store = SqliteStore(tmp_path / "catalog.db")
    try:
        with store._read() as reader:
            assert reader.execute("PRAGMA busy_timeout").fetchone() == (READ_BUSY_TIMEOUT_MS,)
        assert store._writer.execute("PRAGMA busy_timeout").fetchone() == (120_000,)
    finally:
        store.close()
    assert READ_BUSY_TIMEOUT_MS <= 1_000


def test_each_thread_reads_through_its_own_connection(tmp_path: Path) -> None:
    """Reads on three threads and the caller's use four connections, one per thread."""
    store = SqliteStore(tmp_path / "catalog.db")
    store.migrate()
    seen: list[object] = []

    def read() -> None:
        with store._read() as conn:
            seen.append(conn)
        assert asyncio.run(store.product_parts("TEST-001")) is None

    try:
        threads = [threading.Thread(target=read) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        read()
        assert len({id(conn) for conn in seen}) == 4
    finally:
        store.close()


def test_the_search_columns_are_filled_for_a_store_made_before_them(tmp_path: Path) -> None:
    """Migration 002 folds the codes and names a store already held."""
    path = tmp_path / "catalog.db"
    old = sqlite3.connect(path, isolation_level=None)
    old.executescript(
        (resources.files("catalog_refresher.store.sql.sqlite") / "001_initial.sql").read_text()
        + "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL);"
        "INSERT INTO schema_migrations VALUES (1, '001_initial.sql');"
        "INSERT INTO products VALUES ('ŘEZ-2', 'Řezák'), ('P-3', NULL);"
    )
    old.close()
    store = SqliteStore(path)
    try:
        store.migrate()
        assert store.list_products(search="řezák", limit=10, offset=0) == (["ŘEZ-2"], 1)
        assert store.list_products(search="p-3", limit=10, offset=0) == (["P-3"], 1)
    finally:
        store.close()


def test_a_new_store_and_its_wal_files_are_owner_only(tmp_path: Path) -> None:
    """Under the usual umask 022 the store file, its WAL and its shared memory are 0600."""
    old = os.umask(0o022)
    try:
        store = SqliteStore(tmp_path / "catalog.db")
        store.migrate()
        store.create_run(source="erp_stock", trigger=Trigger.MANUAL, forced=False, at=AT)
    finally:
        os.umask(old)
    try:
        modes = {
            path.name: stat.S_IMODE(path.stat().st_mode)
            for path in tmp_path.iterdir()
            if path.name.startswith("catalog.db")
        }
    finally:
        store.close()
    assert modes == {"catalog.db": 0o600, "catalog.db-wal": 0o600, "catalog.db-shm": 0o600}


def test_an_existing_store_keeps_the_permissions_it_has(tmp_path: Path) -> None:
    """A store file an operator made group-readable on purpose stays so."""
    path = tmp_path / "catalog.db"
    SqliteStore(path).close()
    path.chmod(0o640)
    SqliteStore(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
