"""The whole service idle, in this process on the real clock: after the ten sources'
first runs its event loop holds no timer due soon but the memory guard's (issue 11: an
idle service's CPU is what wakes it; uvicorn's 100 ms tick was nearly all of it)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

from catalog_refresher.app import Application
from catalog_refresher.config.settings import (
    ApiSettings,
    EndpointSettings,
    EndpointType,
    RefreshSettings,
    RepositoryOptions,
    Settings,
    SourceSettings,
    StoreSettings,
)
from catalog_refresher.domain.specs import SOURCE_IDS
from catalog_refresher.refresh.events import Event, RunFinished
from catalog_refresher.refresh.pressure import CHECK_EVERY
from catalog_refresher.server import serve
from catalog_refresher.sources.demo import DemoWorld

#: Timers due later than this are the sources' slots and the hourly housekeeping.
SOON = 60.0


class _Finished:
    def __init__(self, wanted: int) -> None:
        self.wanted, self.done = wanted, asyncio.Event()

    def on_event(self, event: Event) -> None:
        if isinstance(event, RunFinished):
            self.wanted -= 1
            if self.wanted <= 0:
                self.done.set()


async def test_an_idle_service_wakes_only_for_the_memory_guard(tmp_path: Path) -> None:
    """Ten demo sources on their default intervals, a memory ceiling set: once their
    first runs are done, the loop's only timer due within a minute is the guard's."""
    demo = EndpointSettings(type=EndpointType.DEMO)
    settings = Settings(
        repository=RepositoryOptions(memory_limit_mb=64 * 1024),
        sources=MappingProxyType({s: SourceSettings(id=s, primary=demo) for s in SOURCE_IDS}),
        store=StoreSettings(url=f"sqlite:///{tmp_path / 'catalog.db'}"),
        api=ApiSettings(port=0),
        refresh=RefreshSettings(worker_processes=0),
    )
    world = DemoWorld(products=200, failure_rate=0.0, clock_today=lambda: datetime.now(UTC).date())
    application = Application.build(settings, world=world)
    finished = _Finished(len(SOURCE_IDS))
    application.bus.subscribe(finished)
    stop = asyncio.Event()
    serving = asyncio.create_task(serve(application, stop))
    try:
        await asyncio.wait_for(finished.done.wait(), timeout=120)
        # RunFinished comes just before its run's task ends: let the tasks end too.
        await asyncio.gather(*(h.done for h in application.service._inflight.values()))
        loop = asyncio.get_running_loop()
        due = sorted(
            round(h.when() - loop.time(), 1)
            for h in loop._scheduled  # type: ignore[attr-defined]
            if not h.cancelled() and h.when() - loop.time() < SOON
        )
        assert len(due) <= 1, due
        assert all(CHECK_EVERY - 1 <= seconds <= CHECK_EVERY for seconds in due), due
    finally:
        stop.set()
        await asyncio.wait_for(serving, timeout=60)
