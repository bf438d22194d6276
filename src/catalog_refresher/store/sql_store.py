"""What the two SQL stores share: the algorithm, with the dialect left to each.

``SqliteStore`` and ``PostgresStore`` keep the same tables and make the same
moves. ``apply`` fences on the run's status, checks the source's version,
deletes, writes, records the products it touched, moves the source's state and
finishes the run, all in one transaction; the audit log, the change feed and
the migrations are kept the same way. This module holds those moves once. A
subclass says what really differs:

- how a transaction is opened (``_write``, ``_read``, ``_migrating``) and how
  its driver's errors become ``StoreError``;
- the placeholder (``placeholder``) and row lock (``row_lock``) in shared SQL,
  written with ``{p}`` and ``{lock}``;
- how a time or a day goes in and how a time comes back (``_time_param``,
  ``_day_param``, ``_time_value``);
- how a run's rows reach the database (``_delete_rows``, ``_write_rows``,
  ``_stage_touched``): ``executemany`` on SQLite, ``COPY`` into temporary
  tables on PostgreSQL;
- the SQL text that keeps the product list current (``_refresh_products``) and
  the product search (``_search``);
- the reads the dialect shapes by itself: a product's parts (on the event
  loop), a source's rows, and which unfinished runs count as abandoned.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import date, datetime
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from catalog_refresher import progress
from catalog_refresher.domain.runs import Run, RunOutcome, RunStatus, Trigger
from catalog_refresher.errors import IndexOutOfDate, RunFenced
from catalog_refresher.store.base import (
    MANY_PRODUCTS,
    STREAM_CHUNK,
    Applied,
    Changeset,
    KeyedRows,
    RowDelete,
    RowWrite,
    RunQuery,
    SourceHistory,
    StreamedWrites,
    SyncState,
    heads_of,
    names_of,
)
from catalog_refresher.store.control_state import ControlState
from catalog_refresher.store.migrations import APPLIED, BOOKKEEPING, Step, plan
from catalog_refresher.store.pins import Pinned
from catalog_refresher.store.rows import (
    NAME_SOURCE,
    RECENT_RUNS,
    RUN_COLUMNS,
    SOURCE_STATE,
    SYNC_STATE,
    UNFINISHED,
    history_from,
    run_filter,
    run_from_row,
    touched_by,
)


class Cursor(Protocol):
    """The part of a DB-API cursor the shared moves use (sqlite3's and psycopg's)."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    """The part of a DB-API connection the shared moves use."""

    def execute(self, query: str, params: Sequence[Any] = ..., /) -> Cursor: ...


Conn = TypeVar("Conn", bound=Connection)

# --- the SQL both dialects run, with {p} for the placeholder and {lock} for a row lock ---

_RUN_STATUS = "SELECT status FROM runs WHERE id = {p}{lock}"
_START = "UPDATE runs SET status = {p}, started_at = {p} WHERE id = {p} AND status = {p}"
_FINISH = (
    "UPDATE runs SET status = {p}, finished_at = {p}, attempts = {p}, fetched = {p},"
    " inserted = {p}, updated = {p}, deleted = {p}, invalid = {p}, used_backup = {p},"
    " error = {p}, error_type = {p}, invalid_reasons = {p}, mode = {p}, cursor_before = {p},"
    " cursor_after = {p}, not_modified = {p} WHERE id = {p} AND status IN ({p}, {p})"
)
_CANCEL = "UPDATE runs SET status = {p}, finished_at = {p}, error = {p} WHERE status IN ({p}, {p})"
_ADD_STATE = "INSERT INTO source_state (source) VALUES ({p}) ON CONFLICT DO NOTHING"
_VERSION = "SELECT data_version FROM source_state WHERE source = {p}"
_VERSION_AND_COUNT = "SELECT data_version, row_count FROM source_state WHERE source = {p}"
#: Keys per ``IN (...)`` list of ``rows_by_key`` (well under SQLite's 32,766 parameters).
KEYS_PER_READ = 500
_APPLIED_STATE = (
    "UPDATE source_state SET data_version = {p}, row_count = row_count + {p},"
    " last_success_run_id = {p}, last_success_at = {p} WHERE source = {p}"
)
_SYNC = (
    "UPDATE source_state SET sync_cursor = {p}, sync_etag = {p}, sync_last_modified = {p},"
    " sync_body_hash = {p}, sync_full_at = {p}, sync_runs_since_full = {p} WHERE source = {p}"
)
_PURGE = "DELETE FROM records WHERE source = {p} AND day < {p} RETURNING product_code"
_PURGED_STATE = (
    "UPDATE source_state SET data_version = {p}, row_count = row_count - {p} WHERE source = {p}"
)
# ``WHERE true``: SQLite cannot otherwise tell the upsert's ON from a join's.
_LINEAGE = (
    "INSERT INTO lineage (product_code, source, run_id, changed_at)"
    " SELECT code, {p}, {p}, {p} FROM touched WHERE true"
    " ON CONFLICT (product_code, source) DO UPDATE"
    " SET run_id = excluded.run_id, changed_at = excluded.changed_at"
)
#: The codes of the rows a run wrote into a source, added to ``touched`` in SQL: a first
#: load's million codes are never held in Python (``_apply_streamed``).
TOUCHED_BY_RUN = (
    "INSERT INTO touched (code, gone, named) SELECT product_code, false, {p} FROM records"
    " WHERE source = {p} AND run_id = {p} ON CONFLICT (code) DO NOTHING"
)
_TOUCHED_COUNT = "SELECT count(*) FROM touched"
_TOUCHED_CODES = "SELECT code FROM touched"
_CHANGED = "INSERT INTO changes (product_code, changed_at) SELECT code, {p} FROM touched"
_CHANGES_SINCE = "SELECT id, product_code FROM changes WHERE id > {p} ORDER BY id"
_TRIM = "DELETE FROM changes WHERE changed_at < {p}"
_LATEST = "SELECT coalesce(max(id), 0) FROM changes"
_SUCCESSES = "SELECT source, last_success_at FROM source_state"


def as_bytes(data: str | bytes | memoryview) -> bytes:
    """A row's JSON as the drivers hand it back (text, or bytes), as bytes."""
    return data.encode() if isinstance(data, str) else bytes(data)


