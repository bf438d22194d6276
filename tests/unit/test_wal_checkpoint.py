"""The SQLite store's write-ahead log is copied back by its own thread, not by the writer."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from catalog_refresher.store.sqlite import SqliteStore
from catalog_refresher.store.wal_checkpoint import WalCheckpointer
from tests.store_helpers import apply, erp


def _until(condition: Callable[[], bool], seconds: float = 30) -> bool:
    """Whether ``condition()`` held within ``seconds`` (checked every 10 ms)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        threading.Event().wait(0.01)
    return True


def _writer(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute("CREATE TABLE t (x TEXT)")
    return conn


def test_a_large_apply_reaches_the_database_file_in_the_background(tmp_path: Path) -> None:
    """The commit leaves its pages in the log; the store's thread copies them into the file."""
    path = tmp_path / "catalog.db"
    store = SqliteStore(path)
    store.migrate()
    size_before = path.stat().st_size
    try:
        apply(store, "erp_stock", [erp(f"P-{i:05d}", name="x" * 200) for i in range(3_000)])
        assert _until(lambda: path.stat().st_size > size_before + 600_000)
    finally:
        store.close()


def test_small_commits_wait_until_enough_rows_changed(tmp_path: Path) -> None:
    """Below the threshold no checkpoint is made; the commit that crosses it makes one."""
    path = tmp_path / "wal.db"
    writer = _writer(path)
    checkpointer = WalCheckpointer(lambda: sqlite3.connect(path), every_changes=500)
    size = path.stat().st_size
    for _ in range(4):
        writer.executemany("INSERT INTO t VALUES (?)", [("y" * 500,)] * 100)
        checkpointer.committed(100)
    assert path.stat().st_size == size  # 400 rows: still all in the log
    writer.executemany("INSERT INTO t VALUES (?)", [("y" * 500,)] * 100)
    checkpointer.committed(100)
    assert _until(lambda: path.stat().st_size > size + 200_000)
    checkpointer.close()
    writer.close()


def test_close_stops_the_thread_and_later_commits_start_none(tmp_path: Path) -> None:
    """After ``close`` the thread is gone and a due checkpoint no longer starts one."""
    path = tmp_path / "wal.db"
    writer = _writer(path)
    checkpointer = WalCheckpointer(lambda: sqlite3.connect(path), every_changes=1)
    before = set(threading.enumerate())
    checkpointer.committed(1)
    (thread,) = set(threading.enumerate()) - before
    assert thread.name == "sqlite-wal-checkpoint"
    checkpointer.close()
    assert not thread.is_alive()
    checkpointer.committed(10)
    assert set(threading.enumerate()) - before == set()
    writer.close()
