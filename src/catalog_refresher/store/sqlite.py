"""The embedded store: one SQLite file in WAL mode.

WAL lets readers (the API) read the last committed state while a refresh
writes. Writes go through one connection guarded by a lock; each thread that
reads gets its own connection, so concurrent reads (the API's thread pool)
do not queue behind each other.
A run's changes are written set-based with ``executemany`` inside a single
``BEGIN IMMEDIATE`` transaction: a failure anywhere rolls all of it back.
The moves themselves are shared with PostgreSQL (``store/sql_store.py``).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path

from catalog_refresher.errors import StoreError
from catalog_refresher.store.base import RowDelete, RowWrite, StoredPart
from catalog_refresher.store.migrations import Step
from catalog_refresher.store.rows import contains_pattern, parts_from
from catalog_refresher.store.sql_store import TOUCHED_BY_RUN, SqlStore, as_bytes

READ_BUSY_TIMEOUT_MS = 1_000
#: How much of the file the API's reads map into memory (``memory_map``).
MMAP_SIZE = 1 << 30


def _create_owner_only(path: Path) -> None:
    """Create the store's file readable and writable by its owner alone, if it is new.

    The catalog and its audit log are the company's data, and sqlite3 creates a new
    file with the process's umask (0644 under the usual 022). SQLite gives the WAL
    and shared-memory files the database file's permissions, so they follow. An
    existing file keeps the permissions its operator gave it.
    """
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def sqlite_path(url: str) -> Path:
    """``sqlite:///rel/path`` or ``sqlite:////abs/path`` -> a filesystem path."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        raise StoreError(f"not a SQLite store URL: {url!r}")
    return Path(url[len(prefix) :])


