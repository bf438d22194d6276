"""Who runs which source, decided in the PostgreSQL database replicas share (contract 7).

``PostgresCoordinator`` is the ``Coordinator`` (``store/coordination.py``) of
replicas on one PostgreSQL store. Decisions are made in the database, with
the database's clock, so replicas whose clocks drift still agree: a replica
proves it is alive by moving its heartbeat in ``replicas``; ``source_claims``
holds who runs each source now and when its last scheduled run was. It works
on its store's connections and records runs as its store does.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Protocol

import psycopg

from catalog_refresher.clock import Clock
from catalog_refresher.domain.runs import Run, RunStatus, Trigger
from catalog_refresher.store.coordination import Claim
from catalog_refresher.store.rows import RUN_COLUMNS, UNFINISHED, native_time, run_from_row

_Connection = psycopg.Connection[tuple[object, ...]]


class InsertRun(Protocol):
    """The store's record of a new ``queued`` run, inside the caller's transaction."""

    def __call__(
        self, conn: _Connection, *, source: str, trigger: Trigger, forced: bool, at: datetime
    ) -> Run: ...


class PostgresCoordinator:
    """``Coordinator`` of one replica among those sharing a PostgreSQL store."""

    def __init__(
        self,
        transaction: Callable[[], AbstractContextManager[_Connection]],
        insert_run: InsertRun,
        *,
        lease: timedelta,
        clock: Clock | None = None,
    ) -> None:
        """``transaction`` opens one on the store's pool; ``clock`` replaces the
        database's clock in the cluster's decisions (tests)."""
        self.replica_id = uuid.uuid4().hex[:12]
        self.lease = lease
        self.heartbeat_every: timedelta | None = lease / 3
        self._transaction = transaction
        self._insert_run = insert_run
        self._clock = clock

    def now(self, conn: _Connection) -> datetime:
        """The cluster's time: the database's clock, so that replicas' clocks may drift."""
        if self._clock is not None:
            return self._clock.now()
        row = conn.execute("SELECT now()").fetchone()
        now = native_time(row[0] if row else None)
        assert now is not None
        return now

    def live_since(self, conn: _Connection) -> datetime:
        """A replica whose last heartbeat is older than this is dead."""
        return self.now(conn) - self.lease

    def heartbeat(self) -> None:
        with self._transaction() as conn:
            now = self.now(conn)
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
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO source_claims (source) VALUES (%s) ON CONFLICT DO NOTHING", (source,)
            )
            now = self.now(conn)
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
                        run=run_from_row(running, native_time),
                        retry_after=self.lease,
                    )
            orphaned = False
            if not released and owner != self.replica_id:
                # Its replica died mid-run (or finished without releasing): take over.
                cancelled = conn.execute(
                    "UPDATE runs SET status = %s, finished_at = %s,"
                    " error = 'abandoned: its replica stopped or lost its lease'"
                    " WHERE id = %s AND status IN (%s, %s)",
                    (RunStatus.CANCELLED.value, at, run_id, *UNFINISHED),
                )
                # A slot whose run never finished was not run: run it now, whatever
                # the interval, and leave the cluster's grid where that slot put it.
                orphaned = cancelled.rowcount == 1
            if interval is not None and isinstance(scheduled_at, datetime) and not orphaned:
                due = scheduled_at + interval
                if due > now:
                    return Claim(granted=False, retry_after=due - now)
            run = self._insert_run(conn, source=source, trigger=trigger, forced=forced, at=at)
            moves_grid = interval is not None and not orphaned
            conn.execute(
                "UPDATE source_claims SET owner = %s, run_id = %s, claimed_at = %s,"
                " released = false, scheduled_at = CASE WHEN %s THEN %s ELSE scheduled_at END"
                " WHERE source = %s",
                (self.replica_id, run.id, now, moves_grid, now, source),
            )
            return Claim(granted=True, run=run)

    def orphaned(self) -> list[str]:
        """Sources claimed by a dead replica (no heartbeat for a lease) whose run is
        still ``queued`` or ``running``: lost slots, for a live peer to run now."""
        with self._transaction() as conn:
            rows = conn.execute(
                "SELECT c.source FROM source_claims c"
                " JOIN runs r ON r.id = c.run_id AND r.status IN (%s, %s)"
                " LEFT JOIN replicas p ON p.id = c.owner"
                " WHERE NOT c.released AND c.owner <> %s"
                " AND (p.heartbeat_at IS NULL OR p.heartbeat_at <= %s)",
                (*UNFINISHED, self.replica_id, self.live_since(conn)),
            ).fetchall()
        return sorted(str(row[0]) for row in rows)

    def release(self, source: str, run_id: int) -> None:
        with self._transaction() as conn:
            conn.execute(
                "UPDATE source_claims SET released = true"
                " WHERE source = %s AND owner = %s AND run_id = %s",
                (source, self.replica_id, run_id),
            )

    def leave(self) -> None:
        """Say this replica is gone, so its peers need not wait out its lease."""
        with self._transaction() as conn:
            conn.execute("DELETE FROM replicas WHERE id = %s", (self.replica_id,))
