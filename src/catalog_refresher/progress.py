"""How far a long command has got: pages and bytes fetched, records decoded, rows applied,
the changed keys a diff between versions read.

The refresh path reports into whatever sink the current context holds, and the
service holds none, so a report there costs one context-variable lookup. The
command line sets a sink that draws a line on a terminal (``console/progress.py``).
A context variable rather than a parameter threaded through every layer: it follows
asyncio tasks and ``asyncio.to_thread`` by itself, so reports reach the command from
the fetch (a task) and from the validation and apply (threads) alike. A worker
process does not carry it; the one-shot commands run without workers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Protocol

PAGES = "pages"
BYTES = "bytes"
RECORDS = "records"
ROWS = "rows"
KEYS = "keys"


class ProgressSink(Protocol):
    def advance(self, counter: str, amount: int) -> None:
        """``counter`` (one of the names above) grew by ``amount``."""
        ...

    def phase(self, name: str) -> None:
        """The run is now ``name``: fetching, decoding, diffing, applying."""
        ...


_sink: ContextVar[ProgressSink | None] = ContextVar("catalog_refresher_progress", default=None)


def advance(counter: str, amount: int = 1) -> None:
    sink = _sink.get()
    if sink is not None:
        sink.advance(counter, amount)


def phase(name: str) -> None:
    sink = _sink.get()
    if sink is not None:
        sink.phase(name)


def active() -> bool:
    """Whether anyone listens (a loop may skip counting work when nobody does)."""
    return _sink.get() is not None


@contextmanager
def reporting(sink: ProgressSink) -> Iterator[None]:
    """Reports made in this context (and the tasks and threads it starts) go to ``sink``."""
    token = _sink.set(sink)
    try:
        yield
    finally:
        _sink.reset(token)
