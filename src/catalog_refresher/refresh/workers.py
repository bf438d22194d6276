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
import multiprocessing
import signal
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime

from catalog_refresher.domain.specs import SOURCE_IDS
from catalog_refresher.errors import StoreError
from catalog_refresher.refresh.pipeline import Job, Pipeline, Processed
from catalog_refresher.sources.base import Payload
from catalog_refresher.store.open import open_store

_pipeline: Pipeline | None = None


def _start_worker(store_url: str) -> None:
    """Runs once in each worker process."""
    # Ctrl-C and a service manager's SIGTERM reach the whole process group; the
    # service decides when its workers stop (after the grace period), not they.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    global _pipeline
    _pipeline = Pipeline(open_store(store_url), now=lambda: datetime.now(UTC))


def _process(job: Job, payload: Payload) -> Processed:
    assert _pipeline is not None, "worker not started"
    return _pipeline.process(job, payload)


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
            initargs=(self._store_url,),
        )

    async def __call__(self, job: Job, payload: Payload) -> Processed:
        slot = SOURCE_IDS.index(job.source) % len(self._executors)
        try:
            return await asyncio.wrap_future(self._executors[slot].submit(_process, job, payload))
        except BrokenProcessPool as exc:
            # The worker died (killed, out of memory): replace it for the next run.
            self._executors[slot] = self._executor()
            raise StoreError("the refresh worker process died; nothing was applied") from exc

    def shutdown(self) -> None:
        for executor in self._executors:
            executor.shutdown(wait=True, cancel_futures=True)
