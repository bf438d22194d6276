"""The embedded store: one SQLite file in WAL mode.

WAL lets readers (the API) read the last committed state while a refresh
writes. Writes go through one connection guarded by a lock; each thread that
reads gets its own connection, so concurrent reads (the API's thread pool)
do not queue behind each other.
A run's changes are written set-based with ``executemany`` inside a single
``BEGIN IMMEDIATE`` transaction: a failure anywhere rolls all of it back.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path

from catalog_refresher.domain.runs import Run, RunOutcome, RunStatus, Trigger
from catalog_refresher.errors import RunFenced, StoreError
from catalog_refresher.store.base import (
    Applied,
    Changeset,
    IndexOutOfDate,
    RunQuery,
    SourceHistory,
    StoredPart,
)
from catalog_refresher.store.rows import (
    RECENT_RUNS,
    RUN_COLUMNS,
    SOURCE_STATE,
    UNFINISHED,
    contains_pattern,
    history_from,
    parts_from,
    run_filter,
    run_from_row,
)

READ_BUSY_TIMEOUT_MS = 1_000


def sqlite_path(url: str) -> Path:
    """``sqlite:///rel/path`` or ``sqlite:////abs/path`` -> a filesystem path."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        raise StoreError(f"not a SQLite store URL: {url!r}")
    return Path(url[len(prefix) :])


