"""The resident size of the service's process tree, read from ``/proc`` (Linux).

The tree is the service's process and every process below it: the refresh
worker processes (``Refresh:WorkerProcesses``) and multiprocessing's helpers. A
worker holds a source's fingerprint index and the payload it decodes, so the
service's own RSS alone would miss most of a refresh's memory.

Finding the descendants means reading every process's ``/proc/PID/stat`` (not
every kernel has ``/proc/PID/task/TID/children``): a fraction of a millisecond in a
container's own PID namespace, about 20 ms for 135 processes on this shared
machine. So the scan is paced to cost at most ``RESCAN_CPU_SHARE`` of the time
(in a container: at every reading; here: every 20 s or so, never less often than
``RESCAN_AT_LEAST_EVERY``), and repeated at once when a known member is gone;
between scans a reading costs one small file per member. A worker started between
two scans (the pool starts one for the first run) is counted from the next.

The sum counts pages that processes share once per process, as RSS does (``ps``,
cgroups v1): it over-states, never under-states, what the tree holds.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

#: Reads the tree's RSS in bytes; ``None`` when it cannot be measured (no ``/proc``).
RssProbe = Callable[[], int | None]

#: The share of time the scans for new descendants (a worker restarted, a new one) may take.
RESCAN_CPU_SHARE = 0.001
#: Seconds between two scans at most, however slow a scan is.
RESCAN_AT_LEAST_EVERY = 30.0


class ProcessTreeRss:
    """``RssProbe`` of process ``pid`` (this process by default) and its descendants."""

    def __init__(
        self,
        pid: int | None = None,
        *,
        proc: Path = Path("/proc"),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.pid = os.getpid() if pid is None else pid
        self.proc = proc
        self._monotonic = monotonic
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        self._members: set[int] = set()
        self._scanned_at: float | None = None
        self._rescan_every = 0.0
        self._lock = threading.Lock()  # the periodic check and a run's check may overlap

    def __call__(self) -> int | None:
        with self._lock:
            return self._measure()

    def _measure(self) -> int | None:
        now = self._monotonic()
        if self._scanned_at is None or now - self._scanned_at >= self._rescan_every:
            self._rescan(now)
        total = self._sum()
        if total is None:  # a member ended (or its pid moved on): find the tree again
            self._rescan(now)
            total = self._sum()
        return total

    def _sum(self) -> int | None:
        """The members' RSS, or ``None`` when one has gone or is no longer ours."""
        root = self._stat(self.pid)
        if root is None:
            return None
        total = root[1]
        for pid in self._members:
            stat = self._stat(pid)
            if stat is None or (stat[0] not in self._members and stat[0] != self.pid):
                return None
            total += stat[1]
        return total * self._page

    def _rescan(self, now: float) -> None:
        self._scanned_at = now
        parents: dict[int, list[int]] = {}
        for pid in self._pids():
            stat = self._stat(pid)
            if stat is not None:
                parents.setdefault(stat[0], []).append(pid)
        members: set[int] = set()
        todo = [self.pid]
        while todo:
            for child in parents.get(todo.pop(), ()):
                if child not in members and child != self.pid:
                    members.add(child)
                    todo.append(child)
        self._members = members
        took = self._monotonic() - now
        self._rescan_every = min(took / RESCAN_CPU_SHARE, RESCAN_AT_LEAST_EVERY)

    def _pids(self) -> Iterator[int]:
        try:
            entries = list(os.scandir(self.proc))
        except OSError:
            return
        for entry in entries:
            if entry.name.isdigit():
                yield int(entry.name)

    def _stat(self, pid: int) -> tuple[int, int] | None:
        """(parent pid, resident pages) from ``/proc/PID/stat``; ``None`` if it is gone."""
        try:
            text = (self.proc / str(pid) / "stat").read_bytes()
        except OSError:
            return None
        # The command name (field 2) is in parentheses and may hold spaces or ")".
        fields = text[text.rfind(b")") + 2 :].split()
        try:
            return int(fields[1]), int(fields[21])  # ppid (field 4), rss (field 24)
        except (IndexError, ValueError):
            return None


def process_tree_rss() -> RssProbe:
    """The probe of this process's tree; one that answers ``None`` without ``/proc``."""
    if not Path("/proc/self/stat").exists():
        return lambda: None
    return ProcessTreeRss()