@functools.cache
def _sql(template: str, placeholder: str, lock: str) -> str:
    return template.format(p=placeholder, lock=lock)


class SqlStore(Pinned, ControlState, ABC, Generic[Conn]):
    """The ``Store`` moves both SQL stores make; subclasses give the dialect."""

    dialect: ClassVar[str]
    """Its folder of SQL files under ``store/sql/``."""
    placeholder: ClassVar[str]
    row_lock: ClassVar[str] = ""
    """Appended to reads of rows ``apply`` changes, where the database locks rows."""
    _drop_products: ClassVar[tuple[str, ...]]
    """Statements run after the lineage upsert, over ``touched``: drop the products no
    source holds any more, and their lineage. Only a ``gone`` code can have left."""
    _name_products: ClassVar[str]
    """Then add or rename the others, reading the ERP's names from its rows. Only a
    new code or a ``named`` change can give a product a new name."""
    _refresh_products: ClassVar[tuple[str, ...]]
    """Both of the above, in order."""
    _unname_gone: ClassVar[str]
    """Instead of ``_name_products`` when the names came with the change (the ERP's
    rows, given by ``_write_names``): the products whose ERP row went lose its name."""

    # --- what a dialect provides ----------------------------------------------------

    @abstractmethod
    def _write(self) -> AbstractContextManager[Conn]:
        """One write transaction, rolled back whole on any error."""

    @abstractmethod
    def _read(self) -> AbstractContextManager[Conn]:
        """A connection to read from."""

    @abstractmethod
    def _migrating(self) -> AbstractContextManager[Conn]:
        """A connection for migrations, held by one migrating process at a time."""

    @abstractmethod
    def _run_step(self, conn: Conn, step: Step) -> None:
        """Run ``step``'s script and its ``record``, in one transaction."""

    @abstractmethod
    def _time_param(self, value: datetime) -> object: ...

    @abstractmethod
    def _day_param(self, value: date | None) -> object: ...

    @abstractmethod
    def _time_value(self, value: object) -> datetime | None: ...

    @abstractmethod
    def _delete_rows(self, conn: Conn, source: str, deletes: Sequence[RowDelete]) -> None: ...

    @abstractmethod
    def _write_rows(
        self, conn: Conn, source: str, writes: Sequence[RowWrite], run_id: int, at: object
    ) -> None:
        """Insert or replace ``writes``; ``product_code`` and ``day`` of a replaced row
        stay as they are (they are functions of the key)."""

    @abstractmethod
    def _stage_touched(
        self,
        conn: Conn,
        touched: Mapping[str, bool],
        *,
        named: bool,
        written: tuple[str, int] | None = None,
    ) -> None:
        """Fill the temporary table ``touched (code, gone, named)``: each code of
        ``touched``, whether a row of it was deleted (``gone``: the product may have left
        the catalog), and ``named``: the change was to the rows that name products;
        ``written`` (source, run): and the codes of the rows that run wrote there, not
        gone unless ``touched`` says so (``TOUCHED_BY_RUN``)."""

    @abstractmethod
    def _write_names(self, conn: Conn, names: Iterable[tuple[str, str | None]]) -> None:
        """Insert or rename the products ``names`` gives (code, name); an unchanged
        name is not rewritten."""

    @abstractmethod
    def _stage_keys(self, conn: Conn, keys: Iterable[tuple[str, str, date | None]]) -> None:
        """Fill the temporary table ``vkeys (key, product_code, day)`` with ``keys``."""

    @abstractmethod
    def _search(self, search: str) -> tuple[str, list[object]]:
        """The ``WHERE`` clause over ``products`` matching ``search``, and its parameters."""

    @abstractmethod
    def _abandoned(self, conn: Conn) -> tuple[str, str, list[object]]:
        """Why runs left unfinished are cancelled, and the condition (and parameters)
        that narrows them to the abandoned ones."""

    def _run_columns(self) -> dict[str, object]:
        """Columns of a new run beyond the shared ones."""
        return {}

    # --- plumbing ---------------------------------------------------------------------

    def _q(self, template: str) -> str:
        """``template`` (shared SQL) in this dialect."""
        return _sql(template, self.placeholder, self.row_lock)

    def migrate(self, *, to: int | None = None) -> None:
        """Bring the schema up to date (``store/migrations.py``); ``to``: no further
        than that version (tests build an older release's store with it)."""
        with self._migrating() as conn:
            conn.execute(BOOKKEEPING)
            applied = {int(row[0]) for row in conn.execute(APPLIED).fetchall()}
            for step in plan(self.dialect, applied, to=to):
                self._run_step(conn, step)

    # --- runs -------------------------------------------------------------------------

    def create_run(self, *, source: str, trigger: Trigger, forced: bool, at: datetime) -> Run:
        with self._write() as conn:
            return self._insert_run(conn, source=source, trigger=trigger, forced=forced, at=at)

    def _insert_run(
        self, conn: Conn, *, source: str, trigger: Trigger, forced: bool, at: datetime
    ) -> Run:
        """Record a new ``queued`` run, inside the caller's transaction."""
        values = {
            "source": source,
            "trigger": trigger.value,
            "status": RunStatus.QUEUED.value,
            "forced": forced,
            "queued_at": self._time_param(at),
            **self._run_columns(),
        }
        places = ", ".join([self.placeholder] * len(values))
        row = conn.execute(
            f"INSERT INTO runs ({', '.join(values)}) VALUES ({places}) RETURNING id",
            list(values.values()),
        ).fetchone()
        return Run(
            id=int(row[0]),
            source=source,
            trigger=trigger,
            status=RunStatus.QUEUED,
            forced=forced,
            queued_at=at,
        )

    def mark_running(self, run_id: int, *, at: datetime) -> bool:
        running, queued = RunStatus.RUNNING.value, RunStatus.QUEUED.value
        with self._write() as conn:
            cur = conn.execute(self._q(_START), (running, self._time_param(at), run_id, queued))
            return cur.rowcount == 1

    def finish_run(self, run_id: int, outcome: RunOutcome) -> bool:
        with self._write() as conn:
            return self._finish(conn, run_id, outcome)

    def _finish(self, conn: Conn, run_id: int, outcome: RunOutcome) -> bool:
        """Write the run's end, if it is still unfinished."""
        c = outcome.counts
        reasons = json.dumps(list(outcome.invalid_reasons)) if outcome.invalid_reasons else None
        cur = conn.execute(
            self._q(_FINISH),
            (
                outcome.status.value,
                self._time_param(outcome.finished_at),
                outcome.attempts,
                c.fetched,
                c.inserted,
                c.updated,
                c.deleted,
                c.invalid,
                outcome.used_backup,
                outcome.error,
                outcome.error_type,
                reasons,
                outcome.mode.value,
                outcome.cursor_before,
                outcome.cursor_after,
                outcome.not_modified,
                run_id,
                *UNFINISHED,
            ),
        )
        return cur.rowcount == 1

    def cancel_abandoned_runs(self, *, at: datetime) -> int:
        with self._write() as conn:
            reason, narrowed, params = self._abandoned(conn)
            cancelled = (RunStatus.CANCELLED.value, self._time_param(at), reason, *UNFINISHED)
            return conn.execute(self._q(_CANCEL) + narrowed, (*cancelled, *params)).rowcount

    def get_run(self, run_id: int) -> Run | None:
        with self._read() as conn:
            row = conn.execute(
                f"SELECT {RUN_COLUMNS} FROM runs WHERE id = {self.placeholder}", (run_id,)
            ).fetchone()
        return run_from_row(row, self._time_value) if row else None

    def list_runs(self, query: RunQuery) -> tuple[list[Run], int]:
        p = self.placeholder
        clause, params = run_filter(query, p, self._time_param)
        with self._read() as conn:
            total = conn.execute(f"SELECT count(*) FROM runs {clause}", params).fetchone()[0]
            rows = conn.execute(
                f"SELECT {RUN_COLUMNS} FROM runs {clause} ORDER BY id DESC LIMIT {p} OFFSET {p}",
                [*params, query.limit, query.offset],
            ).fetchall()
        return [run_from_row(r, self._time_value) for r in rows], int(total)

    def source_history(self, source: str) -> SourceHistory:
        with self._read() as conn:
            recent = conn.execute(self._q(RECENT_RUNS), (source,)).fetchall()
            state = conn.execute(self._q(SOURCE_STATE), (source,)).fetchone()
            pinned = self.pinned_run(conn, source)
        history = history_from(recent, state, self._time_value)
        return dataclasses.replace(history, pinned_run_id=pinned)

    # --- data -------------------------------------------------------------------------

    def apply(
        self,
        run_id: int,
        changeset: Changeset,
        outcome: RunOutcome,
        *,
        stamp: Callable[[], datetime] | None = None,
    ) -> Applied:
        source, at = changeset.source, self._time_param(outcome.finished_at)
        with self._write() as conn:
            status = conn.execute(self._q(_RUN_STATUS), (run_id,)).fetchone()
            if status is None or status[0] != RunStatus.RUNNING.value:
                raise RunFenced(f"run {run_id} is {status[0] if status else 'gone'}; not applied")
            version = self._lock_state(conn, source)
            if version != changeset.expected_version:
                raise IndexOutOfDate(
                    f"{source} changed (version {version}, diffed against"
                    f" {changeset.expected_version})"
                )
            self.refuse_if_pinned(conn, source)
            if isinstance(changeset.writes, StreamedWrites):
                changed, products = self._apply_streamed(conn, changeset, run_id, at)
            else:
                changed, products = self._apply_held(conn, changeset, run_id, at)
            if changed:
                version += 1
            if stamp is not None:
                # The writes are done: the run finishes now, as good as when its data
                # becomes visible (the commit follows), never seconds before.
                outcome = dataclasses.replace(outcome, finished_at=stamp())
            counts = outcome.counts
            conn.execute(
                self._q(_APPLIED_STATE),
                (
                    version,
                    counts.inserted - counts.deleted,
                    run_id,
                    self._time_param(outcome.finished_at),
                    source,
                ),
            )
            if changed:
                self.record_version(conn, source, run_id, outcome, changeset.versions)
            if changeset.sync is not None:
                self._write_sync(conn, source, changeset.sync)
            if not self._finish(conn, run_id, outcome):  # pragma: no cover - fenced above
                raise RunFenced(f"run {run_id} finished meanwhile; not applied")
        return Applied(products=products, version=version)

    def _apply_held(
        self, conn: Conn, changeset: Changeset, run_id: int, at: object
    ) -> tuple[bool, frozenset[str]]:
        """``apply``'s changes of held rows: whether any product was touched, and which."""
        source = changeset.source
        self.capture_before(conn, source, run_id, changeset)
        if changeset.deletes:
            self._delete_rows(conn, source, changeset.deletes)
            progress.advance(progress.ROWS, len(changeset.deletes))
        if changeset.writes:
            self._write_rows(conn, source, changeset.writes, run_id, at)
            progress.advance(progress.ROWS, len(changeset.writes))
        touched = touched_by(
            (d.product_code for d in changeset.deletes),
            (code for _, code, _ in heads_of(changeset.writes)),
        )
        if touched:
            names = names_of(changeset.writes) if source == NAME_SOURCE else None
            self._record_touched(conn, source, touched, run_id, at, names)
        return bool(touched), frozenset(touched)

    def _apply_streamed(
        self, conn: Conn, changeset: Changeset, run_id: int, at: object
    ) -> tuple[bool, frozenset[str] | None]:
        """``apply``'s changes of ``StreamedWrites``, taken in one pass: chunk by chunk,
        each captured, written and named before the next is made; the products touched
        are then staged from the rows this run wrote, never held in memory."""
        source, deletes = changeset.source, changeset.deletes
        capture = self.has_versions(conn, source)
        if deletes:
            if capture:
                self.capture_keys(
                    conn, source, run_id, ((d.key, d.product_code, None) for d in deletes)
                )
            self._delete_rows(conn, source, deletes)
            progress.advance(progress.ROWS, len(deletes))
        naming = source == NAME_SOURCE
        rows = iter(changeset.writes)
        while chunk := list(itertools.islice(rows, STREAM_CHUNK)):
            if capture:
                self.capture_keys(
                    conn, source, run_id, ((w.key, w.product_code, w.day) for w in chunk)
                )
            self._write_rows(conn, source, chunk, run_id, at)
            if naming:
                self._write_names(conn, ((w.product_code, w.name) for w in chunk))
            progress.advance(progress.ROWS, len(chunk))
        gone = dict.fromkeys((d.product_code for d in deletes), True)
        self._stage_touched(conn, gone, named=naming, written=(source, run_id))
        count = int(conn.execute(_TOUCHED_COUNT).fetchone()[0])
        if not count:
            return False, frozenset()
        self._record_staged(conn, source, run_id, at, names_written=naming)
        if count > MANY_PRODUCTS:
            return True, None
        return True, frozenset(str(row[0]) for row in conn.execute(_TOUCHED_CODES).fetchall())

    def purge_before(self, source: str, day: date, *, at: datetime) -> int:
        with self._write() as conn:
            version = self._lock_state(conn, source)
            gone = conn.execute(self._q(_PURGE), (source, self._day_param(day))).fetchall()
            if gone:
                codes = touched_by((str(g[0]) for g in gone), ())
                self._record_touched(conn, source, codes, None, self._time_param(at))
                conn.execute(self._q(_PURGED_STATE), (version + 1, len(gone), source))
            self.purge_versions(conn, source, day)
        return len(gone)

    def _lock_state(self, conn: Conn, source: str) -> int:
        """The source's data version, its state row locked until the transaction ends."""
        conn.execute(self._q(_ADD_STATE), (source,))
        return int(conn.execute(self._q(_VERSION + "{lock}"), (source,)).fetchone()[0])

    def _record_touched(
        self,
        conn: Conn,
        source: str,
        touched: Mapping[str, bool],
        run_id: int | None,
        at: object,
        names: Iterable[tuple[str, str | None]] | None = None,
    ) -> None:
        """Lineage, the product list and the change feed, for the products a change
        touched (``touched_by``); ``names``: the written products' names, when they come
        with the change (``names_of``: reading them back from a million rows' JSON, and
        folding them in SQL, was 5 of the 6 s of a first load's product list)."""
        self._stage_touched(conn, touched, named=source == NAME_SOURCE)
        self._record_staged(conn, source, run_id, at, names)

    def _record_staged(
        self,
        conn: Conn,
        source: str,
        run_id: int | None,
        at: object,
        names: Iterable[tuple[str, str | None]] | None = None,
        *,
        names_written: bool = False,
    ) -> None:
        """``_record_touched`` for the products staged in ``touched``; ``names_written``:
        the change's names are in the product list already (``_apply_streamed``)."""
        conn.execute(self._q(_LINEAGE), (source, run_id, at))
        for statement in self._drop_products:
            conn.execute(statement)
        if names is not None:
            self._write_names(conn, names)
        if names is not None or names_written:
            conn.execute(self._unname_gone)
        else:
            conn.execute(self._name_products)
        conn.execute(self._q(_CHANGED), (at,))

    def _write_sync(self, conn: Conn, source: str, sync: SyncState) -> None:
        full_at = None if sync.full_at is None else self._time_param(sync.full_at)
        conn.execute(
            self._q(_SYNC),
            (
                sync.cursor,
                sync.etag,
                sync.last_modified,
                sync.body_hash,
                full_at,
                sync.runs_since_full,
                source,
            ),
        )

    def sync_state(self, source: str) -> SyncState:
        with self._read() as conn:
            row = conn.execute(self._q(SYNC_STATE), (source,)).fetchone()
        if row is None:
            return SyncState()
        cursor, etag, modified, body_hash, full_at, runs = row
        return SyncState(
            cursor=cursor,
            etag=etag,
            last_modified=modified,
            body_hash=body_hash,
            full_at=self._time_value(full_at),
            runs_since_full=int(runs),
        )

    def reset_sync(self, source: str) -> None:
        with self._write() as conn:
            conn.execute(self._q(_ADD_STATE), (source,))
            self._write_sync(conn, source, SyncState())

    def rows_by_key(self, source: str, keys: Collection[str]) -> KeyedRows:
        wanted = list(keys)
        found: dict[str, bytes] = {}
        with self._read() as conn:
            state = conn.execute(self._q(_VERSION_AND_COUNT), (source,)).fetchone()
            for start in range(0, len(wanted), KEYS_PER_READ):
                rows = self._rows_of_keys(conn, source, wanted[start : start + KEYS_PER_READ])
                found.update((str(k), as_bytes(d)) for k, d in rows)
        version, count = (int(state[0]), int(state[1])) if state else (0, 0)
        return KeyedRows(version=version, row_count=count, rows=found)

    def _rows_of_keys(self, conn: Conn, source: str, keys: list[str]) -> list[Any]:
        """``(key, data)`` of the stored ones among ``keys`` (at most ``KEYS_PER_READ``)."""
        p = self.placeholder
        marks = ", ".join([p] * len(keys))
        return conn.execute(
            f"SELECT key, data FROM records WHERE source = {p} AND key IN ({marks})",
            (source, *keys),
        ).fetchall()

    def data_version(self, source: str) -> int:
        with self._read() as conn:
            row = conn.execute(self._q(_VERSION), (source,)).fetchone()
        return int(row[0]) if row else 0

    # --- read side --------------------------------------------------------------------

    def list_products(
        self, *, search: str | None, limit: int, offset: int
    ) -> tuple[list[str], int]:
        p = self.placeholder
        clause, params = self._search(search) if search else ("", [])
        with self._read() as conn:
            total = conn.execute(f"SELECT count(*) FROM products {clause}", params).fetchone()[0]
            codes = conn.execute(
                f"SELECT code FROM products {clause} ORDER BY code LIMIT {p} OFFSET {p}",
                [*params, limit, offset],
            ).fetchall()
        return [str(c[0]) for c in codes], int(total)

    def changes_since(self, cursor: int) -> tuple[int, set[str]]:
        with self._read() as conn:
            rows = conn.execute(self._q(_CHANGES_SINCE), (cursor,)).fetchall()
        if not rows:
            return cursor, set()
        return int(rows[-1][0]), {str(r[1]) for r in rows}

    def trim_changes(self, before: datetime) -> int:
        with self._write() as conn:
            return conn.execute(self._q(_TRIM), (self._time_param(before),)).rowcount

    def latest_change(self) -> int:
        """The change feed's newest entry (a cache that starts follows from there)."""
        with self._read() as conn:
            return int(conn.execute(_LATEST).fetchone()[0])

    def last_successes(self) -> dict[str, datetime | None]:
        """Each source's last successful run, whichever process or replica ran it."""
        with self._read() as conn:
            rows = conn.execute(_SUCCESSES).fetchall()
        return {str(source): self._time_value(at) for source, at in rows}
