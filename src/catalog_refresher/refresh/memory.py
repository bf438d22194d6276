"""The resident size of the service's process tree, read from ``/proc`` (Linux).

The tree is the service's process and every process below it: the refresh
worker processes (``Refresh:WorkerProcesses``) and multiprocessing's helpers. A
worker holds a source's fingerprint index and the payload it decodes, so the
service's own RSS alone would miss most of a refresh's memory.

The descendants are found from each thread's ``/proc/PID/task/TID/children``
(a child is listed under the thread that started it): a few small files for the
whole tree, a fraction of a millisecond. A kernel without those files
(``CONFIG_PROC_CHILDREN`` off) leaves reading every process's ``/proc/PID/stat``:
about 20 ms for 135 processes on this shared machine. Either way the scan is paced
to cost at most ``RESCAN_CPU_SHARE`` of the time (with the children files: at
about every reading; with the full scan: every 20 s or so, never less often than
``RESCAN_AT_LEAST_EVERY``), and repeated at once when a known member is gone;
between scans a reading costs one small file per member. A worker started between
two scans is counted from the next.

The files are read with ``os.open``/``os.read``: three system calls a file rather
than the eight of ``Path.read_bytes`` (this runs every few seconds, for as long as
the service runs).

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
        children = self._children_listed()
        if children is None:
            children = self._children_from_all()
        members: set[int] = set()
        todo = [self.pid]
        while todo:
            for child in children(todo.pop()):
                if child not in members and child != self.pid:
                    members.add(child)
                    todo.append(child)
        self._members = members
        took = self._monotonic() - now
        self._rescan_every = min(took / RESCAN_CPU_SHARE, RESCAN_AT_LEAST_EVERY)

    def _children_listed(self) -> Callable[[int], list[int]] | None:
        """Children from the threads' ``children`` files; ``None`` if the kernel has none."""
        if _read(self.proc / str(self.pid) / "task" / str(self.pid) / "children") is None:
            return None

        def children(pid: int) -> list[int]:
            tasks = self.proc / str(pid) / "task"
            try:
                threads = os.listdir(tasks)
            except OSError:  # it has ended meanwhile
                return []
            found: list[int] = []
            for thread in threads:
                listed = _read(tasks / thread / "children")
                found.extend(int(child) for child in (listed or b"").split())
            return found

        return children

    def _children_from_all(self) -> Callable[[int], list[int]]:
        """Children from the parent pid in every process's ``stat``."""
        parents: dict[int, list[int]] = {}
        for pid in self._pids():
            stat = self._stat(pid)
            if stat is not None:
                parents.setdefault(stat[0], []).append(pid)
        return lambda pid: parents.get(pid, [])

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
        text = _read(self.proc / str(pid) / "stat")
        if text is None:
            return None
        # The command name (field 2) is in parentheses and may hold spaces or ")".
        fields = text[text.rfind(b")") + 2 :].split()
        try:
            return int(fields[1]), int(fields[21])  # ppid (field 4), rss (field 24)
        except (IndexError, ValueError):
            return None


def _read(path: Path) -> bytes | None:
    """A small ``/proc`` file whole (they are made at the first read), ``None`` if gone."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.read(fd, 65536)
    except OSError:  # ESRCH: the process ended between the open and the read
        return None
    finally:
        os.close(fd)


def process_tree_rss() -> RssProbe:
    """The probe of this process's tree; one that answers ``None`` without ``/proc``."""
    if not Path("/proc/self/stat").exists():
        return lambda: None
    return ProcessTreeRss()
