"""Stopping while a claim is being written: the run it inserts never stays ``queued``.

The fault matrix (tests/e2e/test_fault_matrix.py) found a run left ``queued`` in the store
after a clean SIGTERM: the schedule loop was cancelled while its claim ran on a thread,
the thread went on and inserted the run, and nobody finished it.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from catalog_refresher.domain.runs import RunStatus
from catalog_refresher.store.coordination import Claim, Solo
from catalog_refresher.store.sqlite import SqliteStore
from catalog_refresher.testing import FakeClock, StaticSource
from tests.service_harness import build

ERP = [{"product_code": "TEST-001", "product_name": "Test Product 1", "stock": 100}]


class HeldClaim(Solo):
    """Solo, but each claim waits on its thread until the test lets it go."""

    def __init__(self, store: SqliteStore) -> None:
        super().__init__(store)
        self.entered = threading.Event()
        self.release = threading.Event()

    def claim(self, source: str, **options: Any) -> Claim:
        self.entered.set()
        assert self.release.wait(10), "the test never let the claim go"
        return super().claim(source, **options)


async def test_a_claim_written_while_the_service_stops_ends_cancelled(tmp_path: Path) -> None:
    """stop() while the first run's claim is on its thread: once the claim is written, its
    run is recorded cancelled (not started, its source never called), and none is queued."""
    clock = FakeClock()
    store = SqliteStore(tmp_path / "c.db")
    coordinator = HeldClaim(store)
    erp = StaticSource("erp_stock", ERP, clock=clock)
    h = build(
        tmp_path / "c.db",
        clock,
        {"erp_stock": erp},
        store=store,
        coordinator=coordinator,
        offload=asyncio.to_thread,
    )
    await h.service.prepare()
    h.service.start()
    assert await asyncio.to_thread(coordinator.entered.wait, 10)
    stopping = asyncio.create_task(h.service.stop())
    await clock.settle()  # stop() has cancelled the loop that waits on the claim
    coordinator.release.set()
    await asyncio.wait_for(stopping, 10)
    runs = h.runs("erp_stock")
    assert [(run.status, run.error) for run in runs] == [
        (RunStatus.CANCELLED, "cancelled: the service stopped before it started")
    ]
    assert erp.calls == 0
