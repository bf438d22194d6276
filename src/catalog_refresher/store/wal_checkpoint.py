"""Checkpoints of SQLite's write-ahead log, off the writer's path.

By default SQLite copies the log back into the database file at the end of the
commit that grows it past 1,000 pages, in the committing thread. After a 1%
refresh of a million-row source that is 0.5 s of a 1.3 s apply, and many
seconds after a first load: time in which the run's result waits for nothing,
since the data is visible to readers from the commit on. A checkpoint only
bounds the log's length.

So the store's writer turns the automatic checkpoint off, and a thread of its
own makes a ``PASSIVE`` checkpoint (one that never waits for, nor blocks,
readers and writers) once the commits since the last one changed enough rows.
The thread sleeps on a condition between requests: an idle service never wakes
it. Python's ``sqlite3`` exposes no WAL hook to count the log's pages, so the
rows a commit changed (``total_changes``) stand in for them.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

#: Rows changed since the last checkpoint that make the next one due: a refresh of a
#: thousand rows or so, or a few hundred runs recorded in the audit log.
CHECKPOINT_EVERY_CHANGES = 1_000


class WalCheckpointer:
    """Makes a passive checkpoint in the background once enough rows changed."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        *,
        every_changes: int = CHECKPOINT_EVERY_CHANGES,
    ) -> None:
        self._connect = connect
        self._every = every_changes
        self._pending = 0
        self._closed = False
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    def committed(self, changes: int) -> None:
        """A commit changed ``changes`` rows; wake the thread when a checkpoint is due."""
        with self._wake:
            if self._closed:
                return
            self._pending += changes
            if self._pending < self._every:
                return
            if self._thread is None:  # started on first need: a read-only process has none
                self._thread = threading.Thread(
                    target=self._run, name="sqlite-wal-checkpoint", daemon=True
                )
                self._thread.start()
            self._wake.notify()

    def close(self) -> None:
        """Stop the thread after the checkpoint it is making, if any."""
        with self._wake:
            self._closed = True
            self._wake.notify()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        conn = self._connect()
        try:
            while True:
                with self._wake:
                    while self._pending < self._every and not self._closed:
                        self._wake.wait()
                    if self._closed:
                        return
                    self._pending = 0
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:
                    # Another process checkpointing, a disk error: the log only grows
                    # until the next attempt; the data is safe in it meanwhile.
                    log.warning("WAL checkpoint failed; retried after the next writes: %s", exc)
        finally:
            conn.close()
