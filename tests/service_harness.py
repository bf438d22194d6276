"""A refresh service wired to a real store (SQLite unless given), static sources, a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from catalog_refresher.catalog import Catalog
from catalog_refresher.config.settings import (
    EndpointSettings,
    EndpointType,
    RepositoryOptions,
    Settings,
    SourceSettings,
)
from catalog_refresher.domain.runs import Run
from catalog_refresher.domain.specs import SOURCE_IDS
from catalog_refresher.observe.logs import RunLog
from catalog_refresher.refresh.events import EventBus
from catalog_refresher.refresh.memory import RssProbe
from catalog_refresher.refresh.runner import Endpoints, Offload, Process, inline
from catalog_refresher.refresh.service import RefreshService
from catalog_refresher.sources.base import Source
from catalog_refresher.store.base import Store
from catalog_refresher.store.coordination import Coordinator
from catalog_refresher.store.sqlite import SqliteStore
from catalog_refresher.testing import FakeClock, StaticSource


def settings_for(
    sources: Mapping[str, Any], *, priorities: Mapping[str, int] | None = None, **options: Any
) -> Settings:
    """Settings with ``sources`` configured (by id) and ``options`` for CatalogRepository."""
    priorities = priorities or {}
    configured = {
        source: SourceSettings(
            id=source,
            primary=EndpointSettings(type=EndpointType.DEMO),
            priority=priorities.get(source, 0),
        )
        for source in sources
    }
    return Settings(repository=RepositoryOptions(**options), sources=MappingProxyType(configured))


@dataclass
class Harness:
    service: RefreshService
    store: Store
    catalog: Catalog
    clock: FakeClock

    def runs(self, source: str | None = None) -> list[Run]:
        from catalog_refresher.store.base import RunQuery

        runs, _ = self.store.list_runs(RunQuery(source=source, limit=10_000))
        return list(reversed(runs))

    async def start(self) -> None:
        await self.service.prepare()
        self.service.start()
        await self.clock.settle()

    async def stop(self) -> None:
        """Stop the service, moving the fake clock through any shutdown grace period."""
        stopping = asyncio.create_task(self.service.stop())
        await self.clock.settle()
        while not stopping.done():
            await self.clock.advance(1)
        await stopping


def build(
    path: Path,
    clock: FakeClock,
    sources: Mapping[str, Source],
    *,
    backups: Mapping[str, Source] | None = None,
    priorities: Mapping[str, int] | None = None,
    store: Store | None = None,
    coordinator: Coordinator | None = None,
    process: Process | None = None,
    rss_probe: RssProbe | None = None,
    offload: Offload = inline,
    **options: Any,
) -> Harness:
    """A service on ``store`` (a new SQLite file at ``path`` if not given); ``offload``
    runs the store's work (on the loop itself unless given, e.g. ``asyncio.to_thread``)."""
    if store is None:
        store = SqliteStore(path)
    store.migrate()
    catalog = Catalog(store)
    bus = EventBus()
    for observer in (RunLog(), catalog):
        bus.subscribe(observer)
    backups = backups or {}
    service = RefreshService(
        settings=settings_for(sources, priorities=priorities, **options),
        store=store,
        clock=clock,
        endpoints={s: Endpoints(src, backups.get(s)) for s, src in sources.items()},
        bus=bus,
        offload=offload,
        coordinator=coordinator,
        process=process,
        rss_probe=rss_probe,
    )
    return Harness(service=service, store=store, catalog=catalog, clock=clock)


def all_static(clock: FakeClock, **records: list[dict[str, Any]]) -> dict[str, StaticSource]:
    """A StaticSource for every one of the ten sources; those not given serve nothing."""
    return {s: StaticSource(s, records.get(s, []), clock=clock) for s in SOURCE_IDS}
