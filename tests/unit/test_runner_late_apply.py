"""An apply that wins the race against RefreshTimeout still tells the cache what changed.

The fault matrix's SIGKILL cell found it on a loaded machine: the restarted service's run
timed out while its worker's apply was committing; the apply won (the run is recorded
``succeeded``, its data in the store), but no ``DataChanged`` was emitted, so aggregates
cached before the run were served stale for good.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from catalog_refresher.domain.runs import RunStatus
from catalog_refresher.refresh.pipeline import Job, Pipeline, Processed
from catalog_refresher.sources.base import Payload
from catalog_refresher.store.sqlite import SqliteStore
from catalog_refresher.testing import FakeClock, StaticSource
from tests.service_harness import build


async def test_an_apply_committed_past_the_timeout_drops_the_cached_aggregates(
    tmp_path: Path,
) -> None:
    """The second run's answer comes back after RefreshTimeout although its apply has
    committed: the run is recorded succeeded and the product is read with the new stock,
    not the cached old one."""
    clock = FakeClock()
    store = SqliteStore(tmp_path / "c.db")
    pipeline = Pipeline(store, clock.now)
    stock = {"value": 100}
    late = {"on": False}

    async def process(job: Job, payload: Payload) -> Processed:
        processed = pipeline.process(job, payload)  # commits at once
        if late["on"]:
            await clock.sleep(60)  # ...but the worker's answer comes back after the timeout
        return processed

    def records(window: object) -> list[dict[str, object]]:
        return [{"product_code": "P1", "product_name": "P 1", "stock": stock["value"]}]

    erp = StaticSource("erp_stock", records, clock=clock)
    h = build(
        tmp_path / "c.db",
        clock,
        {"erp_stock": erp},
        store=store,
        process=process,
        refresh_timeout=timedelta(seconds=10),
    )
    await h.service.prepare()
    first = await h.service.refresh("erp_stock")
    assert first.status is RunStatus.SUCCEEDED
    cached = await h.catalog.get("P1")
    assert cached is not None
    assert cached.stock.erp == 100

    stock["value"], late["on"] = 250, True
    second = asyncio.create_task(h.service.refresh("erp_stock"))
    await clock.advance(11)  # past RefreshTimeout: the timeout fires while "in the worker"
    run = await second
    assert run.status is RunStatus.SUCCEEDED  # the apply committed first and wins
    product = await h.catalog.get("P1")
    assert product is not None
    assert product.stock.erp == 250
