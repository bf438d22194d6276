"""The shared store: PostgreSQL, for several replicas on one database (contract 7).

Same tables and the same atomic, fenced ``apply`` as the SQLite store (the
moves are shared: ``store/sql_store.py``); the rows of a large change go in
with ``COPY`` into a temporary table and are merged set-based. Each store is
one replica of a cluster: its runs carry its id, and only the unfinished runs
of replicas that stopped heart-beating count as abandoned. Who runs which
source is its ``coordinator``'s business (``store/postgres_cluster.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout

from catalog_refresher.clock import Clock
from catalog_refresher.errors import StoreError, StoreUnreachable
from catalog_refresher.store.base import RowDelete, RowWrite, StoredPart
from catalog_refresher.store.migrations import Step
from catalog_refresher.store.postgres_cluster import PostgresCoordinator
from catalog_refresher.store.rows import contains_pattern, native_time, parts_from
from catalog_refresher.store.sql_store import TOUCHED_BY_RUN, SqlStore

#: A replica whose heartbeat is older than this is dead: its sources are taken over.
DEFAULT_LEASE = timedelta(seconds=30)
#: Connections for the API's reads on the event loop (``product_parts``).
READ_POOL_SIZE = 4
#: How long a read or write waits for a pooled connection (psycopg_pool's default is 30 s):
#: with the server down, a read fails fast with a 503 rather than hanging its client.
CONNECTION_WAIT = 3.0
#: How long one attempt to open a connection may take (a server that does not answer).
CONNECT_TIMEOUT = 3
#: How long the pool retries a lost connection, backing off (1 s, 2 s, 4 s…), before it
#: gives up until the next read or write asks again; psycopg_pool's 300 s backoff would
#: leave the store unread for up to half a minute after a long outage ends.
RECONNECT_GIVE_UP = 10.0
#: Serialises migrations of replicas that start together.
_MIGRATION_LOCK = 0x636174616C6F67  # "catalog"

Connection = psycopg.Connection[tuple[object, ...]]
AsyncConnection = psycopg.AsyncConnection[tuple[object, ...]]


#: The touched codes that lost a row and have none left in any source.
_GONE_FOR_GOOD = (
    "SELECT t.code FROM touched t WHERE t.gone"
    " AND NOT EXISTS (SELECT 1 FROM records r WHERE r.product_code = t.code LIMIT 1)"
)


class PostgresStore(SqlStore[Connection]):
    """``Store`` on a PostgreSQL database shared by replicas."""

    dialect = "postgres"
    placeholder = "%s"
    # apply's reads of the run and the source's state lock them: a concurrent
    # finish or apply of the same source waits, then sees what this one wrote.
    row_lock = " FOR UPDATE"
    _drop_products = (
        # Each statement probes the index of the few codes it names (``= ANY`` of an
        # array): as joins with ``touched`` the planner chose a scan of the whole table
        # (products, lineage: 0.16-0.22 s each at 1M rows, for 5,000 gone codes), and the
        # check that a gone code has no row left merged with a scan of the whole index.
        "DELETE FROM products WHERE code = ANY(ARRAY(" + _GONE_FOR_GOOD + "))",
        # A product no source knows any more has no parts, so no lineage either.
        "DELETE FROM lineage WHERE product_code = ANY(ARRAY(" + _GONE_FOR_GOOD + "))",
    )
    _name_products = (
        "INSERT INTO products (code, name)"
        " SELECT t.code, e.data::json ->> 'product_name' FROM touched t"
        # ERP rows are keyed by product code: a join on the primary key.
        " LEFT JOIN records e ON e.source = 'erp_stock' AND e.key = t.code"
        " WHERE (t.named OR NOT EXISTS (SELECT 1 FROM products p WHERE p.code = t.code))"
        " AND (NOT t.gone OR EXISTS (SELECT 1 FROM records r WHERE r.product_code = t.code))"
        " ON CONFLICT (code) DO UPDATE SET name = excluded.name"
        " WHERE products.name IS DISTINCT FROM excluded.name"
    )
    _refresh_products = (*_drop_products, _name_products)
    _unname_gone = (
        "UPDATE products SET name = NULL"
        " WHERE code = ANY(ARRAY(SELECT code FROM touched WHERE gone)) AND name IS NOT NULL"
    )

    def __init__(
        self,
        url: str,
        *,
        lease: timedelta = DEFAULT_LEASE,
        pool_size: int = 8,
        clock: Clock | None = None,
    ) -> None:
        """``clock`` replaces the database's clock in the cluster's decisions (tests)."""
        self._url = url
        self._read_pool: AsyncConnectionPool[AsyncConnection] | None = None
        self._reads_lock = asyncio.Lock()
        try:
            # One plain connection first: it fails fast with the server's own reason
            # (refused, no such database, authentication), where the pool only times out.
            psycopg.connect(url, connect_timeout=10).close()
            self._pool = ConnectionPool(
                url,
                min_size=1,
                max_size=pool_size,
                kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT},
                configure=_configure,
                # A connection the server dropped (it restarted) is replaced, not handed out.
                check=ConnectionPool.check_connection,
                timeout=CONNECTION_WAIT,
                reconnect_timeout=RECONNECT_GIVE_UP,
                open=True,
                name="catalog-store",
            )
            self._pool.wait(timeout=10)
        except (psycopg.Error, OSError) as exc:  # the pool raises PoolTimeout (a psycopg.Error)
            raise StoreError(f"cannot connect to the PostgreSQL store: {_safe(exc)}") from exc
        self.coordinator = PostgresCoordinator(self._tx, self._insert_run, lease=lease, clock=clock)
        """This replica's say in who runs what; shares the store's connections."""

    def close(self) -> None:
        """Leave the cluster (peers need not wait out the lease) and disconnect."""
        with contextlib.suppress(StoreError):  # if not, the lease runs out by itself
            self.coordinator.leave()
        self._pool.close()

    async def aclose(self) -> None:
        if self._read_pool is not None:
            await self._read_pool.close()
            self._read_pool = None

    # --- plumbing ---------------------------------------------------------------

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        """One transaction; rolled back whole on any error."""
        try:
            with self._pool.connection() as conn, conn.transaction():
                yield conn
        except psycopg.Error as exc:
            raise _store_error(exc) from exc

    # On a server, reads and writes alike take one transaction on a pooled connection.
    _write = _tx
    _read = _tx

    @contextmanager
    def _migrating(self) -> Iterator[Connection]:
        # Every step in one transaction, under a lock replicas starting together share.
        with self._tx() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            yield conn

    def _run_step(self, conn: Connection, step: Step) -> None:
        # As bytes: a script is several statements, which a parametrised query cannot be.
        conn.execute(step.sql.encode())
        conn.execute(step.record.encode())

    def migrate(self, *, to: int | None = None) -> None:
        super().migrate(to=to)
        self.coordinator.heartbeat()  # join the cluster

    def _time_param(self, value: datetime) -> datetime:
        return value  # psycopg adapts an aware datetime

    def _day_param(self, value: date | None) -> date | None:
        return value

    def _time_value(self, value: object) -> datetime | None:
        return native_time(value)

    def _run_columns(self) -> dict[str, object]:
        return {"owner": self.coordinator.replica_id}

    # --- staging a run's rows ---------------------------------------------------

    def _delete_rows(self, conn: Connection, source: str, deletes: Sequence[RowDelete]) -> None:
        _stage(conn, "gone", ['key TEXT COLLATE "C"'], ((d.key,) for d in deletes))
        conn.execute(
            "DELETE FROM records r USING gone g WHERE r.source = %s AND r.key = g.key", (source,)
        )

    def _write_rows(
        self, conn: Connection, source: str, writes: Sequence[RowWrite], run_id: int, at: object
    ) -> None:
        _stage(
            conn,
            "written",
            ['key TEXT COLLATE "C"', 'product_code TEXT COLLATE "C"', "day DATE", "data TEXT"],
            ((w.key, w.product_code, w.day, w.data.decode()) for w in writes),
        )
        conn.execute(
            "INSERT INTO records (source, key, product_code, day, data, run_id, changed_at)"
            " SELECT %s, key, product_code, day, data, %s, %s FROM written"
            " ON CONFLICT (source, key) DO UPDATE SET data = excluded.data,"
            " run_id = excluded.run_id, changed_at = excluded.changed_at",
            (source, run_id, at),
        )

    def _stage_touched(
        self,
        conn: Connection,
        touched: Mapping[str, bool],
        *,
        named: bool,
        written: tuple[str, int] | None = None,
    ) -> None:
        columns = [
            'code TEXT COLLATE "C" PRIMARY KEY',
            "gone BOOLEAN NOT NULL",
            "named BOOLEAN NOT NULL",
        ]
        _stage(conn, "touched", columns, ((c, g, named) for c, g in touched.items()))
        if written is not None:
            conn.execute(self._q(TOUCHED_BY_RUN), (named, *written))
        # A temporary table has no statistics until analysed: without them the planner
        # guesses a handful of rows and picks nested loops for a million.
        conn.execute("ANALYZE touched")

    def _write_names(self, conn: Connection, names: Iterable[tuple[str, str | None]]) -> None:
        _stage(conn, "named", ['code TEXT COLLATE "C" PRIMARY KEY', "name TEXT"], iter(names))
        conn.execute(
            "INSERT INTO products (code, name) SELECT code, name FROM named"
            " ON CONFLICT (code) DO UPDATE SET name = excluded.name"
            " WHERE products.name IS DISTINCT FROM excluded.name"
        )

    def _stage_keys(self, conn: Connection, keys: Iterable[tuple[str, str, date | None]]) -> None:
        columns = ['key TEXT COLLATE "C" PRIMARY KEY', 'product_code TEXT COLLATE "C"', "day DATE"]
        _stage(conn, "vkeys", columns, iter(keys))
        conn.execute("ANALYZE vkeys")

    # --- what only PostgreSQL reads this way --------------------------------------

    def _rows_of_keys(self, conn: Connection, source: str, keys: list[str]) -> list[Any]:
        # One index probe per key, whatever the statistics say: right after a first load
        # (before autovacuum's ANALYZE) the planner believed the source held a few thousand
        # rows and answered ``key IN (...)`` by scanning all of them (0.26 s per 500 keys
        # at 1M rows; 15,000 keys probed so: 0.2 s).
        return conn.execute(
            "SELECT r.key, r.data FROM unnest(%s::text[]) AS wanted(key) CROSS JOIN LATERAL"
            " (SELECT key, data FROM records WHERE source = %s AND key = wanted.key) AS r",
            (keys, source),
        ).fetchall()

    def _search(self, search: str) -> tuple[str, list[object]]:
        pattern = contains_pattern(search)
        # ILIKE folds case as the database's LC_CTYPE does: beyond ASCII (Ž, ž) in
        # any UTF-8 locale. Codes are stored byte-ordered (COLLATE "C", which folds
        # ASCII only), so their search takes the database's default collation.
        return 'WHERE (code COLLATE "default") ILIKE %s OR name ILIKE %s', [pattern, pattern]

    def _abandoned(self, conn: Connection) -> tuple[str, str, list[object]]:
        """Never a live peer's runs: only those of replicas gone or out of lease."""
        return (
            "abandoned: its replica stopped or lost its lease",
            " AND (owner IS NULL OR owner NOT IN"
            "   (SELECT id FROM replicas WHERE heartbeat_at > %s))",
            [self.coordinator.live_since(conn)],
        )

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
            raise _store_error(exc) from exc

    async def product_parts(self, code: str) -> dict[str, StoredPart] | None:
        try:
            pool = await self._reads()
            async with pool.connection() as conn:
                cursor = await conn.execute(_PRODUCT_PARTS, (code, code))
                return _parts(await cursor.fetchall())
        except psycopg.Error as exc:
            raise _store_error(exc) from exc

    async def _reads(self) -> AsyncConnectionPool[AsyncConnection]:
        """The pool of the loop's reads, opened on first use (it belongs to the loop)."""
        async with self._reads_lock:
            if self._read_pool is None:
                pool = AsyncConnectionPool(
                    self._url,
                    min_size=1,
                    max_size=READ_POOL_SIZE,
                    kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT},
                    configure=_configure_async,
                    check=AsyncConnectionPool.check_connection,
                    timeout=CONNECTION_WAIT,
                    reconnect_timeout=RECONNECT_GIVE_UP,
                    open=False,
                    name="catalog-reads",
                )
                try:
                    await pool.open(wait=True, timeout=CONNECTION_WAIT)
                except BaseException:
                    await pool.close()  # asked again on the next read
                    raise
                self._read_pool = pool
            return self._read_pool


