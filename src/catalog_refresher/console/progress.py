"""A long command's progress on the terminal: one line, redrawn in place, gone at the end.

Drawn on stderr, and only when stderr is a terminal: piped or redirected, the command
says nothing but its result (``terminal_progress`` returns no sink then).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.live import Live
from rich.text import Text

from catalog_refresher import progress

_UNITS = ("B", "kB", "MB", "GB", "TB")
_LABELS = {
    progress.RECORDS: "records decoded",
    progress.ROWS: "rows applied",
    progress.KEYS: "changed keys read",
}


def size(count: int) -> str:
    value = float(count)
    for unit in _UNITS:
        if value < 1000 or unit == _UNITS[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


class ProgressLine:
    """The counters of ``catalog_refresher.progress``, as one line of text.

    Reports come from the event loop and from threads (validation, apply): a lock
    keeps the counters whole while the terminal's refresh thread reads them.
    """

    def __init__(self, what: str) -> None:
        self._what = what
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(
            (progress.PAGES, progress.BYTES, progress.RECORDS, progress.ROWS, progress.KEYS), 0
        )
        self._phase = "starting"
        self._started = time.monotonic()

    def advance(self, counter: str, amount: int) -> None:
        with self._lock:
            self._counts[counter] = self._counts.get(counter, 0) + amount

    def phase(self, name: str) -> None:
        with self._lock:
            self._phase = name

    def text(self) -> str:
        """The phase, every counter that has moved, and the seconds so far."""
        with self._lock:
            counts, phase = dict(self._counts), self._phase
        elapsed = time.monotonic() - self._started
        parts = [f"{self._what}: {phase}"]
        if counts[progress.PAGES] or counts[progress.BYTES]:
            parts.append(
                f"{counts[progress.PAGES]:,} pages, {size(counts[progress.BYTES])} fetched"
            )
        for counter, label in _LABELS.items():
            if counts.get(counter):
                parts.append(f"{counts[counter]:,} {label}")
        parts.append(f"{elapsed:.1f} s")
        return " · ".join(parts)


@contextmanager
def terminal_progress(what: str, console: Console | None = None) -> Iterator[ProgressLine | None]:
    """Reports made inside go to a line on the terminal; nothing when not on one."""
    console = console or Console(stderr=True)
    if not console.is_terminal:
        yield None
        return
    line = ProgressLine(what)
    with (
        Live(
            console=console,
            transient=True,
            refresh_per_second=8,
            get_renderable=lambda: Text(line.text()),
        ),
        progress.reporting(line),
    ):
        yield line
