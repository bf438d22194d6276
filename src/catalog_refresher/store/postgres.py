"""The shared store: PostgreSQL, for several replicas on one database (contract 7).

Same tables and the same atomic, fenced ``apply`` as the SQLite store; the
rows of a large change go in with ``COPY`` into a temporary table and are
merged set-based. Besides ``Store`` it is the cluster's ``Coordinator``
(``refresh/cluster.py``): who runs which source is decided in the database,
with the database's clock, so replicas whose clocks drift still agree.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from importlib import resources

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from catalog_refresher.clock import Clock
from catalog_refresher.domain.runs import Run, RunOutcome, RunStatus, Trigger
from catalog_refresher.errors import RunFenced, StoreError
from catalog_refresher.refresh.cluster import Claim
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

#: A replica whose heartbeat is older than this is dead: its sources are taken over.
DEFAULT_LEASE = timedelta(seconds=30)
#: Connections for the API's reads on the event loop (``product_parts_async``).
READ_POOL_SIZE = 4
#: Serialises migrations of replicas that start together.
_MIGRATION_LOCK = 0x636174616C6F67  # "catalog"


class PostgresStore:
    """``Store`` and ``Coordinator`` on a PostgreSQL database shared by replicas."""

    def __init__(
        self,
        url: str,
        *,
        lease: timedelta = DEFAULT_LEASE,
        pool_size: int = 8,
        clock: Clock | None = None,
    ) -> None:
        """``clock`` replaces the database's clock in the cluster's decisions (tests)."""
        self.replica_id = f"{uuid.uuid4().hex[:12]}"
        self._clock = clock
        self._url = url
        self._read_pool: AsyncConnectionPool[psycopg.AsyncConnection[tuple[object, ...]]] | None
        self._read_pool = None
        self._reads_lock = asyncio.Lock()
        self.lease = lease
        self.heartbeat_every: timedelta | None = lease / 3
        try:
            # One plain connection first: it fails fast with the server's own reason
            # (refused, no such database, authentication), where the pool only times out.
            psycopg.connect(url, connect_timeout=10).close()
            self._pool = ConnectionPool(
                url,
                min_size=1,
                max_size=pool_size,
                kwargs={"autocommit": True},
                configure=_configure,
                open=True,
                name="catalog-store",
            )
            self._pool.wait(timeout=10)
        except (psycopg.Error, OSError) as exc:  # the pool raises PoolTimeout (a psycopg.Error)
            raise StoreError(f"cannot connect to the PostgreSQL store: {_safe(exc)}") from exc

    def close(self) -> None:
        """Leave the cluster (peers need not wait out the lease) and disconnect."""
        with contextlib.suppress(StoreError):  # if not, the lease runs out by itself
            self.leave()
        self._pool.close()

    # --- plumbing ---------------------------------------------------------------

    @contextmanager
    def _tx(self) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
        """One transaction; rolled back whole on any error."""
        try:
            with self._pool.connection() as conn, conn.transaction():
                yield conn
        except psycopg.Error as exc:
            raise StoreError(f"PostgreSQL failed: {_safe(exc)}") from exc

    def migrate(self) -> None:
        scripts = sorted(
            (
                p
                for p in resources.files("catalog_refresher.store.sql.postgres").iterdir()
                if p.name.endswith(".sql")
            ),
            key=lambda p: p.name,
        )
        with self._tx() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations"
                " (version INTEGER PRIMARY KEY, name TEXT NOT NULL)"
            )
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            for script in scripts:
                version = int(script.name.split("_", 1)[0])
                if version not in done:
                    conn.execute(script.read_text().encode())
                    conn.execute(
                        "INSERT INTO schema_migrations VALUES (%s, %s)", (version, script.name)
                    )
        self.heartbeat()  # join the cluster

    # --- runs ---------------------------------------------------------------------

    def create_run(self, *, source: str, trigger: Trigger, forced: bool, at: datetime) -> Run:
        with self._tx() as conn:
            return _insert_run(conn, source, trigger, forced, at, self.replica_id)

    def mark_running(self, run_id: int, *, at: datetime) -> bool:
        with self._tx() as conn:
            cur = conn.execute(
                "UPDATE runs SET status = %s, started_at = %s WHERE id = %s AND status = %s",
                (RunStatus.RUNNING.value, at, run_id, RunStatus.QUEUED.value),
            )
            return cur.rowcount == 1

    def finish_run(self, run_id: int, outcome: RunOutcome) -> bool:
        with self._tx() as conn:
            return _finish(conn, run_id, outcome)

    def cancel_abandoned_runs(self, *, at: datetime) -> int:
        """Cancel unfinished runs whose replica is gone (never a live peer's)."""
        with self._tx() as conn:
            cur = conn.execute(
                "UPDATE runs SET status = %s, finished_at = %s,"
                " error = 'abandoned: its replica stopped or lost its lease'"
                " WHERE status IN (%s, %s) AND (owner IS NULL OR owner NOT IN"
                "   (SELECT id FROM replicas WHERE heartbeat_at > %s))",
                (RunStatus.CANCELLED.value, at, *UNFINISHED, self._now(conn) - self.lease),
            )
            return cur.rowcount

    def get_run(self, run_id: int) -> Run | None:
        with self._tx() as conn:
            row = conn.execute(
                f"SELECT {RUN_COLUMNS} FROM runs WHERE id = %s", (run_id,)
            ).fetchone()
        return run_from_row(row, _time) if row else None

    def list_runs(self, query: RunQuery) -> tuple[list[Run], int]:
        clause, params = run_filter(query, "%s", lambda at: at)  # psycopg adapts datetimes
        with self._tx() as conn:
            total = _one(conn.execute(f"SELECT count(*) FROM runs {clause}", params))
            rows = conn.execute(
                f"SELECT {RUN_COLUMNS} FROM runs {clause} ORDER BY id DESC LIMIT %s OFFSET %s",
                [*params, query.limit, query.offset],
            ).fetchall()
        return [run_from_row(r, _time) for r in rows], int(total)

    def source_history(self, source: str) -> SourceHistory:
        with self._tx() as conn:
            recent = conn.execute(RECENT_RUNS.format(p="%s"), (source,)).fetchall()
            state = conn.execute(SOURCE_STATE.format(p="%s"), (source,)).fetchone()
        return history_from(recent, state, _time)

    # --- data ---------------------------------------------------------------------

    def apply(self, run_id: int, changeset: Changeset, outcome: RunOutcome) -> Applied:
        source, at = changeset.source, outcome.finished_at
        with self._tx() as conn:
            status = conn.execute(
                "SELECT status FROM runs WHERE id = %s FOR UPDATE", (run_id,)
            ).fetchone()
            if status is None or status[0] != RunStatus.RUNNING.value:
                raise RunFenced(f"run {run_id} is {status[0] if status else 'gone'}; not applied")
            version = _lock_state(conn, source)
            if version != changeset.expected_version:
                raise IndexOutOfDate(
                    f"{source} changed (version {version}, diffed against"
                    f" {changeset.expected_version})"
                )
            if changeset.deletes:
                _stage(
                    conn, "gone", ['key TEXT COLLATE "C"'], ((d.key,) for d in changeset.deletes)
                )
                conn.execute(
                    "DELETE FROM records r USING gone g WHERE r.source = %s AND r.key = g.key",
                    (source,),
                )
            if changeset.writes:
                _stage(
                    conn,
                    "written",
                    [
                        'key TEXT COLLATE "C"',
                        'product_code TEXT COLLATE "C"',
                        "day DATE",
                        "data TEXT",
                    ],
                    ((w.key, w.product_code, w.day, w.data.decode()) for w in changeset.writes),
                )
                # product_code and day are functions of the key: an update leaves them be.
                conn.execute(
                    "INSERT INTO records (source, key, product_code, day, data, run_id, changed_at)"
                    " SELECT %s, key, product_code, day, data, %s, %s FROM written"
                    " ON CONFLICT (source, key) DO UPDATE SET data = excluded.data,"
                    " run_id = excluded.run_id, changed_at = excluded.changed_at",
                    (source, run_id, at),
                )
            touched = {d.product_code for d in changeset.deletes}
            touched.update(w.product_code for w in changeset.writes)
            if touched:
                version += 1
                _record_touched(conn, source, touched, run_id, at)
            counts = outcome.counts
            conn.execute(
                "UPDATE source_state SET data_version = %s, row_count = row_count + %s,"
                " last_success_run_id = %s, last_success_at = %s WHERE source = %s",
                (version, counts.inserted - counts.deleted, run_id, at, source),
            )
            if not _finish(conn, run_id, outcome):  # pragma: no cover - locked above
                raise RunFenced(f"run {run_id} finished meanwhile; not applied")
        return Applied(products=frozenset(touched), version=version)

    def purge_before(self, source: str, day: date, *, at: datetime) -> int:
        with self._tx() as conn:
            version = _lock_state(conn, source)
            gone = conn.execute(
                "DELETE FROM records WHERE source = %s AND day < %s RETURNING product_code",
                (source, day),
            ).fetchall()
            if gone:
                _record_touched(conn, source, {str(g[0]) for g in gone}, None, at)
                conn.execute(
                    "UPDATE source_state SET data_version = %s, row_count = row_count - %s"
                    " WHERE source = %s",
                    (version + 1, len(gone), source),
                )
        return len(gone)

    def data_version(self, source: str) -> int:
        with self._tx() as conn:
            row = conn.execute(
                "SELECT data_version FROM source_state WHERE source = %s", (source,)
            ).fetchone()
        return int(str(row[0])) if row else 0

    def iter_rows(self, source: str) -> Iterator[tuple[str, bytes]]:
        # A server-side cursor: a million rows arrive in chunks, never all at once.
        try:
            with (
                self._pool.connection() as conn,
                conn.transaction(),
                conn.cursor(name="iter_rows") as cursor,
            ):
                cursor.itersize = 10_000
                cursor.execute("SELECT key, data FROM records WHERE source = %s", (source,))
                for key, data in cursor:
                    yield str(key), str(data).encode()
        except psycopg.Error as exc:
            raise StoreError(f"PostgreSQL failed: {_safe(exc)}") from exc

    # --- read side ----------------------------------------------------------------

    def product_parts(self, code: str) -> dict[str, StoredPart] | None:
        with self._tx() as conn:
            return _parts(conn.execute(_PRODUCT_PARTS, (code, code)).fetchall())

    async def product_parts_async(self, code: str) -> dict[str, StoredPart] | None:
        try:
            pool = await self._reads()
            async with pool.connection() as conn:
                cursor = await conn.execute(_PRODUCT_PARTS, (code, code))
                return _parts(await cursor.fetchall())
        except psycopg.Error as exc:
            raise StoreError(f"PostgreSQL failed: {_safe(exc)}") from exc

    async def _reads(self) -> AsyncConnectionPool[psycopg.AsyncConnection[tuple[object, ...]]]:
        """The pool of the loop's reads, opened on first use (it belongs to the loop)."""
        async with self._reads_lock:
            if self._read_pool is None:
                pool = AsyncConnectionPool(
                    self._url,
                    min_size=1,
                    max_size=READ_POOL_SIZE,
                    kwargs={"autocommit": True},
                    configure=_configure_async,
                    open=False,
                    name="catalog-reads",
                )
                await pool.open(wait=True, timeout=10)
                self._read_pool = pool
            return self._read_pool

    async def aclose(self) -> None:
        if self._read_pool is not None:
            await self._read_pool.close()
            self._read_pool = None

    def list_products(
        self, *, search: str | None, limit: int, offset: int
    ) -> tuple[list[str], int]:
        clause, params = "", []
        if search:
            pattern = contains_pattern(search)
            # ILIKE folds case as the database's LC_CTYPE does: beyond ASCII (Ž, ž) in
            # any UTF-8 locale. Codes are stored byte-ordered (COLLATE "C", which folds
            # ASCII only), so their search takes the database's default collation.
            clause = 'WHERE (code COLLATE "default") ILIKE %s OR name ILIKE %s'
            params = [pattern, pattern]
        with self._tx() as conn:
            total = _one(conn.execute(f"SELECT count(*) FROM products {clause}", params))
            codes = conn.execute(
                f"SELECT code FROM products {clause} ORDER BY code LIMIT %s OFFSET %s",
                [*params, limit, offset],
            ).fetchall()
        return [str(c[0]) for c in codes], int(total)

    def changes_since(self, cursor: int) -> tuple[int, set[str]]:
        with self._tx() as conn:
            rows = conn.execute(
                "SELECT id, product_code FROM changes WHERE id > %s ORDER BY id", (cursor,)
            ).fetchall()
        if not rows:
            return cursor, set()
        return int(str(rows[-1][0])), {str(r[1]) for r in rows}

    def trim_changes(self, before: datetime) -> int:
        with self._tx() as conn:
            return conn.execute("DELETE FROM changes WHERE changed_at < %s", (before,)).rowcount

    def latest_change(self) -> int:
        with self._tx() as conn:
            return int(_one(conn.execute("SELECT coalesce(max(id), 0) FROM changes")))

    def last_successes(self) -> dict[str, datetime | None]:
        """Each source's last successful run, whichever replica ran it."""
        with self._tx() as conn:
            rows = conn.execute("SELECT source, last_success_at FROM source_state").fetchall()
        return {str(source): _time(at) for source, at in rows}

    # --- the cluster (refresh/cluster.py's Coordinator) ---------------------------

    def _now(self, conn: psycopg.Connection[tuple[object, ...]]) -> datetime:
        """The cluster's time: the database's clock, so that replicas' clocks may drift."""
        if self._clock is not None:
            return self._clock.now()
        row = conn.execute("SELECT now()").fetchone()
        now = _time(row[0] if row else None)
        assert now is not None
        return now

    def heartbeat(self) -> None:
        with self._tx() as conn:
            now = self._now(conn)
            # An upsert: a replica cut off long enough to be forgotten comes back.
            conn.execute(
                "INSERT INTO replicas (id, started_at, heartbeat_at) VALUES (%s, %s, %s)"
                " ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
                (self.replica_id, now, now),
            )
            # Forget replicas dead for a day; their rows only mattered for takeover.
            conn.execute("DELETE FROM replicas WHERE heartbeat_at < %s", (now - timedelta(days=1),))

    def claim(
        self,
        source: str,
        *,
        trigger: Trigger,
        forced: bool,
        at: datetime,
        interval: timedelta | None,
    ) -> Claim:
        """Create a run of ``source`` for this replica if it may run it now.

        Refused while another live replica runs the source (``run`` is that run),
        and for a scheduled claim (``interval`` given) while the source's last
        scheduled run across the cluster is less than ``interval`` old.
        A claim held by a dead replica is taken over and its run cancelled.
        """
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO source_claims (source) VALUES (%s) ON CONFLICT DO NOTHING", (source,)
            )
            now = self._now(conn)
            owner, run_id, released, scheduled_at, alive = conn.execute(
                "SELECT c.owner, c.run_id, c.released, c.scheduled_at, r.heartbeat_at > %s"
                " FROM source_claims c LEFT JOIN replicas r ON r.id = c.owner"
                " WHERE c.source = %s FOR UPDATE OF c",
                (now - self.lease, source),
            ).fetchone() or (None, None, True, None, None)
            if not released and owner != self.replica_id and alive:
                running = conn.execute(
                    f"SELECT {RUN_COLUMNS} FROM runs WHERE id = %s", (run_id,)
                ).fetchone()
                if running is not None and running[3] in UNFINISHED:
                    return Claim(
                        granted=False,
                        run=run_from_row(running, _time),
                        retry_after=self.lease,
                    )
            if not released and owner != self.replica_id:
                # Its replica died mid-run (or finished without releasing): take over.
                conn.execute(
                    "UPDATE runs SET status = %s, finished_at = %s,"
                    " error = 'abandoned: its replica stopped or lost its lease'"
                    " WHERE id = %s AND status IN (%s, %s)",
                    (RunStatus.CANCELLED.value, at, run_id, *UNFINISHED),
                )
            if interval is not None and isinstance(scheduled_at, datetime):
                due = scheduled_at + interval
                if due > now:
                    return Claim(granted=False, retry_after=due - now)
            run = _insert_run(conn, source, trigger, forced, at, self.replica_id)
            conn.execute(
                "UPDATE source_claims SET owner = %s, run_id = %s, claimed_at = %s,"
                " released = false, scheduled_at = CASE WHEN %s THEN %s ELSE scheduled_at END"
                " WHERE source = %s",
                (self.replica_id, run.id, now, interval is not None, now, source),
            )
            return Claim(granted=True, run=run)

    def release(self, source: str, run_id: int) -> None:
        with self._tx() as conn:
            conn.execute(
                "UPDATE source_claims SET released = true"
                " WHERE source = %s AND owner = %s AND run_id = %s",
                (source, self.replica_id, run_id),
            )

    def leave(self) -> None:
        """Say this replica is gone, so its peers need not wait out its lease."""
        with self._tx() as conn:
            conn.execute("DELETE FROM replicas WHERE id = %s", (self.replica_id,))