# --- helpers ----------------------------------------------------------------------


def _configure(conn: Connection) -> None:
    # Times are stored and compared in UTC whatever the server's setting.
    conn.execute("SET TIME ZONE 'UTC'")


async def _configure_async(conn: AsyncConnection) -> None:
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
                native_time(changed_at),
            )
    return parts_from(grouped, marks)


def _store_error(exc: psycopg.Error) -> StoreError:
    """``StoreUnreachable`` when no connection could be had or it was lost (SQLSTATE class
    08, or 57P: the server shutting down), else ``StoreError``."""
    state = getattr(exc, "sqlstate", None) or ""
    lost = isinstance(exc, psycopg.OperationalError) and (
        not state or state.startswith(("08", "57P"))
    )
    if isinstance(exc, PoolTimeout) or lost:
        return StoreUnreachable(f"PostgreSQL cannot be reached: {_safe(exc)}")
    return StoreError(f"PostgreSQL failed: {_safe(exc)}")


def _safe(exc: BaseException) -> str:
    """The error without the connection string (it may hold a password)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.split(" with conninfo")[0]


def _stage(
    conn: Connection, table: str, columns: Sequence[str], rows: Iterator[tuple[object, ...]]
) -> None:
    """Fill a temporary table (dropped at commit) with ``COPY``; again, in the same
    transaction, with other rows (``StreamedWrites`` stage a chunk at a time)."""
    conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {table} ({', '.join(columns)}) ON COMMIT DROP")
    conn.execute(f"TRUNCATE {table}")
    names = ", ".join(c.split()[0] for c in columns)
    with conn.cursor().copy(f"COPY {table} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
