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


async def test_health_is_unhealthy_in_time_when_the_store_cannot_be_reached(
    tmp_path: Path,
) -> None:
    """With the store's reads stuck and its writes refused for want of a connection (the
    database down), health says Unhealthy naming the cause as the budget runs out, not
    Degraded "busy"; a write refused for another reason (a full disk) stays "busy"."""
    from catalog_refresher.errors import StoreError, StoreUnreachable

    clock = FakeClock()
    store = _Held(tmp_path / "c.db")
    h = build(tmp_path / "c.db", clock, {"erp_stock": StaticSource("erp_stock", ERP)}, store=store)
    await h.service.prepare()
    await h.service.refresh("erp_stock")
    control = LocalControl(h.service, store, clock, asyncio.to_thread)

    async def health_while_held() -> object:
        # (the second probe shares the first one's read, still stuck on its thread)
        probe = asyncio.ensure_future(control.health())
        await clock.settle()
        assert await asyncio.to_thread(store.reading.wait, 10)
        await clock.advance(HEALTH_BUDGET)
        return await probe

    store.gate.clear()
    store.reading.clear()
    try:
        h.service.outage.failed("erp_stock", StoreError("SQLite write failed: disk I/O error"))
        busy = await health_while_held()
        assert busy.status is Health.DEGRADED  # type: ignore[attr-defined]
        h.service.outage.failed("erp_stock", StoreUnreachable("PostgreSQL cannot be reached: x"))
        down = await health_while_held()
        assert down.status is Health.UNHEALTHY  # type: ignore[attr-defined]
        entry = down.entries["catalog-refresh"]  # type: ignore[attr-defined]
        assert "PostgreSQL cannot be reached" in entry.description
    finally:
        store.gate.set()
