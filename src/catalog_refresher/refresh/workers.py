"""The pipeline in worker processes.

Decoding a 128 MB payload holds the interpreter's lock for about a second;
in the process that serves the API that would stall every read for as long.
A ``WorkerPool`` runs ``Pipeline.process`` in separate processes instead, each
with its own store connection and the fingerprint indexes of the sources
routed to it (a source always goes to the same worker, so its index stays warm).

The atomicity rules do not change: the worker's apply commits only while the
run is still ``running`` in the database, whatever the main process decided
meanwhile (``store/base.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import gc
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime

from catalog_refresher.domain.specs import SOURCE_IDS
from catalog_refresher.errors import StoreError
from catalog_refresher.refresh.pipeline import Job, Pipeline, Processed
from catalog_refresher.sources.base import Payload
from catalog_refresher.store.open import open_store

_pipeline: Pipeline | None = None


#: What a terminal's Ctrl-C and a service manager's stop send to the whole process group.
_SHUTDOWN_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM})
#: How long ``shutdown`` lets a worker finish a job the service has given up on.
WORKER_EXIT_WAIT = 5.0
#: ``prctl(2)``: the signal the kernel sends this process when its parent ends.
_PR_SET_PDEATHSIG = 1
#: The exit code of a worker that ends because the service is gone.
ORPHANED_EXIT = 3


def _start_worker(store_url: str, parent: int) -> None:
    """Runs once in each worker process, before its first job; ``parent``: the
    service's pid."""
    # Ctrl-C and a service manager's SIGTERM reach the whole process group; the
    # service decides when its workers stop (after the grace period), not they.
    # The worker was started with both signals blocked (``_spawn_shielded``), so
    # none arrived while it started; one that did is dropped here, as ignored
    # (SIGTERM: unless the service is gone, see ``_die_with``).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with(parent)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _SHUTDOWN_SIGNALS)
    global _pipeline
    _pipeline = Pipeline(open_store(store_url, memory_map=False), now=lambda: datetime.now(UTC))


def _die_with(parent: int) -> None:
    """End this worker when the service (``parent``) ends, however it ends.

    A service killed with SIGKILL (or out of memory) runs no shutdown, and its
    worker would wait for jobs forever, holding its memory and the store: a killed
    test run left such orphans. On Linux the kernel sends SIGTERM at the parent's
    death (``PR_SET_PDEATHSIG``, through ctypes: no dependency for one call). But
    the worker ignores a SIGTERM to the process group (the service decides when it
    stops), and the kernel also sends it when the *thread* that started the worker
    ends while the service lives. So the handler ends the worker only if its parent
    is no longer ``parent`` (it was re-parented: the service is gone). The same
    check once the signal is armed covers a service that died before it was.
    """

    def on_sigterm(signum: int, frame: object) -> None:
        if os.getppid() != parent:
            os._exit(ORPHANED_EXIT)  # nothing to hand back; the store rolls back

    signal.signal(signal.SIGTERM, on_sigterm)
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):  # no libc to ask: the check only
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(ORPHANED_EXIT)


@contextlib.contextmanager
def _spawn_shielded() -> Iterator[None]:
    """Block the shutdown signals in this thread while it may start a worker.

    ``ProcessPoolExecutor.submit`` starts a worker process in the calling thread,
    and a process inherits that thread's signal mask. Without this, a Ctrl-C that
    comes while a new worker imports its modules (before ``_start_worker`` can
    ignore it) kills the worker and fails the run in flight. The service's own
    handling of the signals is only delayed by the few milliseconds of a start.
    """
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _SHUTDOWN_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def _process(job: Job, payload: Payload) -> Processed:
    assert _pipeline is not None, "worker not started"
    try:
        return _pipeline.process(job, payload)
    finally:
        release_memory()


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or ``None`` on a C library without it (musl, macOS)."""
    name = ctypes.util.find_library("c")
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    return trim if name else None


_trim = _malloc_trim()


def release_memory() -> None:
    """Give the memory a run freed back to the operating system.

    A run decodes its whole payload (a million records: over a gigabyte at its peak)
    and frees it at the end, but glibc keeps freed heap in its arenas for reuse, so the
    worker would sit at its peak size between runs. ``malloc_trim(0)`` returns every
    free page of every arena (a few milliseconds); the fingerprint index stays.
    Restarting the worker instead would also free it, but would lose the index, and
    the next run would rebuild it from the store (seconds for a million rows).
    """
    gc.collect()
    if _trim is not None:
        _trim(0)


class WorkerPool:
    """``Process`` for the runner: ``await pool(job, payload)``."""

    def __init__(self, store_url: str, workers: int) -> None:
        if workers < 1:
            raise ValueError("need at least one worker")
        self._store_url = store_url
        # spawn, not fork: the main process has threads (asyncio's offload pool).
        self._context = multiprocessing.get_context("spawn")
        self._executors = [self._executor() for _ in range(workers)]

    def _executor(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=1,
            mp_context=self._context,
            initializer=_start_worker,
            initargs=(self._store_url, os.getpid()),
        )

    async def __call__(self, job: Job, payload: Payload) -> Processed:
        slot = SOURCE_IDS.index(job.source) % len(self._executors)
        try:
            with _spawn_shielded():
                future = self._executors[slot].submit(_process, job, payload)
            return await asyncio.wrap_future(future)
        except BrokenProcessPool as exc:
            # The worker died (killed, out of memory): replace it for the next run.
            self._executors[slot] = self._executor()
            raise StoreError("the refresh worker process died; nothing was applied") from exc

    def shutdown(self) -> None:
        """Stop the workers; one still busy with a job the service gave up on (its run
        already recorded cancelled, so its apply is fenced) is ended after a short wait."""
        for executor in self._executors:
            executor.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + WORKER_EXIT_WAIT
        for worker in multiprocessing.active_children():
            worker.join(max(0.0, deadline - time.monotonic()))
            if worker.is_alive():
                worker.kill()  # it ignores SIGTERM by design
                worker.join()