class SqliteStore:
    """``Store`` on a SQLite file."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._writer = self._connect()
        except sqlite3.Error as exc:
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
        conn.execute("PRAGMA mmap_size = 1073741824")
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
                # API reads on its event loop (``product_parts_async``), so wait
                # briefly and fail rather than stall every request.
                conn = self._connect(busy_timeout_ms=READ_BUSY_TIMEOUT_MS)
                with self._readers_lock:
                    self._readers.append(conn)
                self._local.conn = conn
            yield conn
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite read failed: {exc}") from exc

    def migrate(self) -> None:
        scripts = sorted(
            (
                p
                for p in resources.files("catalog_refresher.store.sql.sqlite").iterdir()
                if p.name.endswith(".sql")
            ),
            key=lambda p: p.name,
        )
        with self._write_lock:
            conn = self._writer
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations"
                " (version INTEGER PRIMARY KEY, name TEXT NOT NULL)"
            )
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            for script in scripts:
                version = int(script.name.split("_", 1)[0])
                if version in done:
                    continue
                try:
                    # executescript commits first; wrap the script in its own transaction.
                    conn.executescript(
                        f"BEGIN IMMEDIATE;\n{script.read_text()}\n"
                        f"INSERT INTO schema_migrations VALUES ({version}, '{script.name}');\n"
                        "COMMIT;"
                    )
                except sqlite3.Error as exc:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise StoreError(f"migration {script.name} failed: {exc}") from exc

    # --- runs ---------------------------------------------------------------------

    def create_run(self, *, source: str, trigger: Trigger, forced: bool, at: datetime) -> Run:
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO runs (source, trigger, status, forced, queued_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (source, trigger.value, RunStatus.QUEUED.value, int(forced), _ts(at)),
            )
            run_id = cur.lastrowid
        assert run_id is not None
        return Run(
            id=run_id,
            source=source,
            trigger=trigger,
            status=RunStatus.QUEUED,
            forced=forced,
            queued_at=at,
        )

    def mark_running(self, run_id: int, *, at: datetime) -> bool:
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE runs SET status = ?, started_at = ? WHERE id = ? AND status = ?",
                (RunStatus.RUNNING.value, _ts(at), run_id, RunStatus.QUEUED.value),
            )
            return cur.rowcount == 1

    def finish_run(self, run_id: int, outcome: RunOutcome) -> bool:
        with self._write() as conn:
            return _finish(conn, run_id, outcome)

    def cancel_abandoned_runs(self, *, at: datetime) -> int:
        # One process owns a SQLite store, so any unfinished run is an earlier process's.
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE runs SET status = ?, finished_at = ?,"
                " error = 'abandoned by a process that stopped' WHERE status IN (?, ?)",
                (RunStatus.CANCELLED.value, _ts(at), *UNFINISHED),
            )
            return cur.rowcount

    def get_run(self, run_id: int) -> Run | None:
        with self._read() as conn:
            row = conn.execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchone()
        return _run(row) if row else None

    def list_runs(self, query: RunQuery) -> tuple[list[Run], int]:
        clause, params = run_filter(query, "?", _ts)
        with self._read() as conn:
            total = conn.execute(f"SELECT count(*) FROM runs {clause}", params).fetchone()[0]
            rows = conn.execute(
                f"SELECT {RUN_COLUMNS} FROM runs {clause} ORDER BY id DESC LIMIT ? OFFSET ?",
                [*params, query.limit, query.offset],
            ).fetchall()
        return [_run(r) for r in rows], total

    def source_history(self, source: str) -> SourceHistory:
        with self._read() as conn:
            recent = conn.execute(RECENT_RUNS.format(p="?"), (source,)).fetchall()
            state = conn.execute(SOURCE_STATE.format(p="?"), (source,)).fetchone()
        return history_from(recent, state, _dt)

    # --- data ---------------------------------------------------------------------

    def apply(self, run_id: int, changeset: Changeset, outcome: RunOutcome) -> Applied:
        source, at = changeset.source, _ts(outcome.finished_at)
        with self._write() as conn:
            status = conn.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
            if status is None or status[0] != RunStatus.RUNNING.value:
                raise RunFenced(f"run {run_id} is {status[0] if status else 'gone'}; not applied")
            version, _ = _state(conn, source)
            if version != changeset.expected_version:
                raise IndexOutOfDate(
                    f"{source} changed (version {version}, diffed against"
                    f" {changeset.expected_version})"
                )
            conn.executemany(
                "DELETE FROM records WHERE source = ? AND key = ?",
                [(source, d.key) for d in changeset.deletes],
            )
            # product_code and day are functions of the key, so an update leaves them
            # (and the indexes over them) alone.
            conn.executemany(
                "INSERT INTO records (source, key, product_code, day, data, run_id, changed_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (source, key) DO UPDATE SET data = excluded.data,"
                " run_id = excluded.run_id, changed_at = excluded.changed_at",
                [
                    (source, w.key, w.product_code, _day(w.day), w.data.decode(), run_id, at)
                    for w in changeset.writes
                ],
            )
            touched = {d.product_code for d in changeset.deletes}
            touched.update(w.product_code for w in changeset.writes)
            if touched:
                version += 1
                _record_touched(conn, source, touched, run_id, at)
            counts = outcome.counts
            conn.execute(
                "UPDATE source_state SET data_version = ?, row_count = row_count + ?,"
                " last_success_run_id = ?, last_success_at = ? WHERE source = ?",
                (version, counts.inserted - counts.deleted, run_id, at, source),
            )
            if not _finish(conn, run_id, outcome):  # pragma: no cover - fenced above
                raise RunFenced(f"run {run_id} finished meanwhile; not applied")
        return Applied(products=frozenset(touched), version=version)

    def purge_before(self, source: str, day: date, *, at: datetime) -> int:
        with self._write() as conn:
            version, _ = _state(conn, source)
            gone = conn.execute(
                "DELETE FROM records WHERE source = ? AND day < ? RETURNING product_code",
                (source, day.isoformat()),
            ).fetchall()
            if gone:
                _record_touched(conn, source, {g[0] for g in gone}, None, _ts(at))
                conn.execute(
                    "UPDATE source_state SET data_version = ?, row_count = row_count - ?"
                    " WHERE source = ?",
                    (version + 1, len(gone), source),
                )
        return len(gone)

    def data_version(self, source: str) -> int:
        with self._read() as conn:
            row = conn.execute(
                "SELECT data_version FROM source_state WHERE source = ?", (source,)
            ).fetchone()
        return int(row[0]) if row else 0

    def iter_rows(self, source: str) -> Iterator[tuple[str, bytes]]:
        # Its own connection: a long read must not hold the shared reader's lock.
        conn = self._connect()
        try:
            cursor = conn.execute("SELECT key, data FROM records WHERE source = ?", (source,))
            while chunk := cursor.fetchmany(10_000):
                for key, data in chunk:
                    yield key, data.encode() if isinstance(data, str) else data
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite read failed: {exc}") from exc
        finally:
            conn.close()

    # --- read side ----------------------------------------------------------------

    def product_parts(self, code: str) -> dict[str, StoredPart] | None:
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
            grouped.setdefault(source, []).append(data.encode() if isinstance(data, str) else data)
        marks = {source: (run_id, _dt(changed)) for source, run_id, changed in lineage}
        return parts_from(grouped, marks)

    async def product_parts_async(self, code: str) -> dict[str, StoredPart] | None:
        # In place, on the loop: cheaper than the hop to a thread, which under load
        # also made the loop queue for the GIL behind the reading threads.
        return self.product_parts(code)

    async def aclose(self) -> None:
        pass

    def list_products(
        self, *, search: str | None, limit: int, offset: int
    ) -> tuple[list[str], int]:
        clause, params = "", []
        if search:
            pattern = contains_pattern(search.casefold())
            clause = "WHERE code_folded LIKE ? ESCAPE '\\' OR name_folded LIKE ? ESCAPE '\\'"
            params = [pattern, pattern]
        with self._read() as conn:
            total = conn.execute(f"SELECT count(*) FROM products {clause}", params).fetchone()[0]
            codes = conn.execute(
                f"SELECT code FROM products {clause} ORDER BY code LIMIT ? OFFSET ?",
                [*params, limit, offset],
            ).fetchall()
        return [c[0] for c in codes], total

    def changes_since(self, cursor: int) -> tuple[int, set[str]]:
        with self._read() as conn:
            rows = conn.execute(
                "SELECT id, product_code FROM changes WHERE id > ? ORDER BY id", (cursor,)
            ).fetchall()
        if not rows:
            return cursor, set()
        return rows[-1][0], {r[1] for r in rows}

    def trim_changes(self, before: datetime) -> int:
        with self._write() as conn:
            return conn.execute("DELETE FROM changes WHERE changed_at < ?", (_ts(before),)).rowcount

    def latest_change(self) -> int:
        with self._read() as conn:
            row = conn.execute("SELECT max(id) FROM changes").fetchone()
        return int(row[0] or 0)


# --- helpers ----------------------------------------------------------------------


def _state(conn: sqlite3.Connection, source: str) -> tuple[int, int]:
    conn.execute("INSERT OR IGNORE INTO source_state (source) VALUES (?)", (source,))
    row = conn.execute(
        "SELECT data_version, row_count FROM source_state WHERE source = ?", (source,)
    ).fetchone()
    return int(row[0]), int(row[1])


def _record_touched(
    conn: sqlite3.Connection, source: str, codes: set[str], run_id: int | None, at: str
) -> None:
    """Lineage, the product list and the change feed, for the products a change touched."""
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS touched (code TEXT PRIMARY KEY) WITHOUT ROWID")
    conn.execute("DELETE FROM touched")
    conn.executemany("INSERT INTO touched VALUES (?)", [(c,) for c in codes])
    conn.execute(
        "INSERT INTO lineage (product_code, source, run_id, changed_at)"
        " SELECT code, ?, ?, ? FROM touched WHERE true"
        " ON CONFLICT (product_code, source) DO UPDATE"
        " SET run_id = excluded.run_id, changed_at = excluded.changed_at",
        (source, run_id, at),
    )
    conn.execute(
        "DELETE FROM products WHERE code IN (SELECT code FROM touched)"
        " AND NOT EXISTS (SELECT 1 FROM records r WHERE r.product_code = products.code)"
    )
    # A product no source knows any more has no parts, so no lineage either.
    conn.execute(
        "DELETE FROM lineage WHERE product_code IN (SELECT code FROM touched)"
        " AND NOT EXISTS (SELECT 1 FROM records r WHERE r.product_code = lineage.product_code)"
    )
    conn.execute(
        "INSERT INTO products (code, name, code_folded, name_folded)"
        " SELECT code, name, casefold(code), casefold(name) FROM ("
        # ERP rows are keyed by product code: a primary-key lookup, where matching on
        # product_code lets the planner (without statistics) scan every ERP row.
        "   SELECT t.code, (SELECT json_extract(r.data, '$.product_name') FROM records r"
        "                   WHERE r.source = 'erp_stock' AND r.key = t.code) AS name"
        "   FROM touched t"
        "   WHERE EXISTS (SELECT 1 FROM records r WHERE r.product_code = t.code))"
        " WHERE true"  # an upsert's SELECT needs a WHERE to parse ON CONFLICT
        " ON CONFLICT (code) DO UPDATE SET name = excluded.name,"
        " name_folded = excluded.name_folded"
    )
    conn.execute(
        "INSERT INTO changes (product_code, changed_at) SELECT code, ? FROM touched", (at,)
    )


def _finish(conn: sqlite3.Connection, run_id: int, outcome: RunOutcome) -> bool:
    c = outcome.counts
    cur = conn.execute(
        "UPDATE runs SET status = ?, finished_at = ?, attempts = ?, fetched = ?, inserted = ?,"
        " updated = ?, deleted = ?, invalid = ?, used_backup = ?, error = ?, error_type = ?,"
        " invalid_reasons = ? WHERE id = ? AND status IN (?, ?)",
        (
            outcome.status.value,
            _ts(outcome.finished_at),
            outcome.attempts,
            c.fetched,
            c.inserted,
            c.updated,
            c.deleted,
            c.invalid,
            int(outcome.used_backup),
            outcome.error,
            outcome.error_type,
            json.dumps(list(outcome.invalid_reasons)) if outcome.invalid_reasons else None,
            run_id,
            *UNFINISHED,
        ),
    )
    return cur.rowcount == 1


def _run(row: tuple[object, ...]) -> Run:
    return run_from_row(row, _dt)


def _ts(value: datetime) -> str:
    """UTC ISO text: one offset for every row, so that text order is time order."""
    if value.tzinfo is None:
        raise ValueError("naive datetime given to the store")
    return value.astimezone(UTC).isoformat()


def _dt(value: object) -> datetime | None:
    return datetime.fromisoformat(str(value)) if value else None


def _casefold(text: str | None) -> str | None:
    return text.casefold() if text is not None else None


def _day(value: date | None) -> str | None:
    return value.isoformat() if value else None