# --- helpers ----------------------------------------------------------------------


def _configure(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    # Times are stored and compared in UTC whatever the server's setting.
    conn.execute("SET TIME ZONE 'UTC'")


async def _configure_async(conn: psycopg.AsyncConnection[tuple[object, ...]]) -> None:
    await conn.execute("SET TIME ZONE 'UTC'")


#: A product's rows and lineage in one statement, so both come from one snapshot.
_PRODUCT_PARTS = (
    "SELECT 0, source, key, data, NULL::bigint, NULL::timestamptz"
    " FROM records WHERE product_code = %s"
    " UNION ALL SELECT 1, source, NULL, NULL, run_id, changed_at"
    " FROM lineage WHERE product_code = %s"
    " ORDER BY 1, 2, 3"
)


def _parts(rows: Sequence[Sequence[object]]) -> dict[str, StoredPart] | None:
    grouped: dict[str, list[bytes]] = {}
    marks: dict[str, tuple[int | None, datetime | None]] = {}
    for kind, source, _, data, run_id, changed_at in rows:
        if kind == 0:
            grouped.setdefault(str(source), []).append(str(data).encode())
        else:
            marks[str(source)] = (
                int(str(run_id)) if run_id is not None else None,
                _time(changed_at),
            )
    return parts_from(grouped, marks)


def _safe(exc: BaseException) -> str:
    """The error without the connection string (it may hold a password)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.split(" with conninfo")[0]


def _one(cursor: psycopg.Cursor[tuple[object, ...]]) -> int:
    row = cursor.fetchone()
    assert row is not None
    return int(str(row[0]))


def _time(value: object) -> datetime | None:
    if value is None:
        return None
    assert isinstance(value, datetime)
    return value


def _insert_run(
    conn: psycopg.Connection[tuple[object, ...]],
    source: str,
    trigger: Trigger,
    forced: bool,
    at: datetime,
    owner: str,
) -> Run:
    run_id = _one(
        conn.execute(
            "INSERT INTO runs (source, trigger, status, forced, queued_at, owner)"
            " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
            (source, trigger.value, RunStatus.QUEUED.value, forced, at, owner),
        )
    )
    return Run(
        id=run_id,
        source=source,
        trigger=trigger,
        status=RunStatus.QUEUED,
        forced=forced,
        queued_at=at,
    )


def _lock_state(conn: psycopg.Connection[tuple[object, ...]], source: str) -> int:
    """The source's data version, its state row locked until the transaction ends."""
    conn.execute("INSERT INTO source_state (source) VALUES (%s) ON CONFLICT DO NOTHING", (source,))
    return _one(
        conn.execute(
            "SELECT data_version FROM source_state WHERE source = %s FOR UPDATE", (source,)
        )
    )


def _stage(
    conn: psycopg.Connection[tuple[object, ...]],
    table: str,
    columns: Sequence[str],
    rows: Iterator[tuple[object, ...]],
) -> None:
    """Fill a temporary table (dropped at commit) with ``COPY``."""
    conn.execute(f"CREATE TEMP TABLE {table} ({', '.join(columns)}) ON COMMIT DROP")
    names = ", ".join(c.split()[0] for c in columns)
    with conn.cursor().copy(f"COPY {table} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _record_touched(
    conn: psycopg.Connection[tuple[object, ...]],
    source: str,
    codes: set[str],
    run_id: int | None,
    at: datetime,
) -> None:
    """Lineage, the product list and the change feed, for the products a change touched."""
    _stage(conn, "touched", ['code TEXT COLLATE "C" PRIMARY KEY'], ((c,) for c in codes))
    # A temporary table has no statistics until analysed: without them the planner
    # guesses a handful of rows and picks nested loops for a million.
    conn.execute("ANALYZE touched")
    conn.execute(
        "INSERT INTO lineage (product_code, source, run_id, changed_at)"
        " SELECT code, %s, %s, %s FROM touched"
        " ON CONFLICT (product_code, source) DO UPDATE"
        " SET run_id = excluded.run_id, changed_at = excluded.changed_at",
        (source, run_id, at),
    )
    conn.execute(
        "DELETE FROM products p USING touched t WHERE p.code = t.code"
        " AND NOT EXISTS (SELECT 1 FROM records r WHERE r.product_code = p.code)"
    )
    # A product no source knows any more has no parts, so no lineage either.
    conn.execute(
        "DELETE FROM lineage l USING touched t WHERE l.product_code = t.code"
        " AND NOT EXISTS (SELECT 1 FROM records r WHERE r.product_code = l.product_code)"
    )
    conn.execute(
        "INSERT INTO products (code, name)"
        " SELECT t.code, e.data::json ->> 'product_name' FROM touched t"
        # ERP rows are keyed by product code: a join on the primary key.
        " LEFT JOIN records e ON e.source = 'erp_stock' AND e.key = t.code"
        " WHERE EXISTS (SELECT 1 FROM records r WHERE r.product_code = t.code)"
        " ON CONFLICT (code) DO UPDATE SET name = excluded.name"
    )
    conn.execute(
        "INSERT INTO changes (product_code, changed_at) SELECT code, %s FROM touched", (at,)
    )


def _finish(conn: psycopg.Connection[tuple[object, ...]], run_id: int, outcome: RunOutcome) -> bool:
    c = outcome.counts
    cur = conn.execute(
        "UPDATE runs SET status = %s, finished_at = %s, attempts = %s, fetched = %s,"
        " inserted = %s, updated = %s, deleted = %s, invalid = %s, used_backup = %s,"
        " error = %s, error_type = %s, invalid_reasons = %s WHERE id = %s AND status IN (%s, %s)",
        (
            outcome.status.value,
            outcome.finished_at,
            outcome.attempts,
            c.fetched,
            c.inserted,
            c.updated,
            c.deleted,
            c.invalid,
            outcome.used_backup,
            outcome.error,
            outcome.error_type,
            json.dumps(list(outcome.invalid_reasons)) if outcome.invalid_reasons else None,
            run_id,
            *UNFINISHED,
        ),
    )
    return cur.rowcount == 1