class SqliteStore(SqlStore[sqlite3.Connection]):
    """``Store`` on a SQLite file."""

    dialect = "sqlite"
    placeholder = "?"
    # BEGIN IMMEDIATE takes the file's write lock: no row needs a lock of its own.
    row_lock = ""
    _drop_products = (
        "DELETE FROM products WHERE code IN (SELECT code FROM touched WHERE gone)"
        " AND NOT EXISTS (SELECT 1 FROM records r WHERE r.product_code = products.code)",
        # A product no source knows any more has no parts, so no lineage either.
        "DELETE FROM lineage WHERE product_code IN (SELECT code FROM touched WHERE gone)"
        " AND NOT EXISTS (SELECT 1 FROM records r WHERE r.product_code = lineage.product_code)",
    )
    _name_products = (
        "INSERT INTO products (code, name, code_folded, name_folded)"
        " SELECT t.code, json_extract(e.data, '$.product_name'), casefold(t.code),"
        " casefold(json_extract(e.data, '$.product_name')) FROM touched t"
        # ERP rows are keyed by product code: a join on the primary key (a scalar
        # subquery here was read twice, once for the folded name).
        " LEFT JOIN records e ON e.source = 'erp_stock' AND e.key = t.code"
        " WHERE (t.named OR NOT EXISTS (SELECT 1 FROM products p WHERE p.code = t.code))"
        " AND (NOT t.gone OR EXISTS (SELECT 1 FROM records r WHERE r.product_code = t.code))"
        " ON CONFLICT (code) DO UPDATE SET name = excluded.name,"
        " name_folded = excluded.name_folded WHERE products.name IS NOT excluded.name"
    )
    _refresh_products = (*_drop_products, _name_products)
    _unname_gone = (
        "UPDATE products SET name = NULL, name_folded = NULL"
        " WHERE code IN (SELECT code FROM touched WHERE gone) AND name IS NOT NULL"
    )

    def __init__(self, path: Path | str, *, memory_map: bool = True) -> None:
        self.path = Path(path)
        self._mmap_size = MMAP_SIZE if memory_map else 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            _create_owner_only(self.path)
            self._writer = self._connect()
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open the SQLite store {self.path}: {exc}") from exc
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()

    def _connect(self, *, busy_timeout_ms: int = 120_000) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode = WAL")
        # NORMAL is durable across process crashes in WAL mode; only an OS crash
        # can lose the last commits, never corrupt the file.
        conn.execute("PRAGMA synchronous = NORMAL")
        # Refresh workers in other processes write too; a first load of a large
        # source can hold the write lock for many seconds.
        conn.execute(f"PRAGMA busy_timeout = {busy_timeout_ms:d}")
        conn.execute("PRAGMA temp_store = MEMORY")
        # Reads through a memory map skip a copy per page; a 16 MB page cache per
        # connection (one per reading thread) keeps hot index pages in memory.
        # A refresh worker opens its store without: every page a run's apply touched
        # would stay mapped, counted in the worker's resident size (issue 11).
        conn.execute(f"PRAGMA mmap_size = {self._mmap_size:d}")
        conn.execute("PRAGMA cache_size = -16384")
        # SQLite folds ASCII case only; the product list's search columns use Python's.
        conn.create_function("casefold", 1, _casefold, deterministic=True)
        return conn

    def close(self) -> None:
        with self._write_lock, self._readers_lock:
            self._writer.close()
            for reader in self._readers:
                reader.close()
            self._readers.clear()

    async def aclose(self) -> None:
        pass

    # --- plumbing ---------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; rolled back whole on any error."""
        with self._write_lock:
            conn = self._writer
            try:
                conn.execute("BEGIN IMMEDIATE")
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"SQLite write failed: {exc}") from exc
                raise

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """This thread's read connection (opened on first use)."""
        try:
            conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
            if conn is None:
                # A WAL reader never waits for writers; it can only meet a lock
                # while another connection recovers the file after a crash. The
                # API reads on its event loop (``product_parts``), so wait
                # briefly and fail rather than stall every request.
                conn = self._connect(busy_timeout_ms=READ_BUSY_TIMEOUT_MS)
                with self._readers_lock:
                    self._readers.append(conn)
                self._local.conn = conn
            yield conn
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite read failed: {exc}") from exc

    @contextmanager
    def _migrating(self) -> Iterator[sqlite3.Connection]:
        # Each step is its own transaction (``_run_step``); the lock keeps writes out.
        with self._write_lock:
            yield self._writer

    def _run_step(self, conn: sqlite3.Connection, step: Step) -> None:
        try:
            # executescript commits first; wrap the script in its own transaction.
            conn.executescript(f"BEGIN IMMEDIATE;\n{step.sql}\n{step.record};\nCOMMIT;")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StoreError(f"migration {step.name} failed: {exc}") from exc

    def _time_param(self, value: datetime) -> str:
        """UTC ISO text: one offset for every row, so that text order is time order."""
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(UTC).isoformat()

    def _day_param(self, value: date | None) -> str | None:
        return value.isoformat() if value else None

    def _time_value(self, value: object) -> datetime | None:
        return datetime.fromisoformat(str(value)) if value else None

    # --- staging a run's rows ---------------------------------------------------

    def _delete_rows(
        self, conn: sqlite3.Connection, source: str, deletes: Sequence[RowDelete]
    ) -> None:
        conn.executemany(
            "DELETE FROM records WHERE source = ? AND key = ?", ((source, d.key) for d in deletes)
        )

    def _write_rows(
        self,
        conn: sqlite3.Connection,
        source: str,
        writes: Sequence[RowWrite],
        run_id: int,
        at: object,
    ) -> None:
        conn.executemany(
            "INSERT INTO records (source, key, product_code, day, data, run_id, changed_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (source, key) DO UPDATE SET data = excluded.data,"
            " run_id = excluded.run_id, changed_at = excluded.changed_at",
            # A generator, not a list: a first load's million rows are bound one at a time,
            # never held a second time (as text) all at once.
            (
                (source, w.key, w.product_code, self._day_param(w.day), w.data.decode(), run_id, at)
                for w in writes
            ),
        )

    def _stage_touched(
        self,
        conn: sqlite3.Connection,
        touched: Mapping[str, bool],
        *,
        named: bool,
        written: tuple[str, int] | None = None,
    ) -> None:
        conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS touched"
            " (code TEXT PRIMARY KEY, gone INTEGER NOT NULL, named INTEGER NOT NULL) WITHOUT ROWID"
        )
        conn.execute("DELETE FROM touched")
        conn.executemany(
            "INSERT INTO touched VALUES (?, ?, ?)", ((c, g, named) for c, g in touched.items())
        )
        if written is not None:
            conn.execute(self._q(TOUCHED_BY_RUN), (named, *written))

    def _write_names(
        self, conn: sqlite3.Connection, names: Iterable[tuple[str, str | None]]
    ) -> None:
        conn.executemany(
            "INSERT INTO products (code, name, code_folded, name_folded) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (code) DO UPDATE SET name = excluded.name,"
            " name_folded = excluded.name_folded WHERE products.name IS NOT excluded.name",
            ((code, name, code.casefold(), _casefold(name)) for code, name in names),
        )

    def _stage_keys(
        self, conn: sqlite3.Connection, keys: Iterable[tuple[str, str, date | None]]
    ) -> None:
        conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS vkeys"
            " (key TEXT PRIMARY KEY, product_code TEXT NOT NULL, day TEXT) WITHOUT ROWID"
        )
        conn.execute("DELETE FROM vkeys")
        conn.executemany(
            "INSERT INTO vkeys VALUES (?, ?, ?)", ((k, c, self._day_param(d)) for k, c, d in keys)
        )

    # --- what only SQLite reads this way ------------------------------------------

    def _search(self, search: str) -> tuple[str, list[object]]:
        pattern = contains_pattern(search.casefold())
        clause = "WHERE code_folded LIKE ? ESCAPE '\\' OR name_folded LIKE ? ESCAPE '\\'"
        return clause, [pattern, pattern]

    def _abandoned(self, conn: sqlite3.Connection) -> tuple[str, str, list[object]]:
        # One process owns a SQLite store, so any unfinished run is an earlier process's.
        return "abandoned by a process that stopped", "", []

    def iter_rows(self, source: str) -> Iterator[tuple[str, bytes]]:
        # Its own connection: a long read must not hold the shared reader's lock.
        conn = self._connect()
        try:
            cursor = conn.execute("SELECT key, data FROM records WHERE source = ?", (source,))
            while chunk := cursor.fetchmany(10_000):
                for key, data in chunk:
                    yield key, as_bytes(data)
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite read failed: {exc}") from exc
        finally:
            conn.close()

    async def product_parts(self, code: str) -> dict[str, StoredPart] | None:
        # In place, on the loop: cheaper than the hop to a thread, which under load
        # also made the loop queue for the GIL behind the reading threads.
        with self._read() as conn:
            conn.execute("BEGIN")  # one snapshot for both queries
            try:
                rows = conn.execute(
                    "SELECT source, data FROM records WHERE product_code = ? ORDER BY source, key",
                    (code,),
                ).fetchall()
                lineage = conn.execute(
                    "SELECT source, run_id, changed_at FROM lineage WHERE product_code = ?",
                    (code,),
                ).fetchall()
            finally:
                conn.execute("COMMIT")
        if not rows:
            return None
        grouped: dict[str, list[bytes]] = {}
        for source, data in rows:
            grouped.setdefault(source, []).append(as_bytes(data))
        marks = {source: (run_id, self._time_value(changed)) for source, run_id, changed in lineage}
        return parts_from(grouped, marks)


def _casefold(text: str | None) -> str | None:
    return text.casefold() if text is not None else None
