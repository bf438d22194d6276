"""``LocalControl``: what the API sees of the service, on a real SQLite store."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from catalog_refresher.control import HEALTH_BUDGET, LocalControl
from catalog_refresher.status import Health
from catalog_refresher.store.base import SourceHistory
from catalog_refresher.store.sqlite import SqliteStore
from catalog_refresher.testing import FakeClock, StaticSource
from tests.service_harness import build

ERP = [{"product_code": "P-1", "stock": 1}]


class _Held(SqliteStore):
    """A real SQLite store whose history reads wait while ``gate`` is closed, as a thread
    does while another process holds what it needs."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.gate = threading.Event()
        self.gate.set()
        self.reads = 0
        self.reading = threading.Event()

    def source_history(self, source: str) -> SourceHistory:
        self.reads += 1
        self.reading.set()
        self.gate.wait(30)
        return super().source_history(source)


async def test_health_answers_in_time_while_the_store_is_held(tmp_path: Path) -> None:
    """With the store's reads stuck, health says Degraded "did not answer within 0.8 s" as the
    budget runs out, readiness keeps its last answer, and concurrent probes share one read."""
    clock = FakeClock()
    store = _Held(tmp_path / "c.db")
    h = build(tmp_path / "c.db", clock, {"erp_stock": StaticSource("erp_stock", ERP)}, store=store)
    await h.service.prepare()
    await h.service.refresh("erp_stock")
    control = LocalControl(h.service, store, clock, asyncio.to_thread)
    assert await control.ready() is True
    store.gate.clear()
    store.reads = 0
    store.reading.clear()
    probes = [asyncio.ensure_future(control.health()) for _ in range(3)]
    ready = asyncio.ensure_future(control.ready())
    await clock.settle()
    # The read has reached the store on its thread (and is stuck there) before time runs out.
    assert await asyncio.to_thread(store.reading.wait, 10)
    await clock.advance(HEALTH_BUDGET)
    reports = await asyncio.gather(*probes)
    assert {report.status for report in reports} == {Health.DEGRADED}
    assert (
        reports[0]
        .entries["catalog-refresh"]
        .description.startswith("the store did not answer within 0.8 s")
    )
    assert await ready is True
    assert store.reads == 1  # one read in flight for all four probes
    store.gate.set()
    recovered = await control.health()
    assert recovered.entries["erp_stock"].status is Health.HEALTHY
